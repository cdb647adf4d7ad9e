"""write_files_deferred: the write_files entries marked ``defer: true``, in the final stage."""

from __future__ import annotations

from metaboot.guest.modules._schemas import WRITE_FILES, top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.modules.write_files import write_files


def handle(ctx: ModuleContext) -> None:
    write_files(ctx, deferred=True)


MODULE = Module(
    name="write_files_deferred",
    stage=Stage.FINAL,
    frequency=Frequency.INSTANCE,
    keys=("write_files",),
    handle=handle,
    schema=top({"write_files": WRITE_FILES}),
)
