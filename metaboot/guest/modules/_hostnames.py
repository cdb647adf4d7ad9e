"""Which host name and FQDN to use, from cloud-config and the instance's metadata (pure).

cloud-init's rules: ``fqdn`` wins, its first label being the host name unless ``hostname`` is
also given; a ``hostname`` with dots counts as an FQDN; otherwise the metadata's
``local-hostname``. Added here: ``strip_domain`` drops DHCP domain suffixes the platform appends
(nova's ``dhcp_domain``, ``novalocal`` by default) from the metadata name, and an IPv4 address
given as a name becomes ``ip-a-b-c-d``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from metaboot.errors import ConfigError
from metaboot.guest.addresses import ipv4_address
from metaboot.guest.modules._cfg import get_bool, get_str, get_str_list
from metaboot.guest.modules.base import ModuleContext
from metaboot.guest.os.hostnames import check_hostname
from metaboot.guest.records import dataclass
from metaboot.guest.sources.base import InstanceData

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

SCHEMA: dict[str, Any] = {
    "hostname": {"type": "string"},
    "fqdn": {"type": "string"},
    "preserve_hostname": {"type": "boolean"},
    "prefer_fqdn_over_hostname": {"type": "boolean"},
    "create_hostname_file": {"type": "boolean"},
    "strip_domain": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}


@dataclass(frozen=True)
class Names:
    hostname: str
    fqdn: str | None

    def to_write(self, prefer_fqdn: bool) -> str:
        return self.fqdn if prefer_fqdn and self.fqdn else self.hostname


def strip_domains(name: str, suffixes: list[str]) -> str:
    lowered = name.lower().rstrip(".")
    for suffix in suffixes:
        tail = "." + suffix.strip(".").lower()
        if suffix.strip(".") and lowered.endswith(tail) and len(lowered) > len(tail):
            return name.rstrip(".")[: -len(tail)]
    return name.rstrip(".")


def metadata_name(instance: InstanceData) -> str | None:
    name = instance.local_hostname or instance.metadata.get("hostname")
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.strip()
    try:
        address = ipv4_address(name)
    except ValueError:
        return name
    return "ip-" + str(address).replace(".", "-")


def resolve(cfg: Mapping[str, Any], instance: InstanceData) -> Names | None:
    """The names to use, validated; None when neither config nor metadata has one."""
    fqdn = get_str(cfg, "fqdn")
    hostname = get_str(cfg, "hostname")
    if fqdn:
        fqdn = check_hostname(fqdn, "fqdn")
        short = check_hostname(hostname, "hostname") if hostname else fqdn.split(".")[0]
        return Names(short, fqdn)
    if hostname:
        hostname = check_hostname(hostname, "hostname")
        if "." in hostname:
            return Names(hostname.split(".")[0], hostname)
        domain = _metadata_domain(cfg, instance)
        return Names(hostname, f"{hostname}.{domain}" if domain else None)
    name = metadata_name(instance)
    if name is None:
        return None
    name = strip_domains(name, get_str_list(cfg, "strip_domain"))
    try:
        name = check_hostname(name, "fqdn")
    except ConfigError as err:
        raise ConfigError(f"metadata hostname: {err}") from None
    if "." in name:
        return Names(name.split(".")[0], name)
    return Names(name, None)


def _metadata_domain(cfg: Mapping[str, Any], instance: InstanceData) -> str | None:
    name = metadata_name(instance)
    if name is None:
        return None
    name = strip_domains(name, get_str_list(cfg, "strip_domain"))
    return name.split(".", 1)[1] if "." in name else None


def prefer_fqdn(cfg: Mapping[str, Any]) -> bool:
    return get_bool(cfg, "prefer_fqdn_over_hostname", False)


def record_path(ctx: ModuleContext) -> str:
    return f"{ctx.state_dir}/set-hostname.json"


def record(ctx: ModuleContext, names: Names, written: str) -> None:
    """Remember what we wrote, so update_hostname can tell a user's own change from ours."""
    data = {"hostname": names.hostname, "fqdn": names.fqdn, "written": written}
    ctx.root.write_file(record_path(ctx), json.dumps(data) + "\n", mode=0o644)


def recorded(ctx: ModuleContext) -> str | None:
    try:
        data = json.loads(ctx.root.read_text(record_path(ctx)))
    except (OSError, ValueError):
        return None
    written = data.get("written") if isinstance(data, dict) else None
    return written if isinstance(written, str) else None
