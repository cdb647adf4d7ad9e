"""update_hostname: follow a changed metadata host name on later boots, unless the user changed
the host name themselves since we last set it (then theirs stays)."""

from __future__ import annotations

from metaboot.guest.modules import _hostnames
from metaboot.guest.modules._cfg import get_bool
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.modules.set_hostname import apply
from metaboot.guest.os import hostnames


def handle(ctx: ModuleContext) -> None:
    if get_bool(ctx.cfg, "preserve_hostname", False):
        return
    names = _hostnames.resolve(ctx.cfg, ctx.instance)
    if names is None or names.hostname == "localhost":
        return
    wanted = names.to_write(_hostnames.prefer_fqdn(ctx.cfg))
    current = hostnames.current_hostname(ctx.root)
    ours = _hostnames.recorded(ctx)
    if current == wanted:
        return
    if ours is not None and current is not None and current != ours:
        ctx.report.changed(f"host name {current} was set by someone else; left as it is")
        return
    apply(ctx, names)


MODULE = Module(
    name="update_hostname",
    stage=Stage.NETWORK,
    frequency=Frequency.ALWAYS,
    keys=(),
    handle=handle,
    schema=top(_hostnames.SCHEMA),
)
