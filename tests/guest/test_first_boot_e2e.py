"""A whole first boot with the real modules, from a real drive and from the real service:
hostname, /etc/hosts, users with keys and groups, files, host keys — then a reboot that does no
per-instance work, a new instance-id that does it again, and clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from metaboot.drive import DriveOptions, write_drive_file
from metaboot.guest.status import summarize
from metaboot.guest.system import Root
from metaboot.metadata import parse_spec
from tests.guest.helpers import (
    KEY,
    REPO_ROOT,
    UUID,
    UUID2,
    agent_config,
    http_only,
    loopback_spec,
    make_root,
    metaboot_serve,
    reboot,
    spec,
    status,
)

USER_DATA = """#cloud-config
hostname: web-1
fqdn: web-1.example.internal
manage_etc_hosts: true
users:
  - default
  - name: deploy
    groups: [adm]
    shell: /bin/bash
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployKeyDeployKeyDeployKey deploy@example
write_files:
  - path: /etc/motd
    content: "welcome\\n"
    permissions: "0640"
ssh_genkeytypes: [ed25519]
"""
IMAGE_CONFIG = {
    "users": ["default"],
    "disable_root": True,
    "system_info": {
        "default_user": {"name": "debian", "groups": ["adm", "sudo"], "shell": "/bin/bash"}
    },
}


def image(base: Path) -> Root:
    root = make_root(base)
    root.write_file("/etc/group", "root:x:0:\nadm:x:4:\nsudo:x:27:\nusers:x:100:\n")
    root.write_file("/etc/gshadow", "root:*::\nadm:*::\nsudo:*::\nusers:*::\n", mode=0o640)
    root.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
    root.write_file("/etc/ssh/ssh_host_ed25519_key", "from the image builder\n", mode=0o600)
    agent_config(root, IMAGE_CONFIG, "10-image.yaml")
    return root


def init(root: Root) -> subprocess.CompletedProcess[str]:
    paths = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]  # keeps tests/netguard
    env = {"PYTHONPATH": os.pathsep.join(paths), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "init", "--root", str(root.base)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def assert_configured(root: Root, instance: str) -> None:
    record = status(root)
    summary = summarize(record)
    assert summary.errors == [], summary.errors
    assert record["instance_id"] == instance
    assert root.read_text("/etc/hostname").strip() == "web-1"
    assert "web-1.example.internal" in root.read_text("/etc/hosts")
    passwd = root.read_text("/etc/passwd")
    assert "\ndebian:" in passwd and "\ndeploy:" in passwd
    assert "deploy" in root.read_text("/etc/group").split("adm:x:4:")[1].split("\n")[0]
    assert KEY in root.read_text("/home/debian/.ssh/authorized_keys")
    assert "deploy@example" in root.read_text("/home/deploy/.ssh/authorized_keys")
    assert root.read_text("/etc/motd") == "welcome\n"
    assert root.path("/etc/motd").stat().st_mode & 0o777 == 0o640
    assert root.read_text("/etc/ssh/ssh_host_ed25519_key") != "from the image builder\n"


def test_first_boot_from_a_real_config_drive(tmp_path: Path) -> None:
    root = image(tmp_path / "root")
    root.makedirs("/dev/disk/by-label")
    drive = root.path("/dev/sr0")
    write_drive_file(parse_spec(spec(user_data=USER_DATA)), drive, DriveOptions(time.time(), "iso"))
    (root.path("/dev/disk/by-label") / "config-2").symlink_to("../../sr0")
    first = init(root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert_configured(root, UUID)
    keys = root.read_text("/etc/ssh/ssh_host_ed25519_key")

    reboot(root)
    init(root)
    record = status(root)
    modules = {m["name"]: m["result"] for s in record["stages"].values() for m in s["modules"]}
    assert modules["users_groups"] == "already-ran" and modules["ssh"] == "already-ran"
    assert root.read_text("/etc/ssh/ssh_host_ed25519_key") == keys

    reboot(root)
    write_drive_file(
        parse_spec(spec(uuid=UUID2, user_data=USER_DATA)), drive, DriveOptions(time.time(), "iso")
    )
    init(root)
    assert status(root)["new_instance"] is True
    assert root.read_text("/etc/ssh/ssh_host_ed25519_key") != keys  # a clone gets new host keys
    assert_configured(root, UUID2)

    # clean: the next boot is a first boot again, over accounts that already exist.
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "clean", "--root", str(root.base)],
        env=env,
        check=True,
    )
    assert not root.exists("/var/lib/metaboot/data/instance-id")
    init(root)
    assert status(root)["new_instance"] is True
    assert_configured(root, UUID2)
    assert root.read_text("/etc/passwd").count("\ndeploy:") == 1


def test_first_boot_from_the_real_service(tmp_path: Path) -> None:
    with metaboot_serve(tmp_path, [loopback_spec(user_data=USER_DATA)]) as (url, _):
        root = image(tmp_path / "root")
        agent_config(root, http_only(url), "20-test.yaml")
        result = init(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_configured(root, UUID)
    assert (
        json.loads(root.read_bytes("/run/metaboot/instance-data.json"))["v1"]["service_url"] == url
    )
