"""``metaboot instance …`` and ``metaboot router …``: manage the registry from a shell.

Every verb works the same against the admin API (``--api URL``, token from ``--token-file``,
``--token`` or ``$METABOOT_ADMIN_TOKEN``) or straight against a database (``--db URL``, default
``$METABOOT_DB`` or the service's default path). Spec files are validated here first, so a bad
one is reported with its file and field before anything is sent; over the API the canonical
spec is sent, so ``user_data_file`` is read on this machine.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import uuid as uuidlib
from pathlib import Path
from typing import Any, Protocol

import yaml

from metaboot.errors import MetabootError, NotFoundError, SpecError
from metaboot.metadata.instance import Instance, instance_to_spec, load_spec, parse_spec

# -- backends: the same JSON views from the API or from the database ------------------------


class Backend(Protocol):
    def list_instances(self, **filters: str) -> list[dict[str, Any]]: ...
    def show(self, uuid: str) -> dict[str, Any]: ...
    def create(self, instance: Instance) -> dict[str, Any]: ...
    def replace(self, instance: Instance, generation: int | None) -> dict[str, Any]: ...
    def delete(self, uuid: str) -> None: ...
    def password(self, uuid: str) -> str: ...
    def clear_password(self, uuid: str) -> None: ...
    def routers(self) -> dict[str, list[str]]: ...
    def router(self, router_id: str) -> list[str]: ...
    def set_router(self, router_id: str, network_ids: list[str]) -> list[str]: ...
    def attach(self, router_id: str, network_ids: list[str]) -> list[str]: ...
    def detach(self, router_id: str, network_id: str) -> None: ...
    def delete_router(self, router_id: str) -> None: ...
    def close(self) -> None: ...


class LocalBackend:
    def __init__(self, url: str) -> None:
        from metaboot.admin import views
        from metaboot.registry import Registry

        self._views = views
        self.registry = Registry.open(url)

    def list_instances(self, **filters: str) -> list[dict[str, Any]]:
        records = self.registry.list_records()
        for key, value in filters.items():
            records = [r for r in records if getattr(r.instance, key) == value]
        return [self._views.summary(r) for r in records]

    def show(self, uuid: str) -> dict[str, Any]:
        return self._views.detail(self.registry.get_record(uuid))

    def create(self, instance: Instance) -> dict[str, Any]:
        written = self.registry.add(instance)
        return self._views.detail(self.registry.get_record(instance.uuid), written)

    def replace(self, instance: Instance, generation: int | None) -> dict[str, Any]:
        written = self.registry.update(instance, expected_generation=generation)
        return self._views.detail(self.registry.get_record(instance.uuid), written)

    def delete(self, uuid: str) -> None:
        self.registry.delete(uuid)

    def password(self, uuid: str) -> str:
        return self.registry.password_get(uuid)

    def clear_password(self, uuid: str) -> None:
        self.registry.password_clear(uuid)

    def routers(self) -> dict[str, list[str]]:
        return self.registry.routers()

    def router(self, router_id: str) -> list[str]:
        return self.registry.router(router_id)

    def set_router(self, router_id: str, network_ids: list[str]) -> list[str]:
        return self.registry.set_router(router_id, network_ids)

    def attach(self, router_id: str, network_ids: list[str]) -> list[str]:
        return self.registry.add_router(router_id, network_ids)

    def detach(self, router_id: str, network_id: str) -> None:
        self.registry.remove_router(router_id, [network_id])

    def delete_router(self, router_id: str) -> None:
        self.registry.remove_router(router_id)

    def close(self) -> None:
        self.registry.close()


class RemoteBackend:
    def __init__(self, url: str, token: str) -> None:
        from metaboot.admin.client import AdminClient

        self.client = AdminClient(url, token)

    def list_instances(self, **filters: str) -> list[dict[str, Any]]:
        return self.client.list_instances(**filters)

    def show(self, uuid: str) -> dict[str, Any]:
        return self.client.show(uuid)

    def create(self, instance: Instance) -> dict[str, Any]:
        return self.client.create(instance_to_spec(instance))

    def replace(self, instance: Instance, generation: int | None) -> dict[str, Any]:
        return self.client.replace(instance.uuid, instance_to_spec(instance), generation=generation)

    def delete(self, uuid: str) -> None:
        self.client.delete(uuid)

    def password(self, uuid: str) -> str:
        return self.client.password(uuid)

    def clear_password(self, uuid: str) -> None:
        self.client.clear_password(uuid)

    def routers(self) -> dict[str, list[str]]:
        return self.client.routers()

    def router(self, router_id: str) -> list[str]:
        return self.client.router(router_id)

    def set_router(self, router_id: str, network_ids: list[str]) -> list[str]:
        return self.client.set_router(router_id, network_ids)

    def attach(self, router_id: str, network_ids: list[str]) -> list[str]:
        return self.client.attach(router_id, network_ids)

    def detach(self, router_id: str, network_id: str) -> None:
        self.client.detach(router_id, network_id)

    def delete_router(self, router_id: str) -> None:
        self.client.delete_router(router_id)

    def close(self) -> None:
        pass


def _backend(args: argparse.Namespace) -> Backend:
    api = getattr(args, "api", None)
    db = getattr(args, "db", None)
    if api and db:
        raise MetabootError("give --api or --db, not both")
    if not db:
        api = api or os.environ.get("METABOOT_ADMIN_URL")
    if api:
        return RemoteBackend(api, _token(args))
    from metaboot.registry.paths import default_db_url

    return LocalBackend(db or default_db_url())


def _token(args: argparse.Namespace) -> str:
    token_file = getattr(args, "token_file", None)
    if token_file:
        try:
            return Path(token_file).read_text().strip()
        except OSError as err:
            raise MetabootError(f"--token-file {token_file}: {err.strerror}") from None
    return str(getattr(args, "token", None) or os.environ.get("METABOOT_ADMIN_TOKEN", ""))


# -- arguments -----------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("where the registry is")
    where.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="database: sqlite:///PATH, a file path, or postgresql://… "
        "(default: $METABOOT_DB, else the service's default)",
    )
    where.add_argument(
        "--api",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="admin API base URL instead of a database (default: $METABOOT_ADMIN_URL)",
    )
    where.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="admin API bearer token (visible to other users in ps: prefer --token-file or "
        "$METABOOT_ADMIN_TOKEN)",
    )
    where.add_argument("--token-file", metavar="FILE", default=argparse.SUPPRESS)
    common.add_argument(
        "--format",
        choices=("table", "json"),
        default=argparse.SUPPRESS,
        help="output for people (default) or for scripts",
    )
    return common


def _instance_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="metaboot instance",
        parents=[common],
        description="Manage the instances the metadata service serves.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("add", parents=[common], help="add instances from spec files")
    p.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON spec ('-' = stdin)")
    p = verbs.add_parser("list", parents=[common], help="list instances")
    p.add_argument("--name", help="only instances with this name")
    p.add_argument("--project", help="only this project's instances")
    p = verbs.add_parser("show", parents=[common], help="show an instance")
    p.add_argument("id", metavar="ID", help="uuid or unique name")
    p.add_argument(
        "--spec", action="store_true", help="print only the canonical spec (input for update)"
    )
    p = verbs.add_parser("update", parents=[common], help="replace instances from spec files")
    p.add_argument("files", nargs="+", metavar="FILE", help="YAML or JSON spec ('-' = stdin)")
    p.add_argument(
        "--if-generation",
        type=int,
        metavar="N",
        help="refuse if the instance changed since generation N (one file only)",
    )
    p = verbs.add_parser("delete", parents=[common], help="delete instances")
    p.add_argument("ids", nargs="+", metavar="ID", help="uuid or unique name")
    p = verbs.add_parser(
        "password", parents=[common], help="read (or decrypt, or clear) a guest's password"
    )
    p.add_argument("id", metavar="ID", help="uuid or unique name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--clear", action="store_true", help="forget the stored password")
    group.add_argument(
        "--private-key",
        metavar="FILE",
        help="decrypt with this RSA private key (the half of the instance's first SSH key)",
    )
    return parser


def _router_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="metaboot router",
        parents=[common],
        description="Map routers to the networks they serve, for X-Neutron-Router-ID requests.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("add", parents=[common], help="attach networks to a router")
    p.add_argument("router")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p = verbs.add_parser("set", parents=[common], help="make these a router's only networks")
    p.add_argument("router")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p = verbs.add_parser("remove", parents=[common], help="detach networks, or the whole router")
    p.add_argument("router")
    p.add_argument("networks", nargs="*", metavar="NETWORK")
    verbs.add_parser("list", parents=[common], help="list routers")
    p = verbs.add_parser("show", parents=[common], help="show a router's networks")
    p.add_argument("router")
    return parser


# -- output --------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so user-data reads (and edits) as written."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text.rstrip("\n") or text.endswith("\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def _yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def _text(b64: str | None) -> str | None:
    """The text a base64 field holds, if it is plain text that YAML can carry verbatim."""
    if b64 is None:
        return None
    try:
        text = base64.b64decode(b64).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    printable = all(c.isprintable() or c in "\n\t" for c in text)
    return text if printable and "\r" not in text and not text.endswith(" ") else None


def _readable(spec: dict[str, Any]) -> dict[str, Any]:
    """The canonical spec with text user-data and file contents un-base64'd (still a valid
    spec: parse_spec reads it back to the same instance)."""
    out = dict(spec)
    text = _text(out.get("user_data_b64"))
    if text is not None:
        out = {("user_data" if k == "user_data_b64" else k): v for k, v in out.items()}
        out["user_data"] = text
    files = []
    for f in out.get("files", []):
        content = _text(f.get("content_b64"))
        files.append(f if content is None else {"path": f["path"], "content": content})
    out["files"] = files
    return out


def _addresses(view: dict[str, Any]) -> str:
    return ", ".join(f"{a['network_id']}/{a['ip']}" for a in view["addresses"]) or "-"


def _warn(view: dict[str, Any], where: str) -> None:
    for warning in view.get("warnings", []):
        print(f"warning: {where}: {warning}", file=sys.stderr)


# -- verbs ---------------------------------------------------------------------------------


def _load(path: str) -> Instance:
    if path == "-":
        try:
            data = yaml.safe_load(sys.stdin)
        except yaml.YAMLError as err:
            raise SpecError("", f"<stdin>: not valid YAML or JSON: {err}") from None
        try:
            return parse_spec(data, base_dir=Path.cwd())
        except SpecError as err:
            raise SpecError(err.field, f"{err.problem} (in <stdin>)") from None
    return load_spec(path)


def _resolve(backend: Backend, ident: str) -> str:
    """A uuid as given, or the uuid of the one instance with that name."""
    try:
        return str(uuidlib.UUID(ident))
    except ValueError:
        pass
    matches = backend.list_instances(name=ident)
    if not matches:
        raise NotFoundError(f"no instance with uuid or name {ident!r}")
    if len(matches) > 1:
        uuids = ", ".join(m["uuid"] for m in matches)
        raise MetabootError(f"name {ident!r} is ambiguous ({uuids}); give the uuid")
    return str(matches[0]["uuid"])


def _write(args: argparse.Namespace, backend: Backend, fmt: str) -> int:
    # Validate every file before writing any, so a typo in the third file adds nothing.
    instances = [(path, _load(path)) for path in args.files]
    generation = getattr(args, "if_generation", None)
    if generation is not None and len(instances) != 1:
        raise MetabootError("--if-generation applies to one file at a time")
    past = "added" if args.verb == "add" else "updated"
    results: list[dict[str, Any]] = []
    for path, instance in instances:
        try:
            if args.verb == "add":
                view = backend.create(instance)
            else:
                view = backend.replace(instance, generation)
        except MetabootError as err:
            done = ", ".join(p for p, _ in instances[: len(results)])
            already = f" ({past} before it: {done})" if done else ""
            raise MetabootError(f"{path}: {err}{already}") from None
        _warn(view, path)
        results.append(view)
        if fmt == "table":
            print(f"{past} {view['uuid']}  {view['name']}  (generation {view['generation']})")
    if fmt == "json":
        _print_json(results)
    return 0


def _instance(args: argparse.Namespace, backend: Backend, fmt: str) -> int:
    verb = args.verb
    if verb in ("add", "update"):
        return _write(args, backend, fmt)
    if verb == "list":
        filters = {k: v for k, v in (("name", args.name), ("project_id", args.project)) if v}
        views = backend.list_instances(**filters)
        if fmt == "json":
            _print_json(views)
        else:
            rows = [
                [
                    v["uuid"],
                    v["name"],
                    v["hostname"],
                    v["project_id"] or "-",
                    _addresses(v),
                    str(v["generation"]),
                    "yes" if v["password_set"] else "no",
                ]
                for v in views
            ]
            headers = ["UUID", "NAME", "HOSTNAME", "PROJECT", "ADDRESSES", "GEN", "PASSWORD"]
            print(_table(headers, rows))
        return 0
    if verb == "show":
        view = backend.show(_resolve(backend, args.id))
        if args.spec:
            if fmt == "json":
                _print_json(view["spec"])
            else:
                print(_yaml(_readable(view["spec"])), end="")
        elif fmt == "json":
            _print_json(view)
        else:
            for key in (
                "uuid",
                "name",
                "hostname",
                "project_id",
                "generation",
                "created_at",
                "updated_at",
            ):
                print(f"{key}: {view[key]}")
            print(f"addresses: {_addresses(view)}")
            print(f"password: {'posted' if view['password_set'] else 'none'}")
            print("spec:")
            print("  " + _yaml(_readable(view["spec"])).rstrip("\n").replace("\n", "\n  "))
        return 0
    if verb == "delete":
        uuids = [_resolve(backend, ident) for ident in args.ids]
        for uuid in uuids:
            backend.delete(uuid)
            if fmt == "table":
                print(f"deleted {uuid}")
        if fmt == "json":
            _print_json({"deleted": uuids})
        return 0
    if verb == "password":
        return _password(args, backend, fmt)
    raise AssertionError(verb)


def _password(args: argparse.Namespace, backend: Backend, fmt: str) -> int:
    uuid = _resolve(backend, args.id)
    if args.clear:
        backend.clear_password(uuid)
        if fmt == "json":
            _print_json({"uuid": uuid, "cleared": True})
        else:
            print(f"cleared the stored password of {uuid} (the guest's own password is unchanged)")
        return 0
    stored = backend.password(uuid)
    value = stored
    if args.private_key:
        if not stored:
            raise MetabootError(f"instance {uuid} has no password posted yet")
        value = _decrypt(backend, uuid, stored, Path(args.private_key))
    if fmt == "json":
        _print_json({"uuid": uuid, "password": value, "decrypted": bool(args.private_key)})
    elif value:
        print(value)
    else:
        print(f"instance {uuid} has no password posted yet", file=sys.stderr)
    return 0


def _decrypt(backend: Backend, uuid: str, stored: str, key_file: Path) -> str:
    from metaboot.registry import password_crypto as crypto

    try:
        data = key_file.read_bytes()
    except OSError as err:
        raise MetabootError(f"--private-key {key_file}: {err.strerror}") from None
    try:
        private = crypto.load_private_key(data)
    except crypto.KeyEncryptedError:
        if not sys.stdin.isatty():
            raise MetabootError(
                f"--private-key {key_file} is encrypted; run this in a terminal to enter "
                "its passphrase"
            ) from None
        passphrase = getpass.getpass(f"Passphrase for {key_file}: ").encode()
        private = crypto.load_private_key(data, passphrase)
    keys = backend.show(uuid)["spec"]["keys"]
    if (
        keys
        and keys[0]["data"].startswith("ssh-rsa ")
        and not crypto.public_key_matches(private, keys[0]["data"])
    ):
        raise MetabootError(
            f"--private-key {key_file} is not the private half of instance {uuid}'s first key "
            f"({keys[0]['name']!r}), which the guest encrypts its password with"
        )
    return crypto.decrypt_password(stored, private)


def _router(args: argparse.Namespace, backend: Backend, fmt: str) -> int:
    verb = args.verb
    if verb == "list":
        routers = backend.routers()
        if fmt == "json":
            _print_json([{"router_id": r, "network_ids": n} for r, n in routers.items()])
        else:
            print(_table(["ROUTER", "NETWORKS"], [[r, ", ".join(n)] for r, n in routers.items()]))
        return 0
    if verb == "remove":
        if args.networks:
            for network in args.networks:
                backend.detach(args.router, network)
        else:
            backend.delete_router(args.router)
        if fmt == "json":
            _print_json({"router_id": args.router, "removed": args.networks or "all"})
        else:
            what = ", ".join(args.networks) if args.networks else "all networks"
            print(f"router {args.router}: removed {what}")
        return 0
    if verb == "add":
        nets = backend.attach(args.router, args.networks)
    elif verb == "set":
        nets = backend.set_router(args.router, args.networks)
    else:
        nets = backend.router(args.router)
    if fmt == "json":
        _print_json({"router_id": args.router, "network_ids": nets})
    else:
        print(f"router {args.router}: {', '.join(nets)}")
    return 0


def main(command: str, argv: list[str]) -> int:
    parser = _instance_parser() if command == "instance" else _router_parser()
    args = parser.parse_args(argv)
    fmt = getattr(args, "format", "table")
    backend = _backend(args)
    try:
        return (_instance if command == "instance" else _router)(args, backend, fmt)
    finally:
        backend.close()
