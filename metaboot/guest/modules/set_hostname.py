"""set_hostname: the system's host name from cloud-config or metadata, once per instance."""

from __future__ import annotations

from metaboot.guest.modules import _hostnames
from metaboot.guest.modules._cfg import get_bool
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os import hostnames


def apply(ctx: ModuleContext, names: _hostnames.Names) -> None:
    name = names.to_write(_hostnames.prefer_fqdn(ctx.cfg))
    create_file = get_bool(ctx.cfg, "create_hostname_file", True)
    has_file = create_file or ctx.root.exists(hostnames.HOSTNAME_FILE)
    if has_file and hostnames.write_hostname(ctx.root, name):
        ctx.report.changed(f"host name set to {name} in {hostnames.HOSTNAME_FILE}")
    if hostnames.set_running_hostname(ctx.root, name):
        ctx.report.changed(f"running host name set to {name}")
    _hostnames.record(ctx, names, name)


def handle(ctx: ModuleContext) -> None:
    if get_bool(ctx.cfg, "preserve_hostname", False):
        ctx.report.changed("host name left as it is (preserve_hostname)")
        return
    names = _hostnames.resolve(ctx.cfg, ctx.instance)
    if names is None:
        ctx.report.warn("no hostname in cloud-config or metadata; host name left as it is")
        return
    if names.hostname == "localhost":
        ctx.report.warn("the host name given is 'localhost'; host name left as it is")
        return
    apply(ctx, names)


MODULE = Module(
    name="set_hostname",
    stage=Stage.NETWORK,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(_hostnames.SCHEMA),
)
