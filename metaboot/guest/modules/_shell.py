"""Commands from cloud-config as shell scripts, and running directories of scripts.

``bootcmd``/``runcmd`` items are cloud-init's: a string is a shell line, a list is one command
whose words are quoted for the shell. Script directories run like ``run-parts``: sorted names,
executable regular files only, every script runs even when one fails.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence

from metaboot.errors import ConfigError
from metaboot.guest.modules.base import ModuleContext
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from metaboot.guest.os.commands import CommandRunner


def shellify(items: Any, key: str) -> str:
    """A ``#!/bin/sh`` script from a cloud-config command list (pure)."""
    if not isinstance(items, list):
        raise ConfigError(f"{key}: expected a list of commands, got {items!r}")
    lines = ["#!/bin/sh"]
    for index, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, list) and all(isinstance(w, (str, int, float)) for w in item):
            import shlex  # only for commands given as lists: not every boot has one

            lines.append(" ".join(shlex.quote(str(word)) for word in item))
        else:
            raise ConfigError(
                f"{key}[{index}]: expected a string or a list of strings, got {item!r}"
            )
    return "\n".join(lines) + "\n"


def runner_for(ctx: ModuleContext) -> CommandRunner:
    """The runner for ``ctx``'s root and policy. The command machinery is imported here, on
    use: every boot loads the script modules, few boots have a script or command to run."""
    from metaboot.guest.os.commands import CommandRunner, policy_from

    return CommandRunner(ctx.root, policy_from(ctx.cfg))


def executable_scripts(root: Root, directory: str) -> tuple[list[str], list[str]]:
    """(scripts to run, files skipped because they are not executable) in ``directory``."""
    run: list[str] = []
    skipped: list[str] = []
    for name in root.listdir(directory):
        path = f"{directory}/{name}"
        try:
            info = os.stat(root.host_path(path))
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        (run if info.st_mode & 0o111 else skipped).append(path)
    return run, skipped


def run_parts(
    ctx: ModuleContext,
    directories: Sequence[str],
    *,
    prefix: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """Run every executable script of ``directories``; raise ConfigError naming any that failed.

    When the policy forbids running commands in this root, nothing runs and the report says so.
    """
    scripts: list[str] = []
    for directory in directories:
        found, skipped = executable_scripts(ctx.root, directory)
        scripts += found
        for path in skipped:
            ctx.report.warn(f"{path} is not executable; not run")
    if not scripts:
        return
    runner = runner_for(ctx)
    refusal = runner.refusal()
    if refusal is not None:
        ctx.report.warn(f"{len(scripts)} script(s) not run ({', '.join(scripts)}): {refusal}")
        return
    failed: list[str] = []
    for path in scripts:
        status = runner.run([*prefix, path], env=env, label=path)
        if status == 0:
            ctx.report.changed(f"ran {path}")
        else:
            failed.append(f"{path} (exit {status})")
    if failed:
        from metaboot.guest.os.commands import CommandFailed

        raise CommandFailed(
            f"{len(failed)} of {len(scripts)} scripts failed: {', '.join(failed)}"
            f" (output in {runner.output_log})"
        )
