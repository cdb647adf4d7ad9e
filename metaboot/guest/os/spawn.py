"""Programs a first boot always starts, started without the ``subprocess`` module.

Every first boot runs ``blkid`` (is there a config drive?) and starts ``ssh-keygen`` in the
background. ``import subprocess`` (with threading, selectors, signal, locale and contextlib)
is about 13 M instructions — several percent of a whole first boot, and far more in an
emulated guest — for two calls that ``os.posix_spawnp`` makes directly. Everything else that
runs a program (useradd, scripts, runcmd) does so on boots that need it and keeps using
``subprocess``.
"""

from __future__ import annotations

import os
import select
import time

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Sequence

_KILL = 9  # SIGKILL, without importing signal for one number
# Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, so the
# child gets the defaults back, as subprocess's restore_signals gives them (Linux numbers).
_RESTORE = (13, 25)


def output(argv: Sequence[str], *, timeout: float) -> tuple[int, str]:
    """Run ``argv`` (found on PATH) with stdin and stderr on /dev/null; its exit status and
    standard output. OSError if it cannot be started; TimeoutError, after it has been killed,
    if it runs longer than ``timeout`` seconds."""
    read_end, write_end = os.pipe()  # both close-on-exec; only the dup2 copy reaches the child
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, write_end, 1),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    try:
        pid = os.posix_spawnp(
            argv[0], list(argv), dict(os.environ), file_actions=actions, setsigdef=_RESTORE
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                _kill(pid)
                raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    return _wait(pid, deadline, argv[0], timeout), b"".join(chunks).decode("utf-8", "replace")


def detached(argv: Sequence[str]) -> int:
    """Start ``argv`` in a session of its own with every standard stream on /dev/null, and
    do not wait for it; returns its pid (also its process group id). OSError if it cannot
    be started."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    return os.posix_spawnp(
        argv[0],
        list(argv),
        dict(os.environ),
        file_actions=actions,
        setsid=True,
        setsigdef=_RESTORE,
    )


def _wait(pid: int, deadline: float, name: str, timeout: float) -> int:
    """Reap ``pid``: it closed its output, so it is normally exiting already."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            _kill(pid)
            raise TimeoutError(f"{name} did not finish within {timeout:g} s")
        time.sleep(0.005)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, _KILL)
    except ProcessLookupError:
        return
    os.waitpid(pid, 0)
