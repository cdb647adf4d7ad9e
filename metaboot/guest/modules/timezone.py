"""timezone: ``/etc/localtime`` pointing at the zone's file in the root's zoneinfo, and Debian's
``/etc/timezone``; an unknown zone is an error, nothing is changed."""

from __future__ import annotations

import os

from metaboot.errors import ConfigError
from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.modules._cfg import get_str
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os.files import symlink

ZONEINFO = "/usr/share/zoneinfo"
_ZONE_CHARS = frozenset(ASCII_ALNUM + "_+-")


def _zone_name(zone: str) -> bool:
    """Names like ``Europe/Berlin``: non-empty parts of letters, digits, '_', '+' or '-'
    joined by '/' (nothing that could climb out of the zoneinfo directory)."""
    return all(part and all(c in _ZONE_CHARS for c in part) for part in zone.split("/"))


def handle(ctx: ModuleContext) -> None:
    zone = get_str(ctx.cfg, "timezone")
    if not zone:
        return
    if not _zone_name(zone):
        raise ConfigError(f"timezone: {zone!r} is not a zone name like 'Europe/Berlin'")
    zone_file = f"{ZONEINFO}/{zone}"
    if not os.path.isfile(ctx.root.host_path(zone_file)):
        raise ConfigError(
            f"timezone: unknown zone {zone!r} ({zone_file} not found; is tzdata installed?)"
        )
    if symlink(ctx.root, "/etc/localtime", zone_file):
        ctx.report.changed(f"/etc/localtime -> {zone_file}")
    debian = ctx.root.exists("/etc/timezone") or ctx.root.exists("/etc/debian_version")
    if debian and ctx.root.read_text("/etc/timezone", default="").strip() != zone:
        ctx.root.write_file("/etc/timezone", zone + "\n", mode=0o644)
        ctx.report.changed(f"/etc/timezone says {zone}")


MODULE = Module(
    name="timezone",
    stage=Stage.CONFIG,
    frequency=Frequency.INSTANCE,
    keys=("timezone",),
    handle=handle,
    schema=top({"timezone": {"type": "string"}}),
)
