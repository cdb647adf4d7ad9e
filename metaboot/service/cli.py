"""``metaboot serve``: run the metadata service (and, if asked, the admin API).

Command-line options override the ``--config`` file. ``--demo`` registers (or refreshes) one
demo instance bound to 127.0.0.1 and ::1, so that on a fresh machine
``curl http://127.0.0.1:8775/openstack/latest/meta_data.json`` answers straight away.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from dataclasses import replace
from pathlib import Path

from metaboot.errors import ConfigError, NotFoundError
from metaboot.metadata.instance import Instance, parse_spec
from metaboot.registry import Registry, default_db_url
from metaboot.service.config import Endpoint, load_config, parse_listen, parse_trusted

log = logging.getLogger("metaboot.service")

DEMO_UUID = "6f1c2a52-3c8e-4d7b-9a3e-0d5e2b7c9a10"
DEMO_SPEC = {
    "uuid": DEMO_UUID,
    "name": "demo",
    "hostname": "demo",
    "project_id": "demo-project",
    "availability_zone": "nova",
    "flavor": "m1.small",
    "keys": [
        {
            "name": "demo",
            "type": "ssh",
            "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGRlbW8tb25seS1ub3QtYS1yZWFsLWtleS0wMDAw "
            "demo@metaboot",
        }
    ],
    "meta": {"purpose": "metaboot demo"},
    "user_data": "#cloud-config\nhostname: demo\n",
    "ports": [
        {
            "network_id": "demo",
            "mac": "fa:16:3e:00:00:01",
            "fixed_ips": ["127.0.0.1/8", "::1/128"],
        }
    ],
}


def demo_instance() -> Instance:
    return parse_spec(DEMO_SPEC)


def register_demo(registry: Registry) -> None:
    """Add the demo instance, or bring it back to its defined state."""
    instance = demo_instance()
    try:
        registry.get(instance.uuid)
    except NotFoundError:
        registry.add(instance)
        log.info("demo instance %s registered (bound to 127.0.0.1 and ::1)", instance.uuid)
    else:
        registry.update(instance)
        log.info("demo instance %s refreshed", instance.uuid)


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"metaboot {command}",
        description="Serve nova-compatible OpenStack and EC2 metadata over HTTP.",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="registry database (default: $METABOOT_DB, else /var/lib/metaboot/registry.db for "
        "root, else $XDG_STATE_HOME/metaboot/registry.db)",
    )
    parser.add_argument(
        "--listen",
        metavar="ADDR",
        action="append",
        help="HOST:PORT, [IPv6]:PORT or unix:PATH; repeatable (default 127.0.0.1:8775)",
    )
    parser.add_argument(
        "--admin-listen", metavar="ADDR", action="append", help="where the admin API listens"
    )
    parser.add_argument("--admin-token-file", metavar="FILE", help="admin API bearer token file")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--workers", type=int, metavar="N", help="serving processes")
    parser.add_argument(
        "--trusted-proxy",
        metavar="CIDR",
        action="append",
        help="TCP peer allowed to send X-Forwarded-For and network headers; repeatable",
    )
    parser.add_argument(
        "--demo", action="store_true", help="register a demo instance bound to 127.0.0.1"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug logs one line per request",
    )
    parser.set_defaults(db=None)
    return parser


def main(command: str, argv: list[str]) -> int:
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = load_config(args.config)
    changes: dict[str, object] = {}
    if args.listen:
        for item in args.listen:
            parse_listen(item)
        changes["listen"] = tuple(args.listen)
    if args.admin_listen:
        for item in args.admin_listen:
            parse_listen(item, "--admin-listen")
        changes["admin_listen"] = tuple(args.admin_listen)
    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(
                f"--admin-token-file: {err.strerror}: {args.admin_token_file}"
            ) from err
        if not token:
            raise ConfigError(f"--admin-token-file: {args.admin_token_file} is empty")
        changes["admin_token"] = token
    if args.workers is not None:
        if not 1 <= args.workers <= 256:
            raise ConfigError("--workers must be 1..256")
        changes["workers"] = args.workers
    if args.trusted_proxy:
        changes["trusted_proxies"] = config.trusted_proxies + parse_trusted(
            args.trusted_proxy, "--trusted-proxy"
        )
    config = replace(config, **changes)  # type: ignore[arg-type]
    if not config.admin_token:
        for item in config.admin_listen:
            if not _loopback(parse_listen(item, "--admin-listen")):
                raise ConfigError(
                    f"--admin-listen {item}: not a loopback address, so the admin API needs a "
                    "token (service.admin_token or admin_token_file, or --admin-token-file)"
                )
    db_url = args.db or config.db or default_db_url()
    if args.demo:
        with Registry.open(db_url) as registry:
            register_demo(registry)
    log.info("registry %s", _display(db_url))

    from metaboot.service.server import serve

    return serve(config, db_url)


def _loopback(endpoint: Endpoint) -> bool:
    if endpoint.path is not None:
        return True
    if endpoint.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(endpoint.host).is_loopback
    except ValueError:
        return False


def _display(url: str) -> str:
    """The URL without a password, for the log."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        cred, _, host = rest.rpartition("@")
        user = cred.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
