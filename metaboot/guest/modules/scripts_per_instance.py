"""scripts_per_instance: the image's ``scripts/per-instance/`` scripts, once per instance."""

from __future__ import annotations

from metaboot.guest.modules._paths import per_frequency_dirs
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import run_parts
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    run_parts(ctx, per_frequency_dirs(ctx, "instance"))


MODULE = Module(
    name="scripts_per_instance",
    stage=Stage.FINAL,
    frequency=Frequency.INSTANCE,
    keys=(),
    handle=handle,
    schema=top(ROOT_COMMANDS),
)
