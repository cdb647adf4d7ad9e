"""``metaboot drive``: build config drives from a spec or the registry, and look inside them.

metaboot drive build INSTANCE_ID --format iso -o disk.config [--db URL]
metaboot drive build --spec vm.yaml --format vfat --size 64M -o disk.config
metaboot drive build --all -o DIR [--db URL]
metaboot drive inspect disk.config [openstack/latest/meta_data.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from metaboot.drive.build import FORMATS, DriveOptions, write_drive_file
from metaboot.drive.seed import MIN_KEY_BYTES
from metaboot.errors import DriveError, MetabootError
from metaboot.metadata.instance import Instance
from metaboot.metadata.tree import MetadataSettings

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$", re.IGNORECASE)
ADMIN_PASS_LIMIT = 1020


def parse_size(text: str) -> int:
    """``64M``, ``64MiB``, ``1G``, ``65536`` → bytes (binary units)."""
    match = _SIZE.match(text)
    if not match:
        raise DriveError(f"--size {text!r}: expected a number with an optional K, M or G")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def parse_time(text: str | None) -> datetime:
    """``--time``: ISO 8601 with a zone, ``@EPOCH`` or plain epoch seconds. Default:
    ``$SOURCE_DATE_EPOCH`` (the reproducible-builds convention), else now."""
    if text is None:
        text = os.environ.get("SOURCE_DATE_EPOCH")
        if not text:
            return datetime.fromtimestamp(int(time.time()), UTC)
    raw = text.strip().removeprefix("@")
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw), UTC)
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DriveError(
            f"build time {text!r}: use ISO 8601 with a zone, or epoch seconds"
        ) from None
    if when.tzinfo is None:
        raise DriveError(f"build time {text!r}: give a zone (e.g. 2024-01-01T00:00:00Z)")
    return when


def _read_secret(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise DriveError(f"{what} {path}: cannot read: {err.strerror}") from None


def _admin_pass(path: str | None) -> str | None:
    if path is None:
        return None
    raw = _read_secret(path, "--admin-pass-file").rstrip(b"\r\n")
    try:
        password = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DriveError(f"--admin-pass-file {path}: not UTF-8 text") from None
    if not password:
        raise DriveError(f"--admin-pass-file {path}: is empty")
    if len(raw) > ADMIN_PASS_LIMIT:
        raise DriveError(f"--admin-pass-file {path}: over {ADMIN_PASS_LIMIT} bytes")
    return password


def _seed_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    key = _read_secret(path, "--seed-key-file")
    if len(key) < MIN_KEY_BYTES:
        raise DriveError(f"--seed-key-file {path}: at least {MIN_KEY_BYTES} bytes of key needed")
    return key


def _static_vendor_data(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise DriveError(f"--vendor-data {path}: cannot read: {err.strerror}") from None
    except ValueError as err:
        raise DriveError(f"--vendor-data {path}: not JSON: {err}") from None
    if not isinstance(value, dict):
        raise DriveError(f"--vendor-data {path}: must be a JSON object")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metaboot drive", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)

    build = sub.add_parser("build", help="build a drive from a spec or registered instance(s)")
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("instance_id", nargs="?", help="uuid of a registered instance")
    source.add_argument("--spec", metavar="FILE", help="standalone instance spec (YAML/JSON)")
    source.add_argument("--all", action="store_true", help="every registered instance")
    build.add_argument("--format", choices=FORMATS, default="iso")
    build.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="drive file (a directory with --all)"
    )
    build.add_argument("--size", default="64M", help="VFAT volume size (default 64M)")
    build.add_argument(
        "--nocloud-fs",
        choices=("iso", "vfat"),
        default="iso",
        help="filesystem of a NoCloud seed (default iso)",
    )
    build.add_argument(
        "--admin-pass-file",
        metavar="FILE",
        help="put this password into the drive's meta_data.json as admin_pass",
    )
    build.add_argument(
        "--seed-key-file",
        metavar="FILE",
        help="secret key for a reproducible random_seed (else os.urandom)",
    )
    build.add_argument(
        "--time",
        help="build time: ISO 8601 with zone or epoch seconds "
        "(default $SOURCE_DATE_EPOCH, else now)",
    )
    build.add_argument("--dhcp-domain", default="", help="hostname suffix, as the service's")
    build.add_argument("--vendor-data", metavar="FILE", help="static vendor data (JSON object)")
    build.add_argument("--db", metavar="URL", help="registry URL (default: the service's)")

    inspect = sub.add_parser("inspect", help="list a drive's files, or print one")
    inspect.add_argument("path", help="ISO 9660 or VFAT image (or block device)")
    inspect.add_argument("file", nargs="?", help="a file on the drive to print")
    inspect.add_argument("--json", action="store_true", help="listing as JSON")
    return parser


def main(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "inspect":
        return _inspect(args.path, args.file, as_json=args.json)
    return _build(args)


# ---- build -----------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> DriveOptions:
    return DriveOptions(
        build_time=parse_time(args.time),
        format=args.format,
        size=parse_size(args.size),
        nocloud_filesystem=args.nocloud_fs,
        admin_pass=_admin_pass(args.admin_pass_file),
        seed_key=_seed_key(args.seed_key_file),
        settings=MetadataSettings(
            dhcp_domain=args.dhcp_domain.strip("."),
            static_vendor_data=_static_vendor_data(args.vendor_data),
        ),
    )


def _open_registry(url: str | None) -> Any:
    # Server side, loaded only when a registry is named (``--spec`` needs no database).
    registry = importlib.import_module("metaboot.registry")
    return registry.Registry.open(url or registry.default_db_url())


def _build(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.all:
        if args.admin_pass_file:
            raise DriveError("--admin-pass-file: one password for every instance is refused")
        registry = _open_registry(args.db)
        try:
            instances = registry.list()
        finally:
            registry.close()
        return build_all(instances, Path(args.output), options, sys.stderr)
    if args.spec:
        if args.db:
            raise DriveError("--db: not used with --spec (a spec needs no database)")
        from metaboot.metadata.instance import load_spec

        instance = load_spec(args.spec)
    else:
        registry = _open_registry(args.db)
        try:
            instance = registry.get(args.instance_id)
        finally:
            registry.close()
    path = write_drive_file(instance, args.output, options)
    print(f"{path}: {options.format} drive for {instance.uuid}", file=sys.stderr)
    return 0


def drive_name(instance: Instance, options: DriveOptions) -> str:
    suffix = "iso" if options.filesystem == "iso" else "img"
    kind = "-cidata" if options.format == "nocloud" else ""
    return f"{instance.uuid}{kind}.{suffix}"


class Progress:
    """A one-line bar on a terminal; one line per step otherwise (logs stay readable)."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total, self.stream, self.width, self.done = total, stream, width, 0
        self.tty = stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def build_all(
    instances: Sequence[Instance], directory: Path, options: DriveOptions, stream: TextIO
) -> int:
    """One drive per instance into ``directory``; a failing instance is reported and the
    others are still built. Returns the exit status."""
    if not directory.is_dir():
        raise DriveError(f"{directory}: not a directory (with --all, -o names a directory)")
    progress = Progress(len(instances), stream)
    failures: list[str] = []
    for instance in instances:
        try:
            write_drive_file(instance, directory / drive_name(instance, options), options)
            progress.step(instance.uuid)
        except MetabootError as err:
            failures.append(f"{instance.uuid}: {err}")
            progress.step(f"{instance.uuid} FAILED")
    _report(stream, len(instances), failures)
    return 1 if failures else 0


def _report(stream: TextIO, total: int, failures: Iterable[str]) -> None:
    failed = list(failures)
    for line in failed:
        stream.write(f"metaboot drive: error: {line}\n")
    stream.write(f"{total - len(failed)} of {total} drives built\n")


# ---- inspect -----------------------------------------------------------------------------


def _inspect(path: str, name: str | None, *, as_json: bool) -> int:
    from metaboot.diskfs import open_image

    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed below, after the reader is done
    except OSError as err:
        raise DriveError(f"{path}: cannot open: {err.strerror}") from None
    with fp:
        reader = open_image(fp, path)
        if name is not None:
            sys.stdout.buffer.write(reader.read(name))
            sys.stdout.buffer.flush()
            return 0
        sizes = {f: reader.size(f) for f in reader.files()}
        if as_json:
            doc = {"type": reader.fs_type, "label": reader.label, "files": sizes}
            print(json.dumps(doc, indent=2))
            return 0
        print(f"{reader.fs_type} label={reader.label!r} files={len(sizes)}")
        for file, size in sizes.items():
            print(f"{size:>10}  {file}")
    return 0
