"""SSH host keys generated ahead, in the background: started by the local stage, taken (or
thrown away) by the ssh module in the network stage, another process.

RSA's prime search is most of a first boot's agent time. The local stage knows on a first boot
that the ssh module will want host keys, long before the module runs: it starts one
``ssh-keygen`` per missing type, detached, writing under temporary
names in a private directory on the same filesystem as ``/etc/ssh``. The ssh module decides
with the instance's whole cloud-config (``ssh_keys``, ``ssh_genkeytypes``,
``ssh_deletekeys``) exactly as before, then renames the staged keys it wants into place
(atomic: sshd never sees half a key) and discards the rest. sshd is ordered after the network
stage, so it never starts before the keys the module waited for are in place.

Each job is ``sh -c 'ssh-keygen …; echo $? > T.status'`` in its own process group. The slow
types (below) run at the lowest CPU and I/O priority (nice 19, idle I/O class): on one vCPU a
prime search at normal priority takes the CPU from the rest of the boot. The fast ones keep
normal priority: a tenth of a second of CPU, emulated, that the ssh module would otherwise
wait for. The status file says how it ended, across processes; the ssh module waits for the
job's ``sh`` to exit through a pidfd (no polling: under emulation a polling loop costs the CPU
the key needs), raising the job to normal priority while it waits; the group id lets a job
nobody wants be stopped.

The slow types (RSA, DSA: a prime search, one to twenty seconds under emulation) do not hold up
the boot. When the ssh module finds one still running it does not wait: it writes an
``.adopt`` marker (where the key goes, its comment, its group, whether to reload sshd) and moves
on, and sshd starts with the fast types (ed25519, ecdsa: milliseconds). The job, once its
status is written, claims the marker by renaming it (``.installing``) and installs the key
itself (``.pub`` first, each an atomic rename, never over a key someone else put there), then
reloads sshd. The module takes a marker back by removing it, so exactly one of the two ever
installs a key: whichever rename or unlink comes first. A late key that fails leaves
``.failed`` with its status and error (logged to the journal; the next boot's local stage and
``metaboot status`` report it). At shutdown the local unit's ``ExecStop`` (the starter script
with ``finish``) gives adopted jobs time to finish, at normal priority, so a key deferred is
never a key lost.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Sequence

from metaboot.guest import layout, volatile
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

SLOW_TYPES = ("rsa", "dsa")  # a prime search: the boot does not wait for these
FAST_TIMEOUT = 60.0  # ed25519 and ecdsa take milliseconds, even under emulation

# $1 type, $2 comment, $3 key path. The status file is written after ssh-keygen returns, so
# its presence means the key files are complete; an empty one is still being written. Then the
# job installs the key if the ssh module left it an .adopt marker (see the module docstring):
# its lines are the target path, the comment, the private key's group ("" for root's 0600)
# and "live" to log to the journal and reload sshd (a test's root does neither).
_JOB = r"""case $1 in rsa | dsa)
    renice -n 19 -p $$ >/dev/null 2>&1; ionice -c 3 -p $$ >/dev/null 2>&1 ;;
esac
ssh-keygen -q -t "$1" -N "" -C "$2" -f "$3" </dev/null >/dev/null 2>"$3.err"; echo $? >"$3.status"
mv "$3.adopt" "$3.installing" 2>/dev/null || exit 0
{ read -r t; read -r c; read -r g; read -r l; } <"$3.installing"
say() { [ "$l" = live ] && logger -t metaboot -p "auth.$1" "$2" 2>/dev/null; }
if [ -e "$t" ]; then
    rm -f "$3" "$3.pub" "$3.err" "$3.status" "$3.pgid" "$3.installing"
    rmdir "${3%/*}" 2>/dev/null
    say notice "the $1 host key generated in the background was not installed: $t exists"
    exit 0
fi
if [ "$(cat "$3.status")" = 0 ] && [ -s "$3" ] && [ -s "$3.pub" ] &&
    read -r a b _ <"$3.pub" && printf '%s %s %s\n' "$a" "$b" "$c" >"$3.pub" &&
    { [ -z "$g" ] || { chgrp "$g" "$3" && chmod 640 "$3"; }; } &&
    mv -f "$3.pub" "$t.pub" && mv -f "$3" "$t"; then
    rm -f "$3.err" "$3.status" "$3.pgid" "$3.installing"
    rmdir "${3%/*}" 2>/dev/null
    say info "SSH host key $t installed (generated in the background); reloading sshd"
    [ "$l" = live ] || exit 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl --no-block try-reload-or-restart ssh.service 2>/dev/null ||
            systemctl --no-block try-reload-or-restart sshd.service 2>/dev/null
    else
        p=$(cat /run/sshd.pid 2>/dev/null) && kill -HUP "$p"
    fi
    exit 0
fi
mv -f "$3.installing" "$3.failed"
say err "the $1 host key generated in the background failed (ssh-keygen status \
$(cat "$3.status")): $(cat "$3.err" 2>/dev/null)"
exit 1
"""


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
FINISH_WAIT = 120  # seconds the shutdown gives adopted jobs


SUFFIXES = ("", ".pub", ".err", ".status", ".adopt", ".adopt.new", ".installing", ".failed")


def starter_script(prefix: str = "") -> str:
    """The shell script ``metaboot image prepare`` installs as the local stage's
    ``ExecStartPre``: on a first boot it starts the default types' jobs seconds before the
    agent's Python is up (the same job, files and names as :func:`start`, so the agent adopts
    them, or stops the ones its configuration does not want). ``prefix``: where the root is
    mounted (tests; the image's copy has none).

    With the argument ``finish`` (the local unit's ``ExecStop``, at shutdown) it waits, at most
    ``FINISH_WAIT`` seconds, for the jobs the ssh module left to install their key, at normal
    priority now that the boot is over."""
    job = "'" + _JOB.replace("'", "'\\''") + "'"
    types = " ".join(DEFAULT_KEY_TYPES)
    return f"""#!/bin/sh
# Installed by `metaboot image prepare`: SSH host keys started as early as possible on a
# first boot (see metaboot.guest.os.hostkeys). The agent's local stage checks them against
# its configuration; nothing here decides what sshd ends up with.
dir="{prefix}{STAGING}"
if [ "${{1-}}" = finish ]; then
    i=0
    while [ $i -lt {FINISH_WAIT} ]; do
        busy=
        for m in "$dir"/*_key.adopt "$dir"/*_key.installing; do
            [ -e "$m" ] || continue
            g=$(cat "${{m%.*}}.pgid" 2>/dev/null) && kill -0 "$g" 2>/dev/null || continue
            renice -n 0 -g "$g" >/dev/null 2>&1
            busy=1
        done
        [ -n "$busy" ] || exit 0
        sleep 1
        i=$((i + 1))
    done
    exit 0
fi
[ -e "{prefix}{layout.INSTANCE_ID_FILE}" ] && exit 0
command -v ssh-keygen >/dev/null 2>&1 || exit 0
mkdir -p -m 0700 "$dir" || exit 0
host=$(cat /proc/sys/kernel/hostname 2>/dev/null || echo localhost)
for t in {types}; do
    key="$dir/ssh_host_${{t}}_key"
    [ -e "$key.pgid" ] && continue
    rm -f {" ".join(f'"$key{x}"' for x in SUFFIXES)}
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
        for suffix in SUFFIXES:
            root.remove(f"{path}{suffix}")
        host_path = root.host_path(path)
        try:
            pid = spawn.detached(["/bin/sh", "-c", _JOB, "sh", key_type, comment, host_path])
        except OSError:
            break
        # A process group means nothing after a reboot: no fsync (volatile.write).
        volatile.write(root, f"{path}.pgid", f"{pid}\n", 0o600)
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
    try:  # noqa: SIM105 - no contextlib on a boot; an OSError: the group is already gone
        action(pgid)
    except OSError:
        pass


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
    pgid = _group(root, key_type)
    _signal_group(pgid, lambda g: os.setpriority(os.PRIO_PGRP, g, 0))  # someone waits now
    _wait_exit(pgid, timeout)
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


def defer(root: Root, key_type: str, target: str, comment: str, group: str = "") -> bool:
    """Leave the staged ``key_type`` to its job: it installs the key at ``target`` when
    ssh-keygen is done (with ``comment``, the private key in ``group`` 0640 if given) and, on
    the running system, logs it and reloads sshd. True if the job has it now; False if the job
    has already ended, and the caller must :func:`take` the key itself (which also reports a
    job that failed or died)."""
    live = "live" if root.is_live else ""
    return _mark(root, key_type, f"{root.host_path(target)}\n{comment}\n{group}\n{live}\n")


def _mark(root: Root, key_type: str, content: str) -> bool:
    path = staged_key(key_type)
    marker = f"{path}.adopt"
    root.write_file(f"{marker}.new", content, mode=0o600)
    os.replace(root.host_path(f"{marker}.new"), root.host_path(marker))
    # The job looks for the marker only after writing its status: no status yet, and the job
    # still running, means it will find the marker.
    if not root.read_text(f"{path}.status", default="").strip() and _running(root, key_type):
        return True
    try:  # it ended meanwhile: take the marker back, unless the job claimed it first
        os.remove(root.host_path(marker))
    except FileNotFoundError:
        return True
    return False


def resume(root: Root) -> list[str]:
    """A later boot: a key left to a job that did not live to install it (the power cut, or
    the shutdown's wait ran out) is generated again by a new job, with the same marker.
    Returns the types started again."""
    resumed: list[str] = []
    for key_type in staged_types(root):
        path = staged_key(key_type)
        marker = next((m for m in (f"{path}.adopt", f"{path}.installing") if root.exists(m)), None)
        if marker is None or _running(root, key_type):
            continue
        content = root.read_text(marker)
        lines = content.splitlines()
        root.remove(f"{path}.pgid")
        if len(lines) < 2 or start(root, [key_type], lines[1]) != [key_type]:
            continue
        if _mark(root, key_type, content):
            resumed.append(key_type)
        else:
            discard(root, [key_type])
    return resumed


def failed_types(root: Root) -> list[str]:
    return [t for t in KNOWN_TYPES if root.exists(f"{staged_key(t)}.failed")]


def failed(root: Root) -> list[str]:
    """What background jobs left behind for a key that could not be installed (see the module
    docstring): one line per type, with ssh-keygen's error."""
    lines = []
    for key_type in failed_types(root):
        path = staged_key(key_type)
        status = root.read_text(f"{path}.status", default="").strip() or "?"
        error = root.read_text(f"{path}.err", default="").strip()
        lines.append(
            f"the {key_type} host key generated in the background was not installed "
            f"(ssh-keygen status {status}{': ' + error if error else ''})"
        )
    return lines


def discard(root: Root, key_types: Sequence[str] | None = None) -> None:
    """Stop and remove staged jobs (all of them by default): keys nobody will use."""
    for key_type in staged_types(root) if key_types is None else key_types:
        _signal_group(_group(root, key_type), lambda g: os.killpg(g, _SIGTERM))
        path = staged_key(key_type)
        for suffix in (*SUFFIXES, ".pgid"):
            root.remove(f"{path}{suffix}")
    if key_types is None or not staged_types(root):
        try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
            os.rmdir(root.host_path(STAGING))
        except OSError:
            pass
