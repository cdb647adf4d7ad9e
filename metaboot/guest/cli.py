"""The guest commands: ``init``, ``status``, ``query``, ``analyze``, ``schema``, ``clean``.

Each parses its own arguments and imports only what it needs, so ``metaboot status`` in a login
shell does not load the user-data machinery.
"""

from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace

from metaboot.errors import MetabootError
from metaboot.guest import layout
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    import argparse
    from typing import Any

STAGE_CHOICES = ("local", "network", "config", "final", "all")


def main(command: str, argv: list[str]) -> int:
    handler = {
        "init": cmd_init,
        "status": cmd_status,
        "query": cmd_query,
        "analyze": cmd_analyze,
        "schema": cmd_schema,
        "clean": cmd_clean,
    }.get(command)
    if handler is None:
        raise MetabootError(f"unknown guest command {command!r}")
    try:
        return handler(argv)
    except BrokenPipeError:
        # `metaboot status --long | head`: the reader left; say nothing more, as cat would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    import argparse  # not for init's usual arguments: see _quick_init_args

    parser = argparse.ArgumentParser(prog=f"metaboot {command}", description=description)
    parser.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="the system to act on: / (default), a mounted image or a test tree",
    )
    return parser


def _root(path: str) -> Root:
    if not os.path.isdir(path):
        raise MetabootError(f"--root {path}: not a directory")
    return Root(path)


# ---- init -----------------------------------------------------------------------------------


def _init_parser() -> argparse.ArgumentParser:
    parser = _parser("init", "Find this instance's data and apply it (one stage, or all).")
    parser.add_argument("--stage", choices=STAGE_CHOICES, default="all")
    parser.add_argument("--config", metavar="FILE", help="an extra agent config file, applied last")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    return parser


def _quick_init_args(argv: list[str]) -> Any:
    """The options systemd passes, parsed without building an argparse parser (init runs on
    every boot, four times); anything unusual (help, a typo) goes to argparse instead."""
    values: dict[str, Any] = {"root": "/", "stage": "all", "config": None, "debug": False}
    items = list(argv)
    while items:
        item = items.pop(0)
        name, eq, value = item.partition("=")
        if name == "--debug" and not eq:
            values["debug"] = True
            continue
        if name not in ("--root", "--stage", "--config"):
            return None
        if not eq:
            if not items:
                return None
            value = items.pop(0)
        values[name[2:]] = value
    if values["stage"] not in STAGE_CHOICES:
        return None
    return SimpleNamespace(**values)


def cmd_init(argv: list[str]) -> int:
    args = _quick_init_args(argv) or _init_parser().parse_args(argv)
    root = _root(args.root)
    if args.config is not None and not os.path.isfile(args.config):
        raise MetabootError(f"--config {args.config}: no such file")
    if root.exists(layout.DISABLED_MARKER):
        print(f"metaboot: disabled by {layout.DISABLED_MARKER}; nothing done")
        return 0

    from metaboot.guest import runner
    from metaboot.guest.modules.base import Stage

    stages = list(runner.STAGE_ORDER) if args.stage == "all" else [Stage(args.stage)]
    handler = runner.setup_logging(root, debug=args.debug)
    try:
        options = runner.Options(root=root, config_file=args.config, out=sys.stdout)
        return runner.run(options, stages)
    finally:
        if handler is not None:
            handler.close()


# ---- status ---------------------------------------------------------------------------------


def cmd_status(argv: list[str]) -> int:
    parser = _parser(
        "status", "Report what the agent did this boot (exit 0 done, 1 error, 2 degraded)."
    )
    parser.add_argument("--wait", action="store_true", help="wait until the agent has finished")
    parser.add_argument("--timeout", type=float, default=0.0, help="with --wait: give up after N s")
    parser.add_argument("--long", action="store_true", help="errors, warnings and every module")
    parser.add_argument("--format", choices=("tabular", "json", "yaml"), default="tabular")
    args = parser.parse_args(argv)
    root = _root(args.root)

    from metaboot.guest.os.hostkeys import failed
    from metaboot.guest.status import read_record, summarize

    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while True:
        record = read_record(root)
        disabled = root.exists(layout.DISABLED_MARKER)
        summary = summarize(record, disabled=disabled, late=failed(root))
        if not args.wait or summary.status not in ("running", "not started"):
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        if args.format == "tabular":
            print(".", end="", flush=True)
        time.sleep(0.25)
    if args.wait and args.format == "tabular":
        print()
    doc = _status_doc(record or {}, summary)
    if args.format == "json":
        print(json.dumps(doc, indent=1, sort_keys=True))
    elif args.format == "yaml":
        import yaml

        print(yaml.safe_dump(doc, sort_keys=True), end="")
    else:
        print(_status_text(doc, record or {}, long=args.long))
    return summary.exit_code


def _status_doc(record: dict[str, Any], summary: Any) -> dict[str, Any]:
    stages = {}
    for name, data in record.get("stages", {}).items():
        stages[name] = {
            "start": data.get("start"),
            "end": data.get("end"),
            "errors": data.get("errors", []),
            "recoverable_errors": data.get("recoverable_errors", []),
            "modules": data.get("modules", []),
        }
    ends = [s.get("end") or s.get("start") or 0 for s in record.get("stages", {}).values()]
    return {
        "status": summary.status,
        "extended_status": summary.extended,
        "detail": summary.detail,
        "datasource": record.get("source"),
        "subplatform": record.get("subplatform"),
        "instance_id": record.get("instance_id"),
        "new_instance": record.get("new_instance"),
        "last_update": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(max(ends)))
        if ends
        else None,
        "stage": record.get("stage"),
        "errors": summary.errors,
        "recoverable_errors": summary.recoverable,
        "stages": stages,
    }


def _status_text(doc: dict[str, Any], record: dict[str, Any], *, long: bool) -> str:
    lines = [f"status: {doc['status']}"]
    if not long:
        return "\n".join(lines)
    lines += [
        f"extended_status: {doc['extended_status']}",
        f"last_update: {doc['last_update'] or '-'}",
        f"detail: {doc['detail']}",
        f"instance_id: {doc['instance_id'] or '-'}",
    ]
    for title, items in (
        ("errors", doc["errors"]),
        ("recoverable_errors", doc["recoverable_errors"]),
    ):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
        else:
            lines.append(f"{title}: []")
    for name, data in record.get("stages", {}).items():
        modules = data.get("modules", [])
        if not modules:
            continue
        lines.append(f"modules ({name}):")
        for module in modules:
            took = f" {module['duration']:.3f} s" if "duration" in module else ""
            lines.append(f"  {module['name']}: {module['result']}{took}")
            for change in module.get("changes", []):
                lines.append(f"    changed: {change}")
            for warning in module.get("warnings", []):
                lines.append(f"    warning: {warning}")
            if module.get("error"):
                lines.append(f"    error: {module['error']}")
            for error in module.get("errors", []):
                lines.append(f"    invalid: {error}")
            if module["result"] in ("skipped", "unavailable", "already-ran") and module.get(
                "reason"
            ):
                lines.append(f"    ({module['reason']})")
    return "\n".join(lines)


# ---- query ----------------------------------------------------------------------------------


def cmd_query(argv: list[str]) -> int:
    parser = _parser("query", "Read a key of the instance data (e.g. v1.instance_id).")
    parser.add_argument("key", nargs="?", help="dotted key: v1.local_hostname, ds.meta_data.uuid …")
    parser.add_argument("--all", action="store_true", help="the whole document")
    parser.add_argument("--list-keys", action="store_true", help="the keys under KEY (or the top)")
    parser.add_argument("--instance-data", metavar="FILE", help="read this file instead")
    args = parser.parse_args(argv)
    if not (args.key or args.all or args.list_keys):
        parser.error("give a KEY, --all or --list-keys")
    root = _root(args.root)

    from metaboot.guest import instancedata

    privileged = os.geteuid() == 0
    if args.key in ("userdata", "vendordata"):
        if not privileged:
            raise MetabootError(f"{args.key}: only root may read it")
        sys.stdout.write(_raw_data(root, args.key))
        return 0
    from metaboot import client

    doc = client.instance_data(root.base, path=args.instance_data)
    try:
        node: Any = instancedata.lookup(doc, args.key) if args.key else doc
    except KeyError as err:
        raise MetabootError(f"{args.key}: {err.args[0]}") from None
    if args.list_keys:
        print("\n".join(instancedata.list_keys(node)))
    elif isinstance(node, dict | list):
        print(json.dumps(node, indent=1, sort_keys=True))
    elif node is None:
        print("")
    else:
        print(node)
    return 0


def _raw_data(root: Root, key: str) -> str:
    instance_id = root.read_text(layout.INSTANCE_ID_FILE, default="").strip()
    if not instance_id:
        raise MetabootError("no instance yet (has 'metaboot init' run?)")
    name = layout.USER_DATA_RAW if key == "userdata" else layout.VENDOR_DATA_RAW
    path = f"{layout.instance_dir(instance_id)}/{name}"
    try:
        return root.read_bytes(path).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


# ---- analyze --------------------------------------------------------------------------------


def cmd_analyze(argv: list[str]) -> int:
    parser = _parser("analyze", "Time taken per stage, step and module this boot.")
    parser.add_argument("view", nargs="?", choices=("show", "blame"), default="show")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    root = _root(args.root)

    from metaboot.guest import analyze
    from metaboot.guest.status import read_record

    record = read_record(root)
    if record is None:
        raise MetabootError(f"no status at {layout.STATUS_FILE} (has 'metaboot init' run?)")
    if args.format == "json":
        print(json.dumps(analyze.as_json(record), indent=1))
    elif args.view == "blame":
        print(analyze.blame(record))
    else:
        print(analyze.show(record))
    return 0


# ---- schema ---------------------------------------------------------------------------------


def cmd_schema(argv: list[str]) -> int:
    parser = _parser("schema", "Check a user-data file: YAML, types and keys, with line numbers.")
    parser.add_argument("file", help="user-data file (cloud-config, MIME, gzip …); - for stdin")
    args = parser.parse_args(argv)
    root = _root(args.root)
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as handle:
                raw = handle.read()
        except OSError as err:
            raise MetabootError(f"{args.file}: {err.strerror}") from None

    from metaboot.guest import config, lint
    from metaboot.guest.catalog import Catalog, PackageRegistry

    agent = config.load(root)
    modules = Catalog(agent.cfg, PackageRegistry()).listed()
    findings = lint.check(raw, args.file, modules, int(agent.cfg["user_data"]["max_bytes"]))
    for finding in findings:
        print(finding)
    errors = [f for f in findings if f.level == "error"]
    if not errors:
        print(f"{args.file}: valid" + (f" ({len(findings)} warning(s))" if findings else ""))
        return 0
    return 1


# ---- clean ----------------------------------------------------------------------------------


def cmd_clean(argv: list[str]) -> int:
    parser = _parser("clean", "Forget this instance so the next boot is a first boot.")
    parser.add_argument("--logs", action="store_true", help="also remove the agent's logs")
    parser.add_argument("--machine-id", action="store_true", help="reset /etc/machine-id")
    parser.add_argument("--seed", action="store_true", help=f"also remove {layout.SEED_DIR}")
    parser.add_argument("--seal", action="store_true", help="also seal the image (metaboot image)")
    args = parser.parse_args(argv)
    root = _root(args.root)

    from metaboot.guest.clean import clean

    report = clean(root, logs=args.logs, machine_id=args.machine_id, seed=args.seed, seal=args.seal)
    for path in report.removed:
        print(f"removed {path}")
    for note in report.notes:
        print(note)
    if not report.removed and not report.notes:
        print("nothing to clean")
    return 0
