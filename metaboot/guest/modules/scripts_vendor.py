"""scripts_vendor: vendor-data ``#!`` scripts, once per instance, unless the user turned them off.

``vendor_data: {enabled: false}`` in user-data disables them; ``prefix`` (a command, string or
list) is put in front of each script, e.g. ``[timeout, 60]``.
"""

from __future__ import annotations

from metaboot.errors import ConfigError
from metaboot.guest.modules._cfg import get_mapping, unknown_keys
from metaboot.guest.modules._paths import vendor_scripts_dir
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import run_parts
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    settings = get_mapping(ctx.cfg, "vendor_data")
    for message in unknown_keys("vendor_data", settings, {"enabled", "prefix"}):
        ctx.report.warn(message)
    enabled = settings.get("enabled", True)
    if isinstance(enabled, str):  # cloud-init's deprecated spelling
        enabled = enabled.strip().lower() not in ("false", "no", "off", "0")
    if not isinstance(enabled, bool):
        raise ConfigError(f"vendor_data.enabled: expected true or false, got {enabled!r}")
    if not enabled:
        ctx.report.changed("vendor scripts disabled by vendor_data.enabled")
        return
    prefix = settings.get("prefix", [])
    if isinstance(prefix, str):
        import shlex  # only for a prefix given as one string

        prefix = shlex.split(prefix)
    if not isinstance(prefix, list) or not all(
        isinstance(p, (str, int)) and not isinstance(p, bool) for p in prefix
    ):
        raise ConfigError(
            f"vendor_data.prefix: expected a command (string or list), got {prefix!r}"
        )
    run_parts(ctx, [vendor_scripts_dir(ctx)], prefix=[str(p) for p in prefix])


MODULE = Module(
    name="scripts_vendor",
    stage=Stage.FINAL,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(
        {
            "vendor_data": {
                "type": "object",
                "properties": {
                    "enabled": {"type": ["boolean", "string"]},
                    "prefix": {
                        "type": ["array", "string"],
                        "items": {"type": ["string", "integer"]},
                    },
                },
            },
            **ROOT_COMMANDS,
        }
    ),
)
