"""The command policy: inside the root with chroot, or not at all; never on the host."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os.commands import (
    OUTPUT_LOG,
    CommandFailed,
    CommandRunner,
    CommandSkipped,
    RootCommands,
    cannot_enter,
    policy_from,
)
from metaboot.guest.system import Root


def test_commands_run_inside_the_root(chroot_root: Root) -> None:
    marker = Path(f"/tmp/metaboot-marker-{uuid.uuid4().hex}")
    runner = CommandRunner(chroot_root)
    # The same absolute path names the root's file, not the host's.
    status = runner.run(["/bin/sh", "-c", f"echo inside > {marker}; id -un; echo $HOME"])
    assert status == 0
    assert not marker.exists()
    assert chroot_root.path(str(marker)).read_text() == "inside\n"  # the root's /tmp
    log = chroot_root.read_text(OUTPUT_LOG)
    assert "root\n/root\n" in log and "--- exit status 0" in log
    assert os.stat(chroot_root.path(OUTPUT_LOG)).st_mode & 0o777 == 0o600


def test_exit_status_and_missing_command(chroot_root: Root) -> None:
    runner = CommandRunner(chroot_root)
    assert runner.run(["/bin/sh", "-c", "exit 3"]) == 3
    assert runner.run(["/no/such/tool"]) != 0


def test_host_environment_does_not_leak(chroot_root: Root, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METABOOT_SECRET_TEST", "leak")
    runner = CommandRunner(chroot_root)
    runner.run(["/bin/env"], env={"INSTANCE_ID": "i-1"})
    log = chroot_root.read_text(OUTPUT_LOG)
    assert "INSTANCE_ID=i-1" in log and "METABOOT_SECRET_TEST" not in log


def test_tree_without_shell_is_skipped(guest_root: Root) -> None:
    reason = cannot_enter(guest_root, RootCommands.CHROOT)
    assert reason is not None and "no /bin/sh" in reason
    with pytest.raises(CommandSkipped, match="not the live system"):
        CommandRunner(guest_root).run(["/bin/sh", "-c", "true"])


def test_skip_policy(chroot_root: Root) -> None:
    with pytest.raises(CommandSkipped, match="root_commands is 'skip'"):
        CommandRunner(chroot_root, RootCommands.SKIP).run(["/bin/sh", "-c", "true"])


def test_live_root_runs_directly() -> None:
    runner = CommandRunner(Root("/"), output_log=None)
    assert runner.full_argv(["/bin/true"]) == ["/bin/true"]
    assert runner.run(["/bin/sh", "-c", "exit 4"]) == 4


def test_policy_setting() -> None:
    assert policy_from({}) is RootCommands.CHROOT
    assert policy_from({"root_commands": "skip"}) is RootCommands.SKIP
    with pytest.raises(ConfigError, match="root_commands"):
        policy_from({"root_commands": "host"})


def test_output_log_symlink_is_refused(chroot_root: Root, tmp_path: Path) -> None:
    outside = tmp_path / "outside.log"
    outside.write_text("host file\n")
    os.symlink(str(outside), chroot_root.path(OUTPUT_LOG))
    with pytest.raises(CommandFailed, match=r"cannot open /var/log/metaboot-output\.log"):
        CommandRunner(chroot_root).run(["/bin/sh", "-c", "echo hi"])
    assert outside.read_text() == "host file\n"


def test_a_command_makes_the_root_forget_the_directories_it_saw(chroot_root: Root) -> None:
    """What a guest command did to the tree is seen by the next path Root maps: a directory
    it replaced by a link to an absolute path is followed inside the root."""
    chroot_root.makedirs("/srv/data")
    chroot_root.makedirs("/opt/app/conf")
    assert chroot_root.host_path("/opt/app/conf/x") == f"{chroot_root.base_dir}/opt/app/conf/x"
    status = CommandRunner(chroot_root).run(
        ["/bin/sh", "-c", "rm -r /opt/app/conf && ln -s /srv/data /opt/app/conf"]
    )
    assert status == 0
    assert chroot_root.host_path("/opt/app/conf/x") == f"{chroot_root.base_dir}/srv/data/x"
