"""scripts_per_once: the image's ``scripts/per-once/`` scripts, once ever on this system."""

from __future__ import annotations

from metaboot.guest.modules._paths import per_frequency_dirs
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import run_parts
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    run_parts(ctx, per_frequency_dirs(ctx, "once"))


MODULE = Module(
    name="scripts_per_once",
    stage=Stage.FINAL,
    frequency=Frequency.ONCE,
    keys=(),
    handle=handle,
    schema=top(ROOT_COMMANDS),
)
