"""Starting the programs every first boot starts, without the subprocess module."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from metaboot.guest.os import spawn


def test_output_and_status() -> None:
    assert spawn.output(["sh", "-c", "printf 'a\\nb\\n'; echo err >&2; exit 3"], timeout=5) == (
        3,
        "a\nb\n",
    )


def test_large_output_is_read_whole() -> None:
    code, text = spawn.output(["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"], timeout=10)
    assert code == 0 and text == "x" * 300000


def test_a_program_that_runs_too_long_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"sh did not finish within 0\.3 s"):
        spawn.output(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=0.3)
    assert time.monotonic() - started < 5
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(pid, 0)


def test_a_missing_program_is_an_os_error() -> None:
    with pytest.raises(FileNotFoundError):
        spawn.output(["metaboot-no-such-program"], timeout=1)


def test_detached_runs_in_its_own_session_with_no_streams(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = f"{{ echo $$ $(cut -d' ' -f6 /proc/$$/stat); readlink /proc/$$/fd/0; }} > {out}"
    pid = spawn.detached(["sh", "-c", script])
    os.waitpid(pid, 0)  # a test reaps it; the agent leaves that to init
    ids, stdin = out.read_text().splitlines()
    assert ids == f"{pid} {pid}"  # the session leader of its own session
    assert stdin == "/dev/null"


def test_the_child_gets_sigpipe_back() -> None:
    """Python ignores SIGPIPE; a program it starts must not inherit that (as with subprocess)."""
    code, text = spawn.output(["sh", "-c", "grep SigIgn /proc/self/status"], timeout=5)
    ignored = int(text.split()[1], 16)
    assert code == 0 and not ignored & (1 << (13 - 1))
