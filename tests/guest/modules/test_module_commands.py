"""bootcmd, runcmd and the script modules: run inside the root with chroot, or reported skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.modules._shell import shellify
from metaboot.guest.os.commands import OUTPUT_LOG, CommandFailed
from metaboot.guest.system import Root
from tests.guest.modules.modharness import STATE_DIR, MakeHarness


def test_shellify_quotes_lists() -> None:
    script = shellify(["echo one", ["printf", "%s\\n", "two words", "it's"], None], "runcmd")
    assert script == "#!/bin/sh\necho one\nprintf '%s\\n' 'two words' 'it'\"'\"'s'\n"
    with pytest.raises(ConfigError, match=r"runcmd\[0\]: expected a string or a list"):
        shellify([{"bad": 1}], "runcmd")
    with pytest.raises(ConfigError, match="expected a list of commands"):
        shellify("echo", "bootcmd")


def test_bootcmd_runs_inside_the_root_every_time(chroot_root: Root, harness: MakeHarness) -> None:
    h = harness(
        chroot_root,
        '#cloud-config\nbootcmd:\n  - echo "boot $INSTANCE_ID" >> /var/boot.log\n'
        "  - [sh, -c, 'id -un >> /var/boot.log']\n",
    )
    h.run("bootcmd")
    h.run("bootcmd")
    instance_id = h.instance.instance_id
    assert chroot_root.read_text("/var/boot.log") == f"boot {instance_id}\nroot\n" * 2
    assert (
        not os.path.exists("/var/boot.log")
        or "boot " + instance_id not in Path("/var/boot.log").read_text()
    )
    assert os.stat(chroot_root.path(f"{STATE_DIR}/bootcmd")).st_mode & 0o777 == 0o700


def test_bootcmd_failure_is_reported(chroot_root: Root, harness: MakeHarness) -> None:
    h = harness(chroot_root, '#cloud-config\nbootcmd: ["echo failing; exit 7"]\n')
    with pytest.raises(CommandFailed, match="status 7"):
        h.run("bootcmd")
    assert "failing\n" in chroot_root.read_text(OUTPUT_LOG)


def test_runcmd_is_written_then_run_by_scripts_user(
    chroot_root: Root, harness: MakeHarness
) -> None:
    h = harness(
        chroot_root,
        """#cloud-config
users: [default]
runcmd:
  - echo "runcmd ran" > /root/runcmd.out
  - [sh, -c, "id debian >> /root/runcmd.out"]
  - [touch, /root/with space]
""",
    )
    h.run("users_groups")
    report = h.run("runcmd")
    script = f"{STATE_DIR}/scripts/runcmd"
    assert chroot_root.read_text(script) == (
        '#!/bin/sh\necho "runcmd ran" > /root/runcmd.out\n'
        "sh -c 'id debian >> /root/runcmd.out'\ntouch '/root/with space'\n"
    )
    assert os.stat(chroot_root.path(script)).st_mode & 0o777 == 0o700
    assert report.changes == [f"wrote {script}"]
    assert not chroot_root.exists("/root/runcmd.out")  # nothing runs before the final stage
    # A user-data script part, as the agent stores it, runs first (sorted names).
    chroot_root.write_file(
        f"{STATE_DIR}/scripts/part-001", "#!/bin/sh\necho part > /root/order\n", mode=0o700
    )
    h.run("scripts_user")
    out = chroot_root.read_text("/root/runcmd.out")
    assert out.startswith("runcmd ran\nuid=")  # id ran inside the root and found its user
    assert "(debian)" in out
    assert chroot_root.exists("/root/with space")
    assert chroot_root.read_text("/root/order") == "part\n"
    log = chroot_root.read_text(OUTPUT_LOG)
    assert log.index("part-001") < log.index("runcmd")


def test_failing_script_does_not_stop_the_others(chroot_root: Root, harness: MakeHarness) -> None:
    scripts = f"{STATE_DIR}/scripts"
    chroot_root.write_file(f"{scripts}/part-001", "#!/bin/sh\nexit 2\n", mode=0o700)
    chroot_root.write_file(f"{scripts}/part-002", "#!/bin/sh\ntouch /root/second\n", mode=0o700)
    chroot_root.write_file(f"{scripts}/notes.txt", "not executable\n", mode=0o644)
    h = harness(chroot_root)
    with pytest.raises(CommandFailed, match=r"1 of 2 scripts failed: .*part-001 \(exit 2\)"):
        h.run("scripts_user")
    assert chroot_root.exists("/root/second")
    assert any("notes.txt is not executable" in w for w in h.report.warnings)


def test_non_chrootable_root_skips_with_a_report(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root, '#cloud-config\nbootcmd: ["touch /should-not-exist"]\nruncmd: ["true"]\n'
    )
    report = h.run("bootcmd")
    assert "bootcmd not run" in report.warnings[0] and "no /bin/sh" in report.warnings[0]
    h.run("runcmd")
    report = h.run("scripts_user")
    assert "1 script(s) not run" in report.warnings[0]
    assert not guest_root.exists("/should-not-exist") and not os.path.exists("/should-not-exist")


def test_root_commands_skip(chroot_root: Root, harness: MakeHarness) -> None:
    h = harness(
        chroot_root, '#cloud-config\nbootcmd: ["touch /root/x"]\n', agent="root_commands: skip\n"
    )
    report = h.run("bootcmd")
    assert "root_commands is 'skip'" in report.warnings[0]
    assert not chroot_root.exists("/root/x")


@pytest.mark.parametrize("which", ["boot", "instance", "once"])
def test_per_frequency_directories(chroot_root: Root, harness: MakeHarness, which: str) -> None:
    chroot_root.write_file(
        f"/var/lib/metaboot/scripts/per-{which}/10-ours",
        f"#!/bin/sh\necho ours >> /root/{which}\n",
        mode=0o755,
    )
    chroot_root.write_file(
        f"/var/lib/cloud/scripts/per-{which}/10-cloud",
        f"#!/bin/sh\necho cloud >> /root/{which}\n",
        mode=0o755,
    )
    harness(chroot_root).run(f"scripts_per_{which}")
    assert chroot_root.read_text(f"/root/{which}") == "cloud\nours\n"


def test_vendor_scripts_with_prefix_and_disabled(chroot_root: Root, harness: MakeHarness) -> None:
    chroot_root.write_file(
        f"{STATE_DIR}/scripts/vendor/part-001",
        '#!/bin/sh\necho "prefix said $FROM_PREFIX" > /root/v\n',
        mode=0o700,
    )
    doc = "#cloud-config\nvendor_data:\n  prefix: [env, FROM_PREFIX=yes]\n"
    harness(chroot_root, doc).run("scripts_vendor")
    assert chroot_root.read_text("/root/v") == "prefix said yes\n"
    chroot_root.remove("/root/v")
    report = harness(chroot_root, "#cloud-config\nvendor_data: {enabled: false}\n").run(
        "scripts_vendor"
    )
    assert not chroot_root.exists("/root/v") and "disabled" in report.changes[0]
