"""power_state commands, and the waiter that runs one only after the agent has exited."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import power


@pytest.mark.parametrize(
    ("mode", "delay", "message", "argv"),
    [
        ("poweroff", "now", None, ["shutdown", "-P", "now"]),
        ("reboot", 5, "bye", ["shutdown", "-r", "+5", "bye"]),
        ("halt", "+2", "", ["shutdown", "-H", "+2"]),
        ("reboot", "10", None, ["shutdown", "-r", "+10"]),
    ],
)
def test_shutdown_argv(mode: str, delay: object, message: str | None, argv: list[str]) -> None:
    assert power.shutdown_argv(mode, delay, message) == argv


@pytest.mark.parametrize(
    ("mode", "delay"), [("sleep", "now"), ("reboot", "soon"), ("reboot", -1), ("halt", True)]
)
def test_bad_power_state(mode: str, delay: object) -> None:
    with pytest.raises(ConfigError, match="power_state"):
        power.shutdown_argv(mode, delay)


def wait_for(path: Path, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def test_waiter_runs_command_after_process_exits(tmp_path: Path) -> None:
    done = tmp_path / "done"
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"])
    try:
        waiter = power.launch_after_exit(["touch", str(done)], agent.pid, timeout=30)
        time.sleep(0.3)
        assert agent.poll() is None and not done.exists()  # still waiting for the "agent"
        agent.wait()
        assert wait_for(done)
        waiter.wait(timeout=10)
    finally:
        agent.kill()


def test_waiter_gives_up_waiting_after_timeout(tmp_path: Path) -> None:
    done = tmp_path / "done"
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        waiter = power.launch_after_exit(["touch", str(done)], agent.pid, timeout=0.3)
        assert wait_for(done)
        assert agent.poll() is None
        waiter.wait(timeout=10)
    finally:
        agent.kill()
        agent.wait()
