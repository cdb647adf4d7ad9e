"""update_etc_hosts: ``manage_etc_hosts`` — true (or the old 'template') rewrites /etc/hosts on
every boot; 'localhost' only keeps the machine's own 127.0.1.1 line naming it; false leaves it."""

from __future__ import annotations

from metaboot.errors import ConfigError
from metaboot.guest.modules import _hostnames
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os import hostnames


def handle(ctx: ModuleContext) -> None:
    mode = ctx.cfg.get("manage_etc_hosts", False)
    if mode is False or mode is None:
        return
    if not (mode is True or mode in ("template", "localhost")):
        raise ConfigError(f"manage_etc_hosts: expected true, false or 'localhost', got {mode!r}")
    names = _hostnames.resolve(ctx.cfg, ctx.instance)
    if names is None:
        ctx.report.warn("manage_etc_hosts: no hostname in cloud-config or metadata")
        return
    if mode == "localhost":
        text = hostnames.update_local_entry(
            ctx.root.read_text(hostnames.HOSTS_FILE, default=""), names.hostname, names.fqdn
        )
    else:
        if mode == "template":
            ctx.report.warn("manage_etc_hosts: 'template' is deprecated; use true")
        text = hostnames.render_hosts(names.hostname, names.fqdn)
    if hostnames.write_hosts(ctx.root, text):
        ctx.report.changed(f"{hostnames.HOSTS_FILE} names {names.fqdn or names.hostname}")


MODULE = Module(
    name="update_etc_hosts",
    stage=Stage.NETWORK,
    frequency=Frequency.ALWAYS,
    keys=("manage_etc_hosts",),
    handle=handle,
    schema=top(
        {
            "manage_etc_hosts": {"enum": [True, False, "localhost", "template"]},
            "hostname": {"type": "string"},
            "fqdn": {"type": "string"},
            "strip_domain": _hostnames.SCHEMA["strip_domain"],
        }
    ),
)
