"""bootcmd: commands run early on every boot, before most other modules (cloud-init's keys)."""

from __future__ import annotations

from metaboot.guest.modules._schemas import COMMAND_LIST, ROOT_COMMANDS, top
from metaboot.guest.modules._shell import runner_for, shellify
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    script = shellify(ctx.cfg.get("bootcmd"), "bootcmd")
    path = f"{ctx.state_dir}/bootcmd"
    ctx.root.write_file(path, script, mode=0o700, owner=0, group=0)
    runner = runner_for(ctx)
    refusal = runner.refusal()
    if refusal is not None:
        ctx.report.warn(f"bootcmd not run: {refusal}")
        return
    status = runner.run(
        ["/bin/sh", path], env={"INSTANCE_ID": ctx.instance.instance_id}, label="bootcmd"
    )
    if status != 0:
        from metaboot.guest.os.commands import CommandFailed  # on use

        raise CommandFailed(f"bootcmd exited with status {status} (output in {runner.output_log})")
    ctx.report.changed("ran bootcmd")


MODULE = Module(
    name="bootcmd",
    stage=Stage.NETWORK,
    frequency=Frequency.ALWAYS,
    keys=("bootcmd",),
    handle=handle,
    schema=top({"bootcmd": COMMAND_LIST, **ROOT_COMMANDS}),
)
