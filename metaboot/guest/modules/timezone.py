"""timezone: ``/etc/localtime`` pointing at the zone's file in the root's zoneinfo, and Debian's
``/etc/timezone``; an unknown zone is an error, nothing is changed."""

from __future__ import annotations

import os
import re

from metaboot.errors import ConfigError
from metaboot.guest.modules._cfg import get_str
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os.files import symlink

ZONEINFO = "/usr/share/zoneinfo"
_ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


def handle(ctx: ModuleContext) -> None:
    zone = get_str(ctx.cfg, "timezone")
    if not zone:
        return
    if not _ZONE_RE.match(zone):
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
