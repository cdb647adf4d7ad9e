"""The service's configuration: a TOML file (``metaboot.toml``) plus command-line overrides.

Parsing is pure (text in, :class:`ServiceConfig` out); reading referenced files (secrets, the
static vendor data) happens in :func:`load_config`, so every error names the file and the key.
Unknown keys are refused rather than ignored: a typo in a security setting must not silently
leave the default in force.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metaboot.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_LISTEN = "127.0.0.1:8775"


@dataclass(frozen=True)
class DynamicTarget:
    """A DynamicJSON vendor-data target: its key in vendor_data2.json and the URL POSTed to."""

    name: str
    url: str


@dataclass(frozen=True)
class ServiceConfig:
    db: str | None = None
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    admin_listen: tuple[str, ...] = ()
    admin_token: str = field(default="", repr=False)
    workers: int = 1
    # metadata
    dhcp_domain: str = ""
    # identification
    trusted_proxies: tuple[Network, ...] = ()
    direct: bool = True  # identify plain TCP clients by their source address
    shared_secret: bytes = field(default=b"", repr=False)  # signed mode is on iff non-empty
    # vendor data
    # The StaticJSON provider's document ({} as nova has with no file); None turns it off
    static_vendor_data: Mapping[str, Any] | None = field(default_factory=dict)
    dynamic_targets: tuple[DynamicTarget, ...] = ()
    vendor_connect_timeout: float = 5.0
    vendor_read_timeout: float = 5.0
    vendor_cache_seconds: float = 300.0
    # rate limits (per instance, per worker process)
    rate_limit_requests: int = 200
    rate_limit_window: float = 10.0  # 0 requests = off
    # IMDSv2 session tokens
    token_key: bytes = field(default=b"", repr=False)  # empty: random per start
    # cache
    cache_refresh_seconds: float = 300.0  # full resync as a safety net; 0 = rely on watch only
    # HTTP limits
    max_header_bytes: int = 8192
    max_body_bytes: int = 65536
    request_timeout: float = 10.0
    keepalive_timeout: float = 30.0

    @property
    def signed_mode(self) -> bool:
        return bool(self.shared_secret)


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "service": {
        "db": str,
        "listen": (str, list),
        "admin_listen": (str, list),
        "admin_token": str,
        "admin_token_file": str,
        "workers": int,
    },
    "metadata": {"dhcp_domain": str},
    "identify": {
        "trusted_proxies": list,
        "direct": bool,
        "shared_secret": str,
        "shared_secret_file": str,
    },
    "vendor_data": {
        "static_file": str,
        "static_enabled": bool,
        "dynamic_targets": list,
        "connect_timeout": (int, float),
        "read_timeout": (int, float),
        "cache_seconds": (int, float),
    },
    "rate_limit": {"requests": int, "window_seconds": (int, float)},
    "tokens": {"key_file": str},
    "cache": {"refresh_seconds": (int, float)},
    "http": {
        "max_header_bytes": int,
        "max_body_bytes": int,
        "request_timeout": (int, float),
        "keepalive_timeout": (int, float),
    },
}


def _check_shape(data: Mapping[str, Any], source: str) -> None:
    for section, body in data.items():
        if section not in _SCHEMA:
            known = ", ".join(_SCHEMA)
            raise ConfigError(f"{source}: unknown section [{section}] (known: {known})")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in body.items():
            if key not in _SCHEMA[section]:
                raise ConfigError(
                    f"{source}: unknown key {section}.{key} (known: {', '.join(_SCHEMA[section])})"
                )
            expected = _SCHEMA[section][key]
            if isinstance(value, bool) and expected is not bool:
                raise ConfigError(f"{source}: {section}.{key} must not be a boolean")
            if not isinstance(value, expected):
                raise ConfigError(f"{source}: {section}.{key} has the wrong type")


def _read_text(path: str, what: str, base: Path) -> str:
    full = (base / path).expanduser()
    try:
        return full.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{what}: cannot read {full}: {err.strerror}") from err


def parse_trusted(values: list[Any], where: str) -> tuple[Network, ...]:
    nets = []
    for i, item in enumerate(values):
        if not isinstance(item, str):
            raise ConfigError(f"{where}[{i}]: must be an address or CIDR string")
        try:
            net = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError as err:
            raise ConfigError(f"{where}[{i}]: {item!r} is not an address or CIDR") from err
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:
                net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
        nets.append(net)
    return tuple(nets)


def parse_target(text: str, where: str) -> DynamicTarget:
    """``name@url``, split at the first ``@`` as nova does; both halves are required."""
    name, sep, url = text.partition("@")
    if not sep or not name.strip():
        raise ConfigError(f"{where}: {text!r} must be name@url")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: {text!r}: the URL must be http:// or https://")
    return DynamicTarget(name.strip(), url.strip())


def _as_listen(value: str | list[Any], where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(x, str) for x in items):
        raise ConfigError(f"{where}: every listen address must be a string")
    for item in items:
        parse_listen(item, where)
    return tuple(items)


def _relative_sockets(items: tuple[str, ...], base: Path) -> tuple[str, ...]:
    """``unix:PATH`` with a relative PATH is relative to the TOML file, as every file path."""
    return tuple(
        f"unix:{base / item[5:]}"
        if item.startswith("unix:") and not item[5:].startswith("/")
        else item
        for item in items
    )


@dataclass(frozen=True)
class Endpoint:
    """Where to listen: a TCP host and port, or a UNIX socket path."""

    host: str = ""
    port: int = 0
    path: str | None = None  # set for a UNIX socket

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(text: str, where: str = "--listen") -> Endpoint:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH``."""
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ConfigError(f"{where}: {text!r}: unix: needs a socket path")
        return Endpoint(path=path)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{where}: {text!r} must be HOST:PORT, [IPv6]:PORT or unix:PATH")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ConfigError(f"{where}: {text!r} has no host")
    return Endpoint(host, int(port))


def parse_config(data: Mapping[str, Any], source: str, base: Path) -> ServiceConfig:
    """Turn the TOML mapping into a :class:`ServiceConfig`; ``base`` resolves relative paths."""
    _check_shape(data, source)
    svc = data.get("service", {})
    ident = data.get("identify", {})
    vendor = data.get("vendor_data", {})
    rate = data.get("rate_limit", {})
    http = data.get("http", {})
    cfg = ServiceConfig()
    changes: dict[str, Any] = {}
    if "db" in svc:
        db = svc["db"]
        if db and "://" not in db:  # a bare SQLite path: relative to the TOML file, as any path
            db = str(base / Path(db).expanduser())
        changes["db"] = db
    if "listen" in svc:
        changes["listen"] = _relative_sockets(
            _as_listen(svc["listen"], f"{source}: service.listen"), base
        )
    if "admin_listen" in svc:
        changes["admin_listen"] = _relative_sockets(
            _as_listen(svc["admin_listen"], f"{source}: service.admin_listen"), base
        )
    if "admin_token" in svc and "admin_token_file" in svc:
        raise ConfigError(f"{source}: give service.admin_token or admin_token_file, not both")
    if "admin_token" in svc:
        changes["admin_token"] = svc["admin_token"]
    if "admin_token_file" in svc:
        changes["admin_token"] = _read_text(
            svc["admin_token_file"], f"{source}: service.admin_token_file", base
        ).strip()
    if "admin_token" in changes and not changes["admin_token"].strip():
        # as --admin-token-file: an empty token must not quietly mean "no authentication"
        key = "admin_token_file" if "admin_token_file" in svc else "admin_token"
        raise ConfigError(
            f"{source}: service.{key} is empty (remove the key to run the admin API without a "
            "token, which only loopback and UNIX-socket listeners allow)"
        )
    if "workers" in svc:
        if not 1 <= svc["workers"] <= 256:
            raise ConfigError(f"{source}: service.workers must be 1..256")
        changes["workers"] = svc["workers"]
    if "dhcp_domain" in data.get("metadata", {}):
        changes["dhcp_domain"] = data["metadata"]["dhcp_domain"].strip(".")
    if "trusted_proxies" in ident:
        changes["trusted_proxies"] = parse_trusted(
            ident["trusted_proxies"], f"{source}: identify.trusted_proxies"
        )
    if "direct" in ident:
        changes["direct"] = ident["direct"]
    if "shared_secret" in ident and "shared_secret_file" in ident:
        raise ConfigError(f"{source}: give identify.shared_secret or shared_secret_file, not both")
    if "shared_secret" in ident:
        changes["shared_secret"] = ident["shared_secret"].encode("utf-8")
    if "shared_secret_file" in ident:
        secret = _read_text(
            ident["shared_secret_file"], f"{source}: identify.shared_secret_file", base
        ).strip()
        if not secret:
            raise ConfigError(
                f"{source}: identify.shared_secret_file is empty; signed identification "
                "refuses to run with an empty secret"
            )
        changes["shared_secret"] = secret.encode("utf-8")
    elif "shared_secret" in ident and not ident["shared_secret"]:
        raise ConfigError(
            f"{source}: identify.shared_secret is empty; signed identification refuses to run "
            "with an empty secret (remove the key to turn signed mode off)"
        )
    if "static_file" in vendor:
        where = f"{source}: vendor_data.static_file"
        text = _read_text(vendor["static_file"], where, base)
        try:
            static = json.loads(text)
        except ValueError as err:
            raise ConfigError(f"{where}: not valid JSON: {err}") from err
        if not isinstance(static, dict):
            raise ConfigError(f"{where}: must hold a JSON object")
        changes["static_vendor_data"] = static
    if vendor.get("static_enabled") is False:
        if "static_file" in vendor:
            raise ConfigError(
                f"{source}: vendor_data.static_file given with static_enabled = false"
            )
        changes["static_vendor_data"] = None
    if "dynamic_targets" in vendor:
        targets = [
            parse_target(t, f"{source}: vendor_data.dynamic_targets[{i}]")
            if isinstance(t, str)
            else _bad_target(source, i)
            for i, t in enumerate(vendor["dynamic_targets"])
        ]
        names = [t.name for t in targets]
        dups = {n for n in names if names.count(n) > 1}
        if dups or "static" in names:
            raise ConfigError(
                f"{source}: vendor_data.dynamic_targets: duplicate or reserved name "
                f"{sorted(dups | ({'static'} & set(names)))}"
            )
        changes["dynamic_targets"] = tuple(targets)
    for key, attr, low in (
        ("connect_timeout", "vendor_connect_timeout", 0.1),
        ("read_timeout", "vendor_read_timeout", 0.1),
        ("cache_seconds", "vendor_cache_seconds", 0.0),
    ):
        if key in vendor:
            if vendor[key] < low:
                raise ConfigError(f"{source}: vendor_data.{key} must be >= {low}")
            changes[attr] = float(vendor[key])
    if "requests" in rate:
        if rate["requests"] < 0:
            raise ConfigError(f"{source}: rate_limit.requests must be >= 0 (0 turns it off)")
        changes["rate_limit_requests"] = rate["requests"]
    if "window_seconds" in rate:
        if rate["window_seconds"] <= 0:
            raise ConfigError(f"{source}: rate_limit.window_seconds must be > 0")
        changes["rate_limit_window"] = float(rate["window_seconds"])
    if "key_file" in data.get("tokens", {}):
        where = f"{source}: tokens.key_file"
        key = _read_text(data["tokens"]["key_file"], where, base).strip()
        if len(key) < 32:
            raise ConfigError(f"{where}: the key must be at least 32 characters")
        changes["token_key"] = key.encode("utf-8")
    if "refresh_seconds" in data.get("cache", {}):
        value = data["cache"]["refresh_seconds"]
        if value < 0:
            raise ConfigError(f"{source}: cache.refresh_seconds must be >= 0")
        changes["cache_refresh_seconds"] = float(value)
    for key in ("max_header_bytes", "max_body_bytes", "request_timeout", "keepalive_timeout"):
        if key in http:
            if http[key] <= 0:
                raise ConfigError(f"{source}: http.{key} must be > 0")
            changes[key] = http[key]
    if changes.get("max_body_bytes", cfg.max_body_bytes) < 1020:
        raise ConfigError(f"{source}: http.max_body_bytes must allow a 1020-byte password")
    return replace(cfg, **changes)


def _bad_target(source: str, index: int) -> DynamicTarget:
    raise ConfigError(f"{source}: vendor_data.dynamic_targets[{index}] must be a name@url string")


def load_config(path: str | os.PathLike[str] | None) -> ServiceConfig:
    """Read a TOML file (or return the defaults when ``path`` is None)."""
    if path is None:
        return ServiceConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"--config: cannot read {file}: {err.strerror}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from err
    return parse_config(data, str(file), file.parent)
