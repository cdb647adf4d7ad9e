"""ssh: host keys replaced, given keys installed with certificates, keys for root and users."""

from __future__ import annotations

import subprocess
from pathlib import Path

from metaboot.guest.os import sshd
from metaboot.guest.system import Root
from tests.guest.modules.modharness import KeyPair, MakeHarness, instance_data


def test_image_host_keys_replaced_with_default_types(
    guest_root: Root, harness: MakeHarness
) -> None:
    guest_root.write_file("/etc/hostname", "web-1\n")
    report = harness(guest_root).run("ssh")
    names = sorted(n for n in guest_root.listdir("/etc/ssh") if n.startswith("ssh_host_"))
    assert names == sorted(
        f"ssh_host_{t}_key{suffix}" for t in ("rsa", "ecdsa", "ed25519") for suffix in ("", ".pub")
    )
    for key_type in ("rsa", "ecdsa", "ed25519"):
        path = guest_root.path(f"/etc/ssh/ssh_host_{key_type}_key")
        assert "IMAGE" not in path.read_text()
        assert path.stat().st_mode & 0o777 == 0o600
        info = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True
        ).stdout
        assert "root@web-1" in info
    assert any("removed 6 host key file(s)" in c for c in report.changes)


def test_keep_image_keys(guest_root: Root, harness: MakeHarness) -> None:
    harness(guest_root, "#cloud-config\nssh_deletekeys: false\n").run("ssh")
    assert guest_root.read_text("/etc/ssh/ssh_host_rsa_key") == "IMAGE PRIVATE KEY\n"


def test_given_host_keys_and_certificate(
    guest_root: Root, harness: MakeHarness, tmp_path: Path
) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ca")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host")], check=True
    )
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-s",
            str(tmp_path / "ca"),
            "-I",
            "web-1",
            "-h",
            "-n",
            "web-1",
            str(tmp_path / "host.pub"),
        ],
        check=True,
    )

    def block(text: str) -> str:
        return "\n".join("    " + line for line in text.strip().splitlines())

    doc = (
        "#cloud-config\nssh_keys:\n"
        f"  ed25519_private: |\n{block((tmp_path / 'host').read_text())}\n"
        f"  ed25519_public: {(tmp_path / 'host.pub').read_text().strip()}\n"
        f"  ed25519_certificate: {(tmp_path / 'host-cert.pub').read_text().strip()}\n"
    )
    harness(guest_root, doc).run("ssh")
    assert guest_root.read_text("/etc/ssh/ssh_host_ed25519_key") == (tmp_path / "host").read_text()
    assert not guest_root.exists("/etc/ssh/ssh_host_rsa_key")  # deleted, none generated
    cert = guest_root.path("/etc/ssh/ssh_host_ed25519_key-cert.pub")
    listing = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True
    )
    assert "host certificate" in listing.stdout
    winner = sshd.effective(guest_root, "HostCertificate")
    assert winner is not None and winner.value == "/etc/ssh/ssh_host_ed25519_key-cert.pub"


def test_disable_root_false_gives_root_plain_keys(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\ndisable_root: false\nssh_genkeytypes: [ed25519]\n",
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    h.run("users_groups")
    h.run("ssh")
    assert guest_root.read_text("/root/.ssh/authorized_keys") == keypairs["alice"].public + "\n"


def test_allow_public_ssh_keys_false_and_extra_keys(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nallow_public_ssh_keys: false\nssh_genkeytypes: [ed25519]\n"
        f"ssh_authorized_keys:\n  - {keypairs['bob'].public}\n"
        'disable_root_opts: no-pty,command="echo use $USER"\n',
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    h.run("users_groups")
    h.run("ssh")
    assert (
        guest_root.read_text("/home/debian/.ssh/authorized_keys") == keypairs["bob"].public + "\n"
    )
    assert guest_root.read_text("/root/.ssh/authorized_keys") == (
        f'no-pty,command="echo use debian" {keypairs["bob"].public}\n'
    )


def test_no_default_user_keys_only_for_root(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    # users: [] is honoured although cloud-init's schema wants one item: an image's own config.
    h = harness(
        guest_root,
        "#cloud-config\nssh_genkeytypes: [ed25519]\n",
        agent="users: []\nsystem_info: {default_user: {name: debian}}\n",
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    report = h.run("ssh")
    assert 'rather than the user \\"root\\"' in guest_root.read_text("/root/.ssh/authorized_keys")
    assert '\\"NONE\\"' in guest_root.read_text("/root/.ssh/authorized_keys")
    assert "no default user" in report.warnings[0]


def test_second_run_adds_no_duplicates(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair]
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nssh_genkeytypes: [ed25519]\n",
        instance=instance_data(public_keys=[keypairs["alice"].public]),
    )
    h.run("users_groups")
    h.run("ssh")
    h.run("ssh")
    assert guest_root.read_text("/home/debian/.ssh/authorized_keys").count("ssh-ed25519") == 1
    assert guest_root.read_text("/root/.ssh/authorized_keys").count("ssh-ed25519") == 1
