"""users_groups (and the keys ssh gives the default user) over a fresh Debian root."""

from __future__ import annotations

import os
import subprocess

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os.passwords import hash_password
from metaboot.guest.os.sudoers import RULES_FILE
from metaboot.guest.system import Root
from tests.guest.modules.modharness import KeyPair, MakeHarness, instance_data, members, rows

# Every assertion holds for the Python editor and for shadow-utils alike.
pytestmark = pytest.mark.usefixtures("account_way")


def test_default_user_with_metadata_keys(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nssh_genkeytypes: [ed25519]\n",
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    h.run("users_groups")
    report = h.run("ssh")
    entry = rows(guest_root, "passwd")["debian"]
    assert entry[4:] == ["Debian", "/home/debian", "/bin/bash"]
    for group in ("adm", "sudo", "plugdev", "video"):
        assert "debian" in members(guest_root, group)
    assert rows(guest_root, "shadow")["debian"][1].startswith("!")  # lock_passwd: true
    assert "debian ALL=(ALL) NOPASSWD:ALL\n" in guest_root.read_text(RULES_FILE)
    keys = guest_root.read_text("/home/debian/.ssh/authorized_keys")
    assert keys == keypairs["alice"].public + "\n"
    root_keys = guest_root.read_text("/root/.ssh/authorized_keys")
    assert root_keys.startswith("no-port-forwarding,no-agent-forwarding,no-X11-forwarding,command=")
    assert 'Please login as the user \\"debian\\" rather than the user \\"root\\".' in root_keys
    assert root_keys.rstrip().endswith(keypairs["alice"].public)
    assert any("root login disabled" in c for c in report.changes)


def test_users_in_every_form(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    alice_hash = hash_password("alice's secret")
    h = harness(
        guest_root,
        f"""#cloud-config
groups:
  - admingroup: [root, sys]
  - cloud-users
users:
  - default
  - name: alice
    gecos: Alice Example
    groups: [cloud-users, docker]
    shell: /bin/sh
    sudo: ALL=(ALL) NOPASSWD:ALL
    lock_passwd: false
    passwd: "{alice_hash}"
    ssh_authorized_keys:
      - {keypairs["alice"].public}
  - name: svc
    system: true
    shell: /usr/sbin/nologin
  - name: bob
    primary_group: staffers
    no_user_group: true
    homedir: /srv/bob
    uid: 2345
    plain_text_passwd: bobs-password
    lock_passwd: false
    ssh_authorized_keys:
      - {keypairs["bob"].public}
""",
    )
    report = h.run("users_groups")
    passwd, shadow = rows(guest_root, "passwd"), rows(guest_root, "shadow")
    assert set(members(guest_root, "admingroup")) == {"root", "sys"}
    assert members(guest_root, "cloud-users") == ["alice"]
    assert members(guest_root, "docker") == ["alice"]  # created for her (create_groups)
    assert passwd["alice"][4:] == ["Alice Example", "/home/alice", "/bin/sh"]
    assert shadow["alice"][1] == alice_hash
    assert "alice ALL=(ALL) NOPASSWD:ALL" in guest_root.read_text(RULES_FILE)
    alice_keys = guest_root.path("/home/alice/.ssh/authorized_keys")
    assert alice_keys.read_text() == keypairs["alice"].public + "\n"
    assert alice_keys.stat().st_uid == int(passwd["alice"][2])
    assert int(passwd["svc"][2]) < 1000 and not guest_root.exists("/home/svc")
    assert passwd["bob"][2] == "2345" and passwd["bob"][5] == "/srv/bob"
    assert passwd["bob"][3] == rows(guest_root, "group")["staffers"][2]
    assert "bob" not in rows(guest_root, "group")
    bob_hash = shadow["bob"][1]
    salt = bob_hash.split("$")[2]
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input="bobs-password\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert bob_hash == again
    assert guest_root.read_text("/srv/bob/.ssh/authorized_keys") == keypairs["bob"].public + "\n"
    assert "bobs-password" not in repr(report) and alice_hash not in repr(report)


def test_users_absent_means_default(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, agent="system_info:\n  default_user:\n    name: cloud\n")
    h.run("users_groups")
    assert "cloud" in rows(guest_root, "passwd")


def test_empty_users_means_none(guest_root: Root, harness: MakeHarness) -> None:
    before = guest_root.read_text("/etc/passwd")
    # cloud-init's schema wants at least one user; an image's own config may still say none.
    harness(guest_root, agent="users: []\n").run("users_groups")
    assert guest_root.read_text("/etc/passwd") == before


def test_user_key_renames_default_user(guest_root: Root, harness: MakeHarness) -> None:
    harness(guest_root, "#cloud-config\nuser: {name: admin}\n").run("users_groups")
    passwd = rows(guest_root, "passwd")
    assert "admin" in passwd and "debian" not in passwd
    assert "admin" in members(guest_root, "sudo")


def test_existing_user_is_updated_not_recreated(guest_root: Root, harness: MakeHarness) -> None:
    harness(guest_root).run("users_groups")
    uid = rows(guest_root, "passwd")["debian"][2]
    h = harness(
        guest_root,
        "#cloud-config\nusers:\n  - name: debian\n    shell: /bin/sh\n"
        "    plain_text_passwd: new-one\n    lock_passwd: false\n",
    )
    report = h.run("users_groups")
    entry = rows(guest_root, "passwd")["debian"]
    assert entry[2] == uid and entry[6] == "/bin/bash"  # not re-created: shell unchanged
    assert not rows(guest_root, "shadow")["debian"][1].startswith("!")
    assert "user debian already exists; not re-created" in report.changes


def test_one_bad_user_does_not_stop_the_others(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nusers:\n  - name: ok-user\n  - name: bad:name\n  - name: also-ok\n",
    )
    with pytest.raises(ConfigError, match=r"1 user/group change.*bad:name"):
        h.run("users_groups")
    passwd = rows(guest_root, "passwd")
    assert "ok-user" in passwd and "also-ok" in passwd


def test_deprecated_spellings_still_work(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nusers:\n  - name: carol\n"
        "    lock-passwd: false\n    plain_text_passwd: pw\n",
        deprecated=True,
    )
    report = h.run("users_groups")
    assert not rows(guest_root, "shadow")["carol"][1].startswith("!")
    assert any("'lock-passwd' is deprecated" in w for w in report.warnings)


def test_unsupported_keys_warned(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, "#cloud-config\nusers:\n  - name: dan\n    ssh_import_id: [gh:dan]\n")
    report = h.run("users_groups")
    assert "dan" in rows(guest_root, "passwd")
    assert any("ssh_import_id is not supported" in w for w in report.warnings)


def test_ssh_redirect_user(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nusers:\n  - default\n  - name: legacy\n    ssh_redirect_user: true\n",
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    h.run("users_groups")
    text = guest_root.read_text("/home/legacy/.ssh/authorized_keys")
    assert 'Please login as the user \\"debian\\" rather than the user \\"legacy\\".' in text
    assert text.rstrip().endswith(keypairs["alice"].public)


def test_home_directory_modes(guest_root: Root, harness: MakeHarness) -> None:
    harness(guest_root).run("users_groups")
    info = os.stat(guest_root.path("/home/debian"))
    assert info.st_uid == int(rows(guest_root, "passwd")["debian"][2])


def test_lock_passwd_defaults_to_true_even_with_a_password(
    guest_root: Root, harness: MakeHarness
) -> None:
    h = harness(guest_root, "#cloud-config\nusers:\n  - name: erin\n    plain_text_passwd: pw\n")
    h.run("users_groups")
    field = rows(guest_root, "shadow")["erin"][1]
    assert field.startswith("!$6$")  # set, then locked: keys only, as with cloud-init
