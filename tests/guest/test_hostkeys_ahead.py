"""SSH host keys started by the local stage and taken by the ssh module in the network stage —
each stage its own process, as under systemd — with cloud-init's semantics kept: the
instance's ``ssh_genkeytypes`` and ``ssh_keys`` decide what ends up in /etc/ssh, whatever was
started ahead; failures and lateness are reported and the key is made all the same. A slow
type (RSA) still running when the module looks is left to its job, which installs it later:
both orders of the module and the job are covered here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from metaboot.errors import MetabootError
from metaboot.guest.os import hostkeys, sshd
from metaboot.guest.status import summarize
from metaboot.guest.system import Root
from tests.guest.helpers import (
    REPO_ROOT,
    ServerState,
    agent_config,
    http_only,
    make_root,
    metadata_server,
    spec,
    status,
    tree,
    wait_for,
)

ED25519_PRIVATE = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDqY8sRkp7sdFNTQkJW3yiCqGdcb/DXoDwTM4A0Jso3fwAAAJD5d8Aq+XfA
KgAAAAtzc2gtZWQyNTUxOQAAACDqY8sRkp7sdFNTQkJW3yiCqGdcb/DXoDwTM4A0Jso3fw
AAAEDRhO3tpmY6Ff4jn+e1FQ4DuAdTtc8Cg2gBHwlmF9A9hupjyxGSnux0U1NCQlbfKIKo
Z1xv8NegPBMzgDQmyjd/AAAADHRlc3RAbWV0YWJvb3QBAgMEBQ==
-----END OPENSSH PRIVATE KEY-----
"""
ED25519_PUBLIC = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOpjyxGSnux0U1NCQlbfKIKoZ1xv8NegPBMzgDQmyjd/ test@metaboot"
)


def stage(root: Root, name: str) -> None:
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "init", "--root", str(root.base), "--stage", name],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def first_boot(tmp_path: Path, user_data: str) -> Root:
    """Local, then network stage, in separate processes; returns the root."""
    root = make_root(tmp_path / "root")
    root.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
    root.write_file("/etc/ssh/ssh_host_rsa_key", "the image's own key, to be deleted\n")
    state = ServerState(tree(spec(user_data=user_data)))
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url), "20-test.yaml")
        stage(root, "local")
        local = status(root)["stages"]["local"]["events"]
        started = [e for e in local if e["name"] == "ssh-keygen-start"]
        assert started and started[0]["detail"] == "rsa, ecdsa, ed25519", local
        assert sorted(hostkeys.staged_types(root)) == ["ecdsa", "ed25519", "rsa"]
        stage(root, "network")
    return root


def host_keys(root: Root) -> list[str]:
    return sorted(n for n in root.listdir("/etc/ssh") if n.startswith("ssh_host_"))


def ssh_result(root: Root) -> dict[str, object]:
    modules = status(root)["stages"]["network"]["modules"]
    return next(m for m in modules if m["name"] == "ssh")


ALL_KEYS = [f"ssh_host_{t}_key{s}" for t in ("ecdsa", "ed25519", "rsa") for s in ("", ".pub")]


def test_keys_started_ahead_are_the_ones_installed(tmp_path: Path) -> None:
    root = first_boot(tmp_path, "#cloud-config\nhostname: web-7\n")
    result = ssh_result(root)
    assert result["result"] == "changed", result
    changes = " ".join(map(str, result["changes"]))  # type: ignore[call-overload]
    # RSA is either done by the time the module looks, or left to its job: never waited for.
    assert "ssh_host_ed25519_key" in changes and "ssh_host_rsa_key" in changes, result
    assert wait_for(lambda: not root.exists(hostkeys.STAGING), timeout=120)
    assert host_keys(root) == ALL_KEYS
    for key_type in ("rsa", "ecdsa", "ed25519"):
        path = sshd.host_key_path(key_type)
        assert os.stat(root.path(path)).st_mode & 0o777 == 0o600
        assert os.stat(root.path(f"{path}.pub")).st_mode & 0o777 == 0o644
        # The public half is the private key's, and named after the instance's hostname.
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(root.path(path))],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        public = root.read_text(f"{path}.pub").split()
        assert public[:2] == derived[:2] and public[2] == "root@web-7"
    assert not root.exists(hostkeys.STAGING)


def test_the_instance_types_win_over_what_was_started(tmp_path: Path) -> None:
    root = first_boot(tmp_path, "#cloud-config\nssh_genkeytypes: [ed25519]\n")
    assert host_keys(root) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert not root.exists(hostkeys.STAGING)
    # The unwanted jobs were stopped, not left to run.
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(root.base) not in running


def test_given_host_keys_replace_what_was_started(tmp_path: Path) -> None:
    indented = "".join(f"    {line}\n" for line in ED25519_PRIVATE.splitlines())
    user_data = (
        "#cloud-config\nssh_keys:\n  ed25519_private: |\n"
        + indented
        + f"  ed25519_public: {ED25519_PUBLIC}\n"
    )
    root = first_boot(tmp_path, user_data)
    assert host_keys(root) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert root.read_text("/etc/ssh/ssh_host_ed25519_key.pub").strip() == ED25519_PUBLIC
    assert not root.exists(hostkeys.STAGING)


def fake_job(root: Root, key_type: str, *, pgid: int, status: str | None, err: str = "") -> None:
    root.makedirs(hostkeys.STAGING, mode=0o700)
    path = hostkeys.staged_key(key_type)
    root.write_file(f"{path}.pgid", f"{pgid}\n")
    if status is not None:
        root.write_file(f"{path}.status", f"{status}\n")
        root.write_file(f"{path}.err", err)


def test_a_failed_job_is_reported_and_the_key_made_anyway(tmp_path: Path) -> None:
    root = Root(tmp_path)
    fake_job(root, "ed25519", pgid=999999, status="1", err="ssh-keygen: out of entropy")
    finish = sshd.start_host_keys(root, ["ed25519"], "root@test")
    with pytest.raises(MetabootError) as caught:
        finish()
    assert "ssh-keygen for the ed25519 host key failed: ssh-keygen: out of entropy" in str(
        caught.value
    )
    assert "generated again" in str(caught.value)
    assert root.exists("/etc/ssh/ssh_host_ed25519_key")
    assert not root.exists(hostkeys.STAGING)


def slow_job(root: Root, tmp_path: Path, key_type: str) -> subprocess.Popen[bytes]:
    """A real job (the same sh command line) whose ssh-keygen never finishes."""
    fake = tmp_path / "slow-bin"
    fake.mkdir(exist_ok=True)
    (fake / "ssh-keygen").write_text("#!/bin/sh\nexec sleep 60\n")
    (fake / "ssh-keygen").chmod(0o755)
    root.makedirs(hostkeys.STAGING, mode=0o700)
    path = str(root.path(hostkeys.staged_key(key_type)))
    proc = subprocess.Popen(
        ["sh", "-c", hostkeys._JOB, "sh", key_type, "root@test", path],
        env={"PATH": f"{fake}:/usr/bin:/bin"}, start_new_session=True,
    )  # fmt: skip
    root.write_file(f"{hostkeys.staged_key(key_type)}.pgid", f"{proc.pid}\n")
    return proc


def test_a_late_job_times_out_with_a_clear_error_and_is_stopped(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    job = slow_job(root, tmp_path, "ed25519")
    try:
        started = time.monotonic()
        finish = sshd.start_host_keys(root, ["ed25519"], "root@test", staged_timeout=0.5)
        with pytest.raises(MetabootError, match=r"did not finish within 0.5 s; generated again"):
            finish()
        assert time.monotonic() - started < 30
        assert root.exists("/etc/ssh/ssh_host_ed25519_key")
        assert job.wait(10) != 0  # the late job was stopped (SIGTERM to its group)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_job_that_died_unfinished_is_not_waited_for(tmp_path: Path) -> None:
    """A boot interrupted while ssh-keygen ran leaves a job file and no process: the next
    boot's local stage starts it again, and the module does not sit out its timeout."""
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    sleeper = subprocess.Popen(["sleep", "30"])  # alive, but not a job of ours
    try:
        fake_job(root, "ed25519", pgid=sleeper.pid, status=None)
        started = time.monotonic()
        finish = sshd.start_host_keys(root, ["ed25519"], "root@test", staged_timeout=60)
        with pytest.raises(MetabootError, match="stopped without finishing"):
            finish()
        assert time.monotonic() - started < 20
        assert root.exists("/etc/ssh/ssh_host_ed25519_key")
        assert sleeper.poll() is None  # never signalled: not ours
        # The local stage restarts such a job rather than adopting it.
        fake_job(root, "rsa", pgid=sleeper.pid, status=None)
        assert hostkeys.start(root, ["rsa"], "root@test") == ["rsa"]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_seal_removes_keys_started_ahead(tmp_path: Path) -> None:
    from metaboot.guest import image

    root = make_root(tmp_path / "root")
    fake_job(root, "rsa", pgid=999999, status="0")
    root.write_file(hostkeys.staged_key("rsa"), "private\n")
    image.seal(root)
    assert not root.exists(hostkeys.STAGING)


def test_the_early_starter_jobs_are_adopted_or_stopped(tmp_path: Path) -> None:
    """The image's ExecStartPre script starts the default types before Python is up; the local
    stage keeps the jobs its configuration wants (not restarted) and stops the others."""
    root = make_root(tmp_path / "root")
    root.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
    script = tmp_path / "hostkeys-ahead"
    script.write_text(hostkeys.starter_script(prefix=str(root.base)))
    subprocess.run(["sh", str(script)], check=True, timeout=30)
    assert hostkeys.staged_types(root) == ["ecdsa", "ed25519", "rsa"]
    pgids = {t: root.read_text(f"{hostkeys.staged_key(t)}.pgid") for t in ("rsa", "ed25519")}

    state = ServerState(tree(spec(user_data="#cloud-config\nhostname: web-8\n")))
    with metadata_server(state) as (url, _):
        agent_config(root, {**http_only(url), "ssh_genkeytypes": ["ed25519", "rsa"]}, "20-t.yaml")
        stage(root, "local")
        assert hostkeys.staged_types(root) == ["ed25519", "rsa"]
        for key_type, pgid in pgids.items():  # adopted, not started again
            assert root.read_text(f"{hostkeys.staged_key(key_type)}.pgid") == pgid
        stage(root, "network")
    assert wait_for(lambda: not root.exists(hostkeys.STAGING), timeout=120)  # RSA, maybe later
    assert host_keys(root) == [
        f"ssh_host_{t}_key{s}" for t in ("ed25519", "rsa") for s in ("", ".pub")
    ]
    assert root.read_text("/etc/ssh/ssh_host_rsa_key.pub").split()[2] == "root@web-8"
    assert not root.exists(hostkeys.STAGING)


def test_the_early_starter_does_nothing_after_the_first_boot(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    root.write_file("/var/lib/metaboot/data/instance-id", "iid-1\n")
    script = tmp_path / "hostkeys-ahead"
    script.write_text(hostkeys.starter_script(prefix=str(root.base)))
    subprocess.run(["sh", str(script)], check=True, timeout=30)
    assert not root.exists(hostkeys.STAGING)


def test_clean_removes_keys_started_ahead(tmp_path: Path) -> None:
    from metaboot.guest.clean import clean

    root = make_root(tmp_path / "root")
    fake_job(root, "rsa", pgid=999999, status="0")
    root.write_file(hostkeys.staged_key("rsa"), "private\n")
    report = clean(root)
    assert not root.exists(hostkeys.STAGING)
    assert hostkeys.STAGING in report.removed


# ---- a slow key left to its job --------------------------------------------------------------


def gated_job(root: Root, tmp_path: Path, key_type: str, *, fail: bool = False) -> Path:
    """A real job (the same sh command line) whose ssh-keygen waits for the returned file to
    exist, then runs the real one (or fails, with ``fail``). The job's niceness goes to
    ``nice.txt`` in tmp_path."""
    fake = tmp_path / "gated-bin"
    fake.mkdir(exist_ok=True)
    go = tmp_path / f"go-{key_type}"
    real = "echo 'ssh-keygen: no entropy' >&2; exit 3" if fail else 'exec ssh-keygen "$@"'
    (fake / "ssh-keygen").write_text(
        f"#!/bin/sh\nnice >{tmp_path}/nice.txt\n"
        f"while [ ! -e {go} ]; do sleep 0.05; done\nPATH=/usr/bin:/bin\n{real}\n"
    )
    (fake / "ssh-keygen").chmod(0o755)
    root.makedirs(hostkeys.STAGING, mode=0o700)
    path = str(root.path(hostkeys.staged_key(key_type)))
    proc = subprocess.Popen(
        ["sh", "-c", hostkeys._JOB, "sh", key_type, "root@early", path],
        env={"PATH": f"{fake}:/usr/bin:/bin"}, start_new_session=True,
    )  # fmt: skip
    root.write_file(f"{hostkeys.staged_key(key_type)}.pgid", f"{proc.pid}\n")
    JOBS.append(proc)
    return go


JOBS: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _stop_jobs() -> Any:
    yield
    while JOBS:
        proc = JOBS.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def assert_installed(root: Root, key_type: str, comment: str) -> None:
    path = sshd.host_key_path(key_type)
    assert os.stat(root.path(path)).st_mode & 0o777 == 0o600
    assert os.stat(root.path(f"{path}.pub")).st_mode & 0o777 == 0o644
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(root.path(path))], capture_output=True, text=True, check=True
    ).stdout.split()
    public = root.read_text(f"{path}.pub").split()
    assert public[:2] == derived[:2] and public[2] == comment


def test_the_module_first_the_job_installs_the_slow_key_later(tmp_path: Path) -> None:
    """The module finds RSA still running: it does not wait, and the job, once done, renames
    the key into place with the instance's comment."""
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    go = gated_job(root, tmp_path, "rsa")
    assert wait_for(lambda: (tmp_path / "nice.txt").exists())
    assert (tmp_path / "nice.txt").read_text().strip() == "19"  # the boot comes first
    gated_job(root, tmp_path, "ed25519").touch()  # a fast type: normal priority
    assert JOBS[1].wait(60) == 0
    assert (tmp_path / "nice.txt").read_text().strip() == "0"
    started = time.monotonic()
    keys = sshd.start_host_keys(root, ["rsa"], "root@web-1", defer=True)()
    assert time.monotonic() - started < 5
    assert keys.made == [] and keys.deferred == ["/etc/ssh/ssh_host_rsa_key"]
    assert not root.exists("/etc/ssh/ssh_host_rsa_key")
    assert root.exists(f"{hostkeys.staged_key('rsa')}.adopt")
    go.touch()
    assert JOBS[0].wait(60) == 0
    assert_installed(root, "rsa", "root@web-1")
    assert not root.exists(hostkeys.STAGING)  # the job cleaned up after itself


def test_the_job_first_the_module_installs_the_finished_key(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    gated_job(root, tmp_path, "rsa").touch()
    assert JOBS[0].wait(60) == 0
    assert not root.exists("/etc/ssh/ssh_host_rsa_key")  # nobody asked the job to install it
    keys = sshd.start_host_keys(root, ["rsa"], "root@web-2", defer=True)()
    assert keys.made == ["/etc/ssh/ssh_host_rsa_key"] and keys.deferred == []
    assert_installed(root, "rsa", "root@web-2")
    assert not root.exists(hostkeys.STAGING)


def test_the_job_finishing_while_the_module_marks_it_installs_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ends between the module's marker and its second look: the job claimed the
    marker, so the module leaves the key to it (and does not install it a second time)."""
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    go = gated_job(root, tmp_path, "rsa")
    running = hostkeys._running

    def finishes_now(root: Root, key_type: str) -> bool:
        if root.exists(f"{hostkeys.staged_key(key_type)}.adopt"):
            go.touch()
            JOBS[0].wait(60)
        return running(root, key_type)

    monkeypatch.setattr(hostkeys, "_running", finishes_now)
    root.makedirs("/etc/ssh")
    # The status is read before the job ends and is empty: seen as running, then not.
    assert hostkeys.defer(root, "rsa", "/etc/ssh/ssh_host_rsa_key", "root@web-3") is True
    assert JOBS[0].returncode == 0
    assert_installed(root, "rsa", "root@web-3")
    assert not root.exists(hostkeys.STAGING)


def test_a_marker_taken_back_is_never_installed_by_the_job(tmp_path: Path) -> None:
    """The job ended before the marker was written: the module takes the marker back and
    installs the key itself."""
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    gated_job(root, tmp_path, "rsa").touch()
    assert JOBS[0].wait(60) == 0
    assert hostkeys.defer(root, "rsa", "/etc/ssh/ssh_host_rsa_key", "root@web-4") is False
    assert not root.exists(f"{hostkeys.staged_key('rsa')}.adopt")
    assert not root.exists("/etc/ssh/ssh_host_rsa_key")


def test_the_job_never_replaces_a_key_put_in_place_meanwhile(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    go = gated_job(root, tmp_path, "rsa")
    keys = sshd.start_host_keys(root, ["rsa"], "root@web-5", defer=True)()
    assert keys.deferred == ["/etc/ssh/ssh_host_rsa_key"]
    root.write_file("/etc/ssh/ssh_host_rsa_key", "someone else's\n", mode=0o600)
    go.touch()
    assert JOBS[0].wait(60) == 0
    assert root.read_text("/etc/ssh/ssh_host_rsa_key") == "someone else's\n"
    assert not root.exists(hostkeys.STAGING)


def test_a_slow_key_that_fails_late_is_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    go = gated_job(root, tmp_path, "rsa", fail=True)
    keys = sshd.start_host_keys(root, ["rsa"], "root@web-6", defer=True)()
    assert keys.deferred == ["/etc/ssh/ssh_host_rsa_key"]
    go.touch()
    assert JOBS[0].wait(60) != 0
    assert not root.exists("/etc/ssh/ssh_host_rsa_key")
    problems = hostkeys.failed(root)
    assert problems == [
        "the rsa host key generated in the background was not installed "
        "(ssh-keygen status 3: ssh-keygen: no entropy)"
    ]
    # metaboot status says so (degraded) until the next boot's local stage reports it once.
    summary = summarize({"stages": {"final": {"start": 1, "end": 2}}}, late=problems)
    assert summary.extended == "degraded done"
    assert summary.recoverable == [f"ssh: {problems[0]}"]


def test_without_defer_the_slow_key_is_waited_for(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    go = gated_job(root, tmp_path, "rsa")
    finish = sshd.start_host_keys(root, ["rsa"], "root@web-7")
    go.touch()
    assert finish().made == ["/etc/ssh/ssh_host_rsa_key"]
    assert_installed(root, "rsa", "root@web-7")


def test_the_shutdown_waits_for_a_deferred_key(tmp_path: Path) -> None:
    """The local unit's ExecStop (the starter with ``finish``) returns only once the job
    installed the key, and at once when nothing is pending."""
    root = make_root(tmp_path / "root")
    script = tmp_path / "hostkeys-ahead"
    script.write_text(hostkeys.starter_script(prefix=str(root.base)))
    started = time.monotonic()
    subprocess.run(["sh", str(script), "finish"], check=True, timeout=30)
    assert time.monotonic() - started < 5
    go = gated_job(root, tmp_path, "rsa")
    assert sshd.start_host_keys(root, ["rsa"], "root@web-8", defer=True)().deferred
    stop = subprocess.Popen(["sh", str(script), "finish"])
    time.sleep(1.5)
    assert stop.poll() is None  # still waiting for the key
    go.touch()
    assert stop.wait(30) == 0
    assert_installed(root, "rsa", "root@web-8")


def test_a_deferred_key_whose_job_died_is_made_on_the_next_boot(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    gated_job(root, tmp_path, "rsa")
    assert sshd.start_host_keys(root, ["rsa"], "root@web-9", defer=True)().deferred
    os.killpg(JOBS[0].pid, 9)  # the power was cut
    JOBS[0].wait()
    assert hostkeys.resume(root) == ["rsa"]
    assert wait_for(lambda: not root.exists(hostkeys.STAGING), timeout=120)
    assert_installed(root, "rsa", "root@web-9")


def test_the_next_boot_reports_a_late_key_that_failed_once(tmp_path: Path) -> None:
    from tests.guest.helpers import reboot

    root = first_boot(tmp_path, "#cloud-config\nhostname: web-10\n")
    assert wait_for(lambda: not root.exists(hostkeys.STAGING), timeout=120)
    fake_job(root, "rsa", pgid=999999, status="1", err="ssh-keygen: out of entropy")
    root.write_file(f"{hostkeys.staged_key('rsa')}.failed", "/etc/ssh/ssh_host_rsa_key\n")
    state = ServerState(tree(spec(user_data="#cloud-config\nhostname: web-10\n")))
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url), "20-test.yaml")
        reboot(root)
        stage(root, "local")
    problems = status(root)["stages"]["local"]["recoverable_errors"]
    assert problems == [
        "ssh: the rsa host key generated in the background was not installed "
        "(ssh-keygen status 1: ssh-keygen: out of entropy)"
    ]
    assert not root.exists(hostkeys.STAGING)  # reported once
