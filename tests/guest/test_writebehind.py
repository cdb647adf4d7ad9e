"""Write-behind: files are in place at once, fsynced behind the boot, and nothing queued after
a file (a semaphore) happens before that file is durable, or at all if it could not be."""

from __future__ import annotations

import _thread
import errno
import os
from pathlib import Path

import pytest

from metaboot.guest.modules.base import Frequency, Stage
from metaboot.guest.state import State
from metaboot.guest.system import Root
from metaboot.guest.writebehind import WriteBehind
from tests.guest.helpers import (
    Registry,
    make_root,
    recording_module,
    run_agent,
    spec,
    status,
    tree,
    write_drive_dir,
)


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync of the test, as (file, the file's content at the time), real ones still."""
    seen: list[tuple[str, str]] = []
    real = os.fsync

    def recording(fd: int) -> None:
        path = _fd_path(fd)
        with open(f"/proc/self/fd/{fd}", "rb") as handle:
            seen.append((path, handle.read().decode(errors="replace")))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


def _gate(behind: WriteBehind) -> _thread.LockType:
    """Hold the queue's thread until the returned lock is released (by the test)."""
    gate = _thread.allocate_lock()
    gate.acquire()
    behind.then(lambda: gate.acquire(), "the test's gate")
    return gate


def test_a_file_is_in_place_at_once_and_fsynced_behind(
    tmp_path: Path, fsyncs: list[tuple[str, str]]
) -> None:
    root = Root(tmp_path)
    behind = root.write_behind = WriteBehind()
    gate = _gate(behind)
    host = root.write_file("/etc/motd", "hello\n", mode=0o640)
    assert Path(host).read_text() == "hello\n"
    assert oct(os.stat(host).st_mode & 0o777) == "0o640"
    assert fsyncs == []  # the thread is held: not yet
    assert sorted(os.listdir(tmp_path / "etc")) == ["motd"]  # no temporary file left
    gate.release()
    assert behind.wait() == []
    assert fsyncs == [(host, "hello\n")]
    open_files = {_fd_path(int(fd)) for fd in os.listdir("/proc/self/fd") if _alive(int(fd))}
    assert host not in open_files  # closed after its fsync


def _alive(fd: int) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True


def test_a_critical_file_is_fsynced_before_it_replaces_the_old_one(
    tmp_path: Path, fsyncs: list[tuple[str, str]]
) -> None:
    root = Root(tmp_path)
    root.write_file("/etc/hosts", "old\n")
    fsyncs.clear()
    behind = root.write_behind = WriteBehind()
    gate = _gate(behind)
    host = root.write_file("/etc/hosts", "new\n", mode=None, critical=True)
    # Synced while it was still the temporary file, with the old file still in place.
    assert len(fsyncs) == 1
    assert fsyncs[0][0] != host and fsyncs[0][0].startswith(f"{tmp_path}/etc/.hosts.")
    assert fsyncs[0][1] == "new\n"
    gate.release()
    assert behind.wait() == []
    assert len(fsyncs) == 1


def test_without_write_behind_every_file_is_fsynced_before_the_rename(
    tmp_path: Path, fsyncs: list[tuple[str, str]]
) -> None:
    root = Root(tmp_path)
    host = root.write_file("/etc/motd", "hi\n")
    assert [content for _, content in fsyncs] == ["hi\n"]
    assert fsyncs[0][0] != host  # the temporary file, before it was renamed


def test_an_action_waits_for_the_files_queued_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real = os.fsync

    def slow(fd: int) -> None:
        os.sched_yield()
        real(fd)
        events.append(f"fsync {os.path.basename(_fd_path(fd))}")

    monkeypatch.setattr(os, "fsync", slow)
    root = Root(tmp_path)
    behind = root.write_behind = WriteBehind()
    for name in ("a", "b", "c"):
        root.write_file(f"/etc/{name}", name)
    behind.then(lambda: events.append("semaphore"), "the semaphore")
    root.write_file("/etc/d", "d")
    assert behind.wait() == []
    assert events[:4] == ["fsync a", "fsync b", "fsync c", "semaphore"]
    assert events[4:] == ["fsync d"]


def test_a_failed_fsync_stops_every_semaphore_behind_it(tmp_path: Path) -> None:
    """A pipe cannot be fsynced (EINVAL): a real failure, reported, and nothing queued after it
    claims what may not be on the disk."""
    behind = WriteBehind()
    done: list[str] = []
    behind.then(lambda: done.append("before"), "the first semaphore")
    read_end, write_end = os.pipe()
    behind.fsync(write_end, "/etc/broken")
    behind.then(lambda: done.append("after"), "semaphore /var/lib/metaboot/sem/x")
    problems = behind.wait()
    assert done == ["before"]
    assert problems[0].startswith("cannot fsync /etc/broken: ")
    assert problems[1] == (
        "semaphore /var/lib/metaboot/sem/x: not written, an earlier file did not reach the disk"
    )
    with pytest.raises(OSError) as closed:
        os.fstat(write_end)  # the queue closed what it was given
    assert closed.value.errno == errno.EBADF
    os.close(read_end)
    assert behind.wait() == []  # reported once


def test_a_later_write_runs_in_turn_even_after_a_failed_fsync() -> None:
    """What vouches for nothing (a status copy) is still written, in its place in the queue."""
    behind = WriteBehind()
    done: list[str] = []
    behind.later(lambda: done.append("copy 1"), "copy 1")
    read_end, write_end = os.pipe()
    behind.fsync(write_end, "/etc/broken")
    behind.then(lambda: done.append("semaphore"), "semaphore /x")
    behind.later(lambda: done.append("copy 2"), "copy 2")
    problems = behind.wait()
    assert done == ["copy 1", "copy 2"]
    assert len(problems) == 2 and problems[1].startswith("semaphore /x: not written")
    os.close(read_end)


def test_status_copies_on_disk_are_written_behind_the_boot_and_waited_for(
    tmp_path: Path,
) -> None:
    from metaboot.guest.status import StatusStore

    root = Root(tmp_path)
    behind = root.write_behind = WriteBehind()
    gate = _gate(behind)
    store = StatusStore(root)
    store.save(persist=True)
    assert root.exists("/run/metaboot/status.json")
    assert not root.exists("/var/lib/metaboot/data/status.json")  # queued behind the gate
    gate.release()
    assert behind.wait() == []
    assert root.read_text("/var/lib/metaboot/data/status.json") == root.read_text(
        "/run/metaboot/status.json"
    )


def test_an_action_that_raises_is_reported_by_wait() -> None:
    behind = WriteBehind()

    def broken() -> None:
        raise PermissionError("no way")

    behind.then(broken, "semaphore /x")
    assert behind.wait() == ["semaphore /x: PermissionError: no way"]


def test_a_semaphore_reaches_the_disk_after_the_files_and_counts_at_once(tmp_path: Path) -> None:
    root = Root(tmp_path)
    behind = root.write_behind = WriteBehind()
    state = State(root)
    gate = _gate(behind)
    root.write_file("/etc/motd", "x\n")
    state.mark("write_files", Frequency.INSTANCE, "i-1", "changed")
    sem = tmp_path / "var/lib/metaboot/instances/i-1/sem/write_files"
    assert not sem.exists()  # held behind the file
    assert state.has_run("write_files", Frequency.INSTANCE, "i-1")  # yet it has run
    gate.release()
    assert state.sync() == []
    assert sem.is_file()


def test_a_file_that_could_not_be_synced_leaves_its_module_to_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error cannot be made on this machine's disk: os.fsync fails for one file."""
    real = os.fsync

    def failing(fd: int) -> None:
        if _fd_path(fd).endswith("/var/lib/test-runs/first"):
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    registry = Registry(
        [
            recording_module("first", Stage.NETWORK),
            recording_module("second", Stage.CONFIG),
        ]
    )
    root = make_root(tmp_path)
    write_drive_dir(root, "/var/lib/metaboot/seed/config_drive", tree(spec()))
    monkeypatch.setattr(os, "fsync", failing)
    code, _, _ = run_agent(root, registry)
    assert code == 1
    errors = [e for stage in status(root)["stages"].values() for e in stage["errors"]]
    assert any(
        "cannot fsync /var/lib/test-runs/first: input/output error" in e.lower() for e in errors
    )
    sem = root.path(f"/var/lib/metaboot/instances/{spec()['uuid']}/sem")
    assert not (sem / "first").exists()
    assert not (sem / "second").exists()  # queued after it: not claimed either
    assert root.write_behind is None  # the boot is over
    monkeypatch.setattr(os, "fsync", real)
    assert run_agent(root, registry)[0] == 0
    results = {
        m["name"]: m["result"] for s in status(root)["stages"].values() for m in s["modules"]
    }
    assert results == {"first": "changed", "second": "changed"}  # both ran again
    assert (sem / "first").is_file() and (sem / "second").is_file()
