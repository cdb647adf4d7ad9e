"""scripts_user: the user-data ``#!`` scripts and runcmd's script, once per instance."""

from __future__ import annotations

from metaboot.guest.modules._paths import user_scripts_dir
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import run_parts
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    run_parts(ctx, [user_scripts_dir(ctx)])


MODULE = Module(
    name="scripts_user",
    stage=Stage.FINAL,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(ROOT_COMMANDS),
)
