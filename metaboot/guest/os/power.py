"""Power off, halt or reboot once the agent has finished (cloud-init's ``power_state``).

The shutdown must not cut the agent short (its status and state files are written last), so a
detached waiter process watches the agent's process and runs the command when it has exited or
after ``timeout`` seconds, whichever comes first. The agent itself never blocks on it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from metaboot.errors import ConfigError

MODES = {"poweroff": "-P", "halt": "-H", "reboot": "-r"}


def shutdown_argv(mode: str, delay: object = "now", message: str | None = None) -> list[str]:
    """``shutdown`` arguments for a cloud-init power_state (pure)."""
    if mode not in MODES:
        raise ConfigError(f"power_state.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if delay in ("now", None):
        when = "now"
    elif isinstance(delay, int) and not isinstance(delay, bool) and delay >= 0:
        when = f"+{delay}"
    elif isinstance(delay, str) and delay.lstrip("+").isdigit():
        when = f"+{int(delay.lstrip('+'))}"
    else:
        raise ConfigError(f"power_state.delay: expected 'now' or minutes, got {delay!r}")
    if message is not None and not isinstance(message, str):
        raise ConfigError(f"power_state.message: expected a string, got {message!r}")
    return ["shutdown", MODES[mode], when, *([message] if message else [])]


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid from the original one)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


_WAITER = r"""
import os, sys, time
pid, start, deadline = int(sys.argv[1]), sys.argv[2], time.monotonic() + float(sys.argv[3])
def alive():
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19] == start
    except OSError:
        return False
while alive() and time.monotonic() < deadline:
    time.sleep(0.1)
os.execvp(sys.argv[4], sys.argv[4:])
"""


def launch_after_exit(argv: Sequence[str], pid: int, timeout: float) -> subprocess.Popen[bytes]:
    """Start a detached process running ``argv`` once ``pid`` has exited (or after ``timeout``)."""
    start = process_start_time(pid) or "0"
    return subprocess.Popen(
        [sys.executable, "-c", _WAITER, str(pid), start, str(float(timeout)), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
