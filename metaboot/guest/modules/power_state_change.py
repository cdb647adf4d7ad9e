"""power_state_change: ``power_state`` — power off, halt or reboot after the agent has finished.

``condition`` (true by default) may be false, or a command that must exit 0. On a root that is
not the live system nothing is ever shut down: the report says which command would have run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from metaboot.errors import ConfigError
from metaboot.guest.modules._cfg import unknown_keys
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import runner_for, shellify
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.records import dataclass

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

_KNOWN = {"mode", "delay", "message", "timeout", "condition"}


@dataclass(frozen=True)
class PowerPlan:
    argv: list[str]
    timeout: float
    condition: bool | str | list[Any]


def plan(cfg: Mapping[str, Any]) -> PowerPlan:
    """The shutdown command and its wait, from ``power_state`` (pure)."""
    settings = cfg.get("power_state")
    if not isinstance(settings, Mapping):
        raise ConfigError(f"power_state: expected a mapping with a mode, got {settings!r}")
    if "mode" not in settings:
        raise ConfigError("power_state.mode: required (poweroff, reboot or halt)")
    timeout = settings.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"power_state.timeout: expected seconds, got {timeout!r}")
    condition = settings.get("condition", True)
    if not isinstance(condition, (bool, str, list)):
        raise ConfigError(
            f"power_state.condition: expected true, false or a command, got {condition!r}"
        )
    from metaboot.guest.os import power  # on use: most boots ask for no power change

    argv = power.shutdown_argv(
        str(settings["mode"]), settings.get("delay", "now"), settings.get("message")
    )
    return PowerPlan(argv, float(timeout), condition)


def condition_met(ctx: ModuleContext, condition: bool | str | list[Any]) -> bool:
    if isinstance(condition, bool):
        return condition
    script = shellify([condition], "power_state.condition")
    path = f"{ctx.state_dir}/power-state-condition"
    ctx.root.write_file(path, script, mode=0o700, owner=0, group=0)
    runner = runner_for(ctx)
    refusal = runner.refusal()
    if refusal is not None:
        ctx.report.warn(f"power_state.condition not evaluated: {refusal}")
        return False
    return runner.run(["/bin/sh", path], label="power_state condition") == 0


def handle(ctx: ModuleContext) -> None:
    settings = ctx.cfg.get("power_state")
    if isinstance(settings, Mapping):
        for warning in unknown_keys("power_state", settings, _KNOWN):
            ctx.report.warn(warning)
    wanted = plan(ctx.cfg)
    command = " ".join(wanted.argv)
    if not ctx.root.is_live:
        ctx.report.warn(
            f"power_state: {ctx.root.base} is not the live system; would run: {command}"
        )
        return
    if not condition_met(ctx, wanted.condition):
        ctx.report.changed(f"power_state: condition not met; not running {command}")
        return
    from metaboot.guest.os import power

    power.launch_after_exit(wanted.argv, os.getpid(), wanted.timeout)
    ctx.report.changed(f"power_state: will run {command} once metaboot exits")


MODULE = Module(
    name="power_state_change",
    stage=Stage.FINAL,
    frequency=Frequency.INSTANCE,
    keys=("power_state",),
    handle=handle,
    schema=top(
        {
            "power_state": {
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string", "enum": ["poweroff", "reboot", "halt"]},
                    "delay": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                    "message": {"type": "string"},
                    "timeout": {"type": "integer"},
                    "condition": {"type": ["string", "boolean", "array"]},
                },
            },
            **ROOT_COMMANDS,
        }
    ),
)
