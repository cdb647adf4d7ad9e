"""scripts_per_boot: the image's ``scripts/per-boot/`` scripts, run every boot."""

from __future__ import annotations

from metaboot.guest.modules._paths import per_frequency_dirs
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import run_parts
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage


def handle(ctx: ModuleContext) -> None:
    run_parts(ctx, per_frequency_dirs(ctx, "boot"))


MODULE = Module(
    name="scripts_per_boot",
    stage=Stage.FINAL,
    frequency=Frequency.ALWAYS,
    keys=(),
    handle=handle,
    schema=top(ROOT_COMMANDS),
)
