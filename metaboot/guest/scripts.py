"""User-data scripts: stored where the script modules look for them, and boothooks run.

Scripts from user-data go to ``instances/<iid>/scripts/`` (vendor-data ones to
``scripts/vendor/``), ``per-boot``/``per-instance``/``per-once`` parts to
``/var/lib/metaboot/scripts/per-*/``: the final stage's ``scripts_*`` modules run them.
Boothooks run here, every boot, inside the target: directly on the live system, through
chroot in another root — never on the host against someone else's tree.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Mapping

from metaboot.guest import layout, volatile
from metaboot.guest.records import dataclass
from metaboot.guest.system import Root
from metaboot.guest.userdata import Script

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

BOOTHOOK_TIMEOUT = 300.0


def store(
    root: Root, idir: str, scripts: Iterable[tuple[Script, bool]], previous: Iterable[str]
) -> list[str]:
    """Write ``(script, from_vendor)`` pairs (boothooks excepted); remove the scripts a
    previous processing of this instance's data wrote that are gone now."""
    written: list[str] = []
    for script, from_vendor in scripts:
        if script.kind == "boothook":
            continue
        if script.kind == "instance-part":
            sub = layout.VENDOR_SCRIPTS if from_vendor else layout.INSTANCE_SCRIPTS
            folder = f"{idir}/{sub}"
        else:
            folder = f"{layout.SCRIPTS_DIR}/{script.kind}"
        path = f"{folder}/{script.name}"
        volatile.write(root, path, script.payload, 0o700)
        written.append(path)
    for path in previous:
        if path not in written and path.startswith(idir + "/"):
            root.remove(path)
    return written


def command_refusal(root: Root, cfg: Mapping[str, Any]) -> str | None:
    """Why user commands cannot run in ``root`` (None: they can) — the policy the modules
    follow too (``root_commands: chroot|skip``)."""
    if root.is_live:
        return None
    if cfg.get("root_commands", "chroot") == "skip":
        return f"root_commands is 'skip' and {root.base} is not the live system"
    if os.geteuid() != 0:
        return f"{root.base} is not the live system and entering it with chroot needs root"
    shell = root.path("/bin/sh")
    if not (shell.exists() and os.access(shell, os.X_OK)):
        return f"{root.base} is not the live system and has no /bin/sh"
    import shutil  # with bz2 and lzma: only when a command must run in a chroot

    if shutil.which("chroot") is None:
        return "chroot is not installed"
    return None


@dataclass
class HookOutcome:
    name: str
    origin: str
    ran: bool
    duration: float = 0.0
    problem: str | None = None  # why it did not run, or how it failed


def run_boothooks(
    root: Root, idir: str, hooks: Iterable[Script], instance_id: str, cfg: Mapping[str, Any]
) -> list[HookOutcome]:
    refusal = command_refusal(root, cfg)
    outcomes = []
    for hook in hooks:
        path = f"{idir}/{layout.BOOTHOOKS}/{hook.name}"
        volatile.write(root, path, hook.payload, 0o700)
        if refusal is not None:
            outcomes.append(HookOutcome(hook.name, hook.origin, False, problem=refusal))
            continue
        argv = [path] if hook.payload.startswith(b"#!") else ["/bin/sh", path]
        if not root.is_live:
            argv = ["chroot", root.base_dir, *argv]
        start = time.perf_counter()
        try:
            proc = root.run(
                argv, env={"INSTANCE_ID": instance_id}, check=False, timeout=BOOTHOOK_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            took = time.perf_counter() - start
            outcomes.append(HookOutcome(hook.name, hook.origin, True, took, str(err)))
            continue
        took = time.perf_counter() - start
        problem = None
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            problem = f"exited {proc.returncode}: {tail}"
        outcomes.append(HookOutcome(hook.name, hook.origin, True, took, problem))
    return outcomes
