"""SSH host keys generated ahead, in the background: started by the local stage, taken (or
thrown away) by the ssh module in the network stage, another process.

RSA's prime search is most of a first boot's agent time. The local stage knows on a first boot
that the ssh module will want host keys, long before the module runs: it starts one
``ssh-keygen`` per missing type, detached and at a lower CPU priority, writing under temporary
names in a private directory on the same filesystem as ``/etc/ssh``. The ssh module decides
with the instance's whole cloud-config (``ssh_keys``, ``ssh_genkeytypes``,
``ssh_deletekeys``) exactly as before, then renames the staged keys it wants into place
(atomic: sshd never sees half a key) and discards the rest. sshd is ordered after the network
stage, so it never starts before the keys are in place.

Each job is ``sh -c 'ssh-keygen …; echo $? > T.status'`` in its own process group: the status
file says when it ended and how, across processes, with no PID to wait on; the group id lets
a job still running be hurried (priority back to normal) or stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

from metaboot.guest.os.hostnames import current_hostname
from metaboot.guest.os.tools import ToolError
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

STAGING = "/etc/ssh/.metaboot-hostkeys"
DEFAULT_KEY_TYPES = ("rsa", "ecdsa", "ed25519")  # cloud-init's ssh_genkeytypes default
KNOWN_TYPES = ("rsa", "ecdsa", "ed25519", "dsa")
BACKGROUND_NICENESS = 10  # runs in the time other boot work leaves, not against it
POLL = 0.02

# $1 type, $2 comment, $3 key path. The status file is written after ssh-keygen returns, so
# its presence means the key files are complete; an empty one is still being written.
_JOB = (
    'ssh-keygen -q -t "$1" -N "" -C "$2" -f "$3" </dev/null >/dev/null 2>"$3.err";'
    ' echo $? >"$3.status"'
)


def prestart(root: Root, cfg: Mapping[str, Any]) -> list[str]:
    """What the local stage starts on a first boot, from the agent's configuration alone (the
    instance's cloud-config is not read yet; the ssh module sorts out any difference): the
    ``ssh_genkeytypes`` (default rsa, ecdsa, ed25519), none if ``ssh_keys`` gives the keys,
    and with ``ssh_deletekeys: false`` only the types the image lacks."""
    if cfg.get("ssh_keys"):
        return []
    types = cfg.get("ssh_genkeytypes", DEFAULT_KEY_TYPES)
    if not isinstance(types, list | tuple):
        return []
    wanted = [t for t in types if t in KNOWN_TYPES]
    if cfg.get("ssh_deletekeys", True) is False:
        wanted = [t for t in wanted if not root.exists(f"/etc/ssh/ssh_host_{t}_key")]
    if not wanted:
        return []
    return start(root, wanted, f"root@{current_hostname(root) or 'localhost'}")


def staged_key(key_type: str) -> str:
    return f"{STAGING}/ssh_host_{key_type}_key"


def start(root: Root, key_types: Sequence[str], comment: str) -> list[str]:
    """Start a background job for each type with none staged yet; returns the types started.
    Problems (no ssh-keygen, no sh) only mean there is nothing staged: the ssh module then
    generates as it always did."""
    root.makedirs(STAGING, mode=0o700)
    started: list[str] = []
    for key_type in dict.fromkeys(key_types):
        path = staged_key(key_type)
        if root.exists(f"{path}.pgid"):
            continue  # staged or running already (an earlier boot that went no further)
        for suffix in ("", ".pub", ".err", ".status"):
            root.remove(f"{path}{suffix}")
        host_path = str(root.path(path))
        try:
            proc = subprocess.Popen(
                ["sh", "-c", _JOB, "sh", key_type, comment, host_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            break
        # The job may already be done; a normal priority would only be slower elsewhere.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PGRP, proc.pid, BACKGROUND_NICENESS)
        root.write_file(f"{path}.pgid", f"{proc.pid}\n", mode=0o600)
        started.append(key_type)
    return started


def staged_types(root: Root) -> list[str]:
    names = root.listdir(STAGING) if root.exists(STAGING) else []
    return sorted(
        n.removeprefix("ssh_host_").removesuffix("_key.pgid")
        for n in names
        if n.startswith("ssh_host_") and n.endswith("_key.pgid")
    )


def _group(root: Root, key_type: str) -> int | None:
    try:
        return int(root.read_text(f"{staged_key(key_type)}.pgid").strip())
    except (OSError, ValueError):
        return None


def _signal_group(pgid: int | None, action: Callable[[int], None]) -> None:
    if pgid is None or pgid <= 1:
        return
    try:
        # Only our job: its group leader is the sh we started (a recycled id is not ours).
        with open(f"/proc/{pgid}/cmdline", "rb") as handle:
            if _JOB.encode() not in handle.read():
                return
        action(pgid)
    except OSError:
        pass  # already gone


def take(
    root: Root,
    key_type: str,
    target: str,
    comment: str,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait (at most ``timeout`` s) for the staged ``key_type`` and rename it to ``target``
    (``.pub`` first, so a private key in place always has its public half). ToolError, naming
    the type and why, if it failed or is not done in time (the job is then stopped)."""
    path = staged_key(key_type)
    pgid = _group(root, key_type)
    _signal_group(pgid, lambda g: os.setpriority(os.PRIO_PGRP, g, 0))  # we wait on it now
    deadline = clock() + timeout
    status = ""
    while True:
        status = root.read_text(f"{path}.status", default="").strip()
        if status:
            break
        if clock() >= deadline:
            discard(root, [key_type])
            raise ToolError(
                f"ssh-keygen for the {key_type} host key (started by the local stage) did not "
                f"finish within {timeout:g} s"
            )
        sleep(POLL)
    if status != "0" or not (root.exists(path) and root.exists(f"{path}.pub")):
        detail = root.read_text(f"{path}.err", default="").strip() or f"exit status {status}"
        discard(root, [key_type])
        raise ToolError(f"ssh-keygen for the {key_type} host key failed: {detail}")
    public = root.read_text(f"{path}.pub").split()
    root.write_file(f"{path}.pub", " ".join([*public[:2], comment]) + "\n", mode=0o644)
    os.replace(root.path(f"{path}.pub"), root.path(f"{target}.pub"))
    os.replace(root.path(path), root.path(target))
    for suffix in (".err", ".status", ".pgid"):
        root.remove(f"{path}{suffix}")


def discard(root: Root, key_types: Sequence[str] | None = None) -> None:
    """Stop and remove staged jobs (all of them by default): keys nobody will use."""
    for key_type in staged_types(root) if key_types is None else key_types:
        _signal_group(_group(root, key_type), lambda g: os.killpg(g, signal.SIGTERM))
        path = staged_key(key_type)
        for suffix in ("", ".pub", ".err", ".status", ".pgid"):
            root.remove(f"{path}{suffix}")
    if key_types is None or not staged_types(root):
        with contextlib.suppress(OSError):
            os.rmdir(root.path(STAGING))
