"""runcmd: commands written as a script now and run by scripts_user in the final stage.

Being in the user scripts directory, it runs after the user-data ``#!`` parts (sorted names),
as with cloud-init.
"""

from __future__ import annotations

from metaboot.guest.modules._paths import runcmd_script
from metaboot.guest.modules._schemas import COMMAND_LIST, top
from metaboot.guest.modules._shell import shellify
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    script = shellify(ctx.cfg.get("runcmd"), "runcmd")
    path = runcmd_script(ctx)
    ctx.root.makedirs(path.rsplit("/", 1)[0], mode=0o700)
    ctx.root.write_file(path, script, mode=0o700, owner=0, group=0)
    ctx.report.changed(f"wrote {path}")


MODULE = Module(
    name="runcmd",
    stage=Stage.CONFIG,
    frequency=Frequency.INSTANCE,
    keys=("runcmd",),
    handle=handle,
    schema=top({"runcmd": COMMAND_LIST}),
)
