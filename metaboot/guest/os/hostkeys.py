"""SSH host keys generated ahead, in the background: started by the local stage, taken (or
thrown away) by the ssh module in the network stage, another process.

RSA's prime search is most of a first boot's agent time. The local stage knows on a first boot
that the ssh module will want host keys, long before the module runs: it starts one
``ssh-keygen`` per missing type, detached, writing under temporary
names in a private directory on the same filesystem as ``/etc/ssh``. The ssh module decides
with the instance's whole cloud-config (``ssh_keys``, ``ssh_genkeytypes``,
``ssh_deletekeys``) exactly as before, then renames the staged keys it wants into place
(atomic: sshd never sees half a key) and discards the rest. sshd is ordered after the network
stage, so it never starts before the keys are in place.

Each job is ``sh -c 'ssh-keygen …; echo $? > T.status'`` in its own process group: the status
file says how it ended, across processes; the ssh module waits for the job's ``sh`` to exit
through a pidfd (no polling: under emulation a polling loop costs the CPU the key needs), and
the group id lets a job nobody wants be stopped.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable, Sequence

from metaboot.guest import layout
from metaboot.guest.os import spawn
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
POLL = 0.1  # only where a pidfd cannot be had
_SIGTERM = 15  # without importing signal for one number

# $1 type, $2 comment, $3 key path. The status file is written after ssh-keygen returns, so
# its presence means the key files are complete; an empty one is still being written.
_JOB = (
    'ssh-keygen -q -t "$1" -N "" -C "$2" -f "$3" </dev/null >/dev/null 2>"$3.err";'
    ' echo $? >"$3.status"'
)


def prestart(root: Root, cfg: Mapping[str, Any]) -> list[str]:
    """Make the staged jobs match the agent's configuration (the instance's cloud-config is
    not read yet; the ssh module sorts out any difference later): the ``ssh_genkeytypes``
    (default rsa, ecdsa, ed25519), none if ``ssh_keys`` gives the keys, and with
    ``ssh_deletekeys: false`` only the types the image lacks. Jobs the early starter (see
    :func:`starter_script`) began for other types are stopped; missing ones are started.
    Returns the types staged."""
    wanted: list[str] = []
    types = cfg.get("ssh_genkeytypes", DEFAULT_KEY_TYPES)
    if not cfg.get("ssh_keys") and isinstance(types, list | tuple):
        wanted = [t for t in dict.fromkeys(types) if t in KNOWN_TYPES]
    if cfg.get("ssh_deletekeys", True) is False:
        wanted = [t for t in wanted if not root.exists(f"/etc/ssh/ssh_host_{t}_key")]
    unwanted = [t for t in staged_types(root) if t not in wanted]
    if unwanted:
        discard(root, unwanted)
    if not wanted:
        return []
    start(root, wanted, f"root@{current_hostname(root) or 'localhost'}")
    return [t for t in wanted if t in staged_types(root)]


STARTER = "/usr/lib/metaboot/hostkeys-ahead"


def starter_script(prefix: str = "") -> str:
    """The shell script ``metaboot image prepare`` installs as the local stage's
    ``ExecStartPre``: on a first boot it starts the default types' jobs seconds before the
    agent's Python is up (the same job, files and names as :func:`start`, so the agent adopts
    them, or stops the ones its configuration does not want). ``prefix``: where the root is
    mounted (tests; the image's copy has none)."""
    job = "'" + _JOB.replace("'", "'\\''") + "'"
    types = " ".join(DEFAULT_KEY_TYPES)
    return f"""#!/bin/sh
# Installed by `metaboot image prepare`: SSH host keys started as early as possible on a
# first boot (see metaboot.guest.os.hostkeys). The agent's local stage checks them against
# its configuration; nothing here decides what sshd ends up with.
[ -e "{prefix}{layout.INSTANCE_ID_FILE}" ] && exit 0
command -v ssh-keygen >/dev/null 2>&1 || exit 0
dir="{prefix}{STAGING}"
mkdir -p -m 0700 "$dir" || exit 0
host=$(cat /proc/sys/kernel/hostname 2>/dev/null || echo localhost)
for t in {types}; do
    key="$dir/ssh_host_${{t}}_key"
    [ -e "$key.pgid" ] && continue
    rm -f "$key" "$key.pub" "$key.err" "$key.status"
    setsid sh -c {job} sh "$t" "root@$host" "$key" </dev/null >/dev/null 2>&1 &
    echo $! >"$key.pgid"
done
exit 0
"""


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
        if root.exists(f"{path}.pgid") and (
            root.read_text(f"{path}.status", default="").strip() or _running(root, key_type)
        ):
            continue  # done or running already (the early starter, or an earlier boot)
        for suffix in ("", ".pub", ".err", ".status"):
            root.remove(f"{path}{suffix}")
        host_path = root.host_path(path)
        try:
            pid = spawn.detached(["sh", "-c", _JOB, "sh", key_type, comment, host_path])
        except OSError:
            break
        root.write_file(f"{path}.pgid", f"{pid}\n", mode=0o600)
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


def _ours(pid: int) -> bool:
    """The process is our job's ``sh`` (a recycled id belongs to someone else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return _JOB.encode() in handle.read()
    except OSError:
        return False


def _running(root: Root, key_type: str) -> bool:
    pgid = _group(root, key_type)
    return pgid is not None and pgid > 1 and _ours(pgid)


def _signal_group(pgid: int | None, action: Callable[[int], None]) -> None:
    if pgid is None or pgid <= 1 or not _ours(pgid):
        return
    with contextlib.suppress(OSError):  # already gone
        action(pgid)


def _wait_exit(pid: int | None, timeout: float) -> None:
    """Block until our job's ``sh`` exits or ``timeout`` passes; returns at once if it is
    gone or not ours (the caller then reads the status file, polling if need be)."""
    if pid is None or pid <= 1:
        return
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return
    try:
        if _ours(pid):  # checked after the pidfd pinned the process
            select.select([fd], [], [], max(0.0, timeout))
    finally:
        os.close(fd)


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
    deadline = clock() + timeout
    _wait_exit(_group(root, key_type), timeout)
    status = ""
    while True:
        status = root.read_text(f"{path}.status", default="").strip()
        if status:
            break
        if not _running(root, key_type):
            status = root.read_text(f"{path}.status", default="").strip()
            if status:
                break  # it finished between the two looks
            discard(root, [key_type])
            raise ToolError(
                f"ssh-keygen for the {key_type} host key stopped without finishing "
                "(a boot interrupted while it ran?)"
            )
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
    os.replace(root.host_path(f"{path}.pub"), root.host_path(f"{target}.pub"))
    os.replace(root.host_path(path), root.host_path(target))
    for suffix in (".err", ".status", ".pgid"):
        root.remove(f"{path}{suffix}")


def discard(root: Root, key_types: Sequence[str] | None = None) -> None:
    """Stop and remove staged jobs (all of them by default): keys nobody will use."""
    for key_type in staged_types(root) if key_types is None else key_types:
        _signal_group(_group(root, key_type), lambda g: os.killpg(g, _SIGTERM))
        path = staged_key(key_type)
        for suffix in ("", ".pub", ".err", ".status", ".pgid"):
            root.remove(f"{path}{suffix}")
    if key_types is None or not staged_types(root):
        with contextlib.suppress(OSError):
            os.rmdir(root.host_path(STAGING))
