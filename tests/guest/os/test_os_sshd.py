"""sshd settings land where sshd reads them first; keys and host keys are installed correctly."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import accounts, sshd
from metaboot.guest.system import Root

KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcJ0rIkU3PLV3dY9Qe0yAqL8lqEZxM7bqz8hRvR8Kq0 alice@laptop"
)
KEY2 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEm bob@desk"


def test_dropin_used_when_sshd_config_includes_it(guest_root: Root) -> None:
    before = guest_root.read_text(sshd.SSHD_CONFIG)
    change = sshd.set_options(guest_root, {"PasswordAuthentication": "no"})
    assert change == sshd.ConfigChange(sshd.DROPIN, True)
    assert guest_root.read_text(sshd.SSHD_CONFIG) == before
    assert "PasswordAuthentication no\n" in guest_root.read_text(sshd.DROPIN)
    winner = sshd.effective(guest_root, "passwordauthentication")
    assert winner is not None and (winner.path, winner.value) == (sshd.DROPIN, "no")
    # Again with the same value: nothing to do. Then flipped: replaced, not added.
    assert not sshd.set_options(guest_root, {"PasswordAuthentication": "no"}).changed
    sshd.set_options(guest_root, {"PasswordAuthentication": "yes"})
    assert guest_root.read_text(sshd.DROPIN).count("PasswordAuthentication") == 1


def test_sshd_config_edited_without_include(guest_root: Root) -> None:
    guest_root.write_file(
        sshd.SSHD_CONFIG,
        "# old style\nPort 22\npasswordauthentication yes\nUsePAM yes\n"
        "Match User backup\n    PasswordAuthentication yes\n",
    )
    change = sshd.set_options(guest_root, {"PasswordAuthentication": "no"})
    assert change == sshd.ConfigChange(sshd.SSHD_CONFIG, True)
    text = guest_root.read_text(sshd.SSHD_CONFIG)
    assert text == (
        "# old style\nPort 22\nPasswordAuthentication no\nUsePAM yes\n"
        "Match User backup\n    PasswordAuthentication yes\n"
    )
    assert not guest_root.exists(sshd.DROPIN)


def test_new_keyword_goes_before_match_block() -> None:
    text = "Port 22\nMatch Address 10.0.0.0/8\n  X11Forwarding yes\n"
    assert sshd.apply_options(text, {"PasswordAuthentication": "no"}) == (
        "Port 22\nPasswordAuthentication no\n\nMatch Address 10.0.0.0/8\n  X11Forwarding yes\n"
    )


def test_effective_sees_earlier_setting_that_wins(guest_root: Root) -> None:
    guest_root.write_file(
        sshd.SSHD_CONFIG,
        "PasswordAuthentication yes\nInclude sshd_config.d/*.conf\n",
    )
    sshd.set_options(guest_root, {"PasswordAuthentication": "no"})
    winner = sshd.effective(guest_root, "PasswordAuthentication")
    assert winner is not None and winner.value == "yes" and winner.lineno == 1


@pytest.fixture
def sshd_t(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``sshd -T`` over a config text: what the real sshd makes of it (setup/apt/modules.list)."""
    daemon = "/usr/sbin/sshd"
    assert os.path.exists(daemon), "openssh-server (setup/apt/modules.list) provides sshd -T"
    key = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    privsep = Path("/run/sshd")  # sshd -T insists on it; created only if missing, then removed
    made = not privsep.exists()
    if made:
        privsep.mkdir(mode=0o755)
    try:

        def run(text: str) -> str:
            conf = tmp_path / "sshd_config"
            conf.write_text(text)
            proc = subprocess.run(
                [daemon, "-T", "-f", str(conf), "-h", str(key)], capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        yield run
    finally:
        if made:
            privsep.rmdir()


@pytest.mark.parametrize("include", [True, False])
def test_sshd_itself_reads_our_setting(
    guest_root: Root, sshd_t: Callable[[str], str], include: bool
) -> None:
    if not include:
        text = guest_root.read_text(sshd.SSHD_CONFIG).replace("Include", "#Include")
        guest_root.write_file(sshd.SSHD_CONFIG, text)
    for value in ("no", "yes"):
        sshd.set_options(guest_root, {"PasswordAuthentication": value})
        # sshd resolves Include on this machine: point it at the root's drop-in directory.
        flat = guest_root.read_text(sshd.SSHD_CONFIG).replace(
            "/etc/ssh/sshd_config.d", str(guest_root.path("/etc/ssh/sshd_config.d"))
        )
        assert f"passwordauthentication {value}" in sshd_t(flat).splitlines()


def test_include_glob_and_depth(guest_root: Root) -> None:
    guest_root.write_file("/etc/ssh/sshd_config.d/10-a.conf", "Include /etc/ssh/extra.conf\n")
    guest_root.write_file("/etc/ssh/extra.conf", "AuthorizedKeysFile /etc/ssh/keys/%u .ssh/k2\n")
    directive = sshd.effective(guest_root, "AuthorizedKeysFile")
    assert directive is not None and directive.path == "/etc/ssh/extra.conf"
    guest_root.write_file("/etc/ssh/extra.conf", "Include /etc/ssh/extra.conf\n")
    with pytest.raises(ConfigError, match="nesting"):
        sshd.read_config(guest_root)


def test_missing_sshd_config_is_a_clear_error(guest_root: Root) -> None:
    guest_root.remove(sshd.SSHD_CONFIG)
    with pytest.raises(ConfigError, match="openssh-server"):
        sshd.set_options(guest_root, {"PasswordAuthentication": "no"})


def test_merge_keys_replaces_same_key_keeps_others() -> None:
    existing = f"# mine\n{KEY2}\n{KEY}\n"
    merged = sshd.merge_keys(existing, [f"no-pty {KEY}", "ssh-rsa AAAAB3NzaC1yc2E new"])
    assert merged == f"# mine\n{KEY2}\nno-pty {KEY}\nssh-rsa AAAAB3NzaC1yc2E new\n"


def test_install_keys_modes_owner_and_rejects(guest_root: Root) -> None:
    accounts.add_user(guest_root, accounts.NewUser("alice"))
    result = sshd.install_keys(guest_root, "alice", [KEY, "not a key at all", KEY])
    assert result.path == "/home/alice/.ssh/authorized_keys"
    assert result.added == 1 and result.rejected == ["not a key at all"]
    uid = guest_root.uid_of("alice")
    ssh_dir = guest_root.path("/home/alice/.ssh")
    keys = ssh_dir / "authorized_keys"
    assert (ssh_dir.stat().st_mode & 0o777, ssh_dir.stat().st_uid) == (0o700, uid)
    assert (keys.stat().st_mode & 0o777, keys.stat().st_uid) == (0o600, uid)
    assert keys.read_text() == KEY + "\n"


def test_authorized_keys_file_setting_is_followed(guest_root: Root) -> None:
    accounts.add_user(guest_root, accounts.NewUser("alice"))
    sshd.set_options(guest_root, {"AuthorizedKeysFile": "/etc/ssh/authorized_keys/%u"})
    result = sshd.install_keys(guest_root, "alice", [KEY])
    assert result.path == "/etc/ssh/authorized_keys/alice"
    assert guest_root.read_text(result.path) == KEY + "\n"


def test_host_keys_deleted_and_generated(guest_root: Root) -> None:
    removed = sshd.delete_host_keys(guest_root)
    assert len(removed) == 6
    made = sshd.generate_host_keys(guest_root, ["ed25519", "ecdsa"], "root@web-1")
    assert made == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ecdsa_key"]
    for path in made:
        private = guest_root.path(path)
        assert private.stat().st_mode & 0o777 == 0o600
        public = guest_root.read_text(path + ".pub")
        assert public.endswith(" root@web-1\n")
        # The public key really belongs to the private one.
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
        ).stdout.split()[:2]
        assert derived == public.split()[:2]
    # Present keys are kept, not regenerated.
    before = guest_root.read_text(made[0])
    assert sshd.generate_host_keys(guest_root, ["ed25519"], "x") == []
    assert guest_root.read_text(made[0]) == before


def test_unknown_host_key_type(guest_root: Root) -> None:
    with pytest.raises(ConfigError, match="unknown SSH host key type"):
        sshd.generate_host_keys(guest_root, ["rsa1"], "x")


def test_given_host_keys_public_derived(guest_root: Root, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "given", "-f", str(tmp_path / "k")],
        check=True,
    )
    private = (tmp_path / "k").read_text()
    written, certs = sshd.write_host_keys(guest_root, {"ed25519_private": private})
    assert written == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub"]
    assert certs == []
    assert guest_root.read_text(written[0]) == private
    assert (
        guest_root.read_text(written[1]).split()[:2] == (tmp_path / "k.pub").read_text().split()[:2]
    )
    assert guest_root.path(written[0]).stat().st_mode & 0o777 == 0o600


def test_host_key_symlink_never_leads_out_of_the_root(guest_root: Root, tmp_path: Path) -> None:
    outside = tmp_path / "outside-key"
    sshd.delete_host_keys(guest_root)
    os.symlink(str(outside), guest_root.path("/etc/ssh/ssh_host_ed25519_key"))
    sshd.generate_host_keys(guest_root, ["ed25519"], "root@x")
    assert not outside.exists()
    assert not guest_root.path("/etc/ssh/ssh_host_ed25519_key").is_symlink()


# The patterns sshd.py used to read lines with: its string methods must give the same answers.
KEYWORD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)(.*?)\s*$")
KEY_RE = re.compile(
    r"(?:^|\s)((?:ssh|ecdsa|sk)-[A-Za-z0-9@._-]+|ecdsa-sha2-nistp\d+)\s+([A-Za-z0-9+/]+={0,3})(?:\s|$)"
)
DIRECTIVE_LINES = [
    "Port 22",
    "Port",
    "Port  ",
    "  PasswordAuthentication   no  ",
    "Port=22",
    "Port = 22 ",
    "Port==22",
    "Port =",
    "Port x=y",
    "Port\t22",
    "Port\u00a022",
    "Port:22",
    "2Port 22",
    "Pört 22",
    "AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2",
    "Match User bob",
    "=22",
    "",
    "   ",
    "X11Forwarding\tyes\t# comment",
]
KEY_LINES = [
    "ssh-ed25519 AAAAC3Nz user@host",
    'command="echo hi there" ssh-rsa AAAAB3== comment',
    'no-pty,from="10.0.0.1" ecdsa-sha2-nistp256 AAAAE2V= x',
    "ecdsa-sha2-nistp\u0663 AAAA",
    "sk-ssh-ed25519@openssh.com AAAAGnNr",
    "ssh-ed25519 AAAA====",
    "ssh-ed25519 AAAA,bad",
    "ssh- AAAA",
    "ssh-rsa",
    "ssh-rsa\tAAAA\tc",
    "x ssh-rsa ssh-ed25519 AAAA",
    "rsa AAAA",
    "ssh-rsa AAAA=",
    "ssh-rsa ====",
    "ssh-rs!a AAAA",
]


@pytest.mark.parametrize("line", DIRECTIVE_LINES)
def test_directives_are_split_as_the_pattern_split_them(line: str) -> None:
    m = KEYWORD_RE.match(line)
    assert sshd.split_directive(line) == (m.groups() if m else None)


@pytest.mark.parametrize("line", KEY_LINES)
def test_keys_are_identified_as_the_pattern_identified_them(line: str) -> None:
    m = KEY_RE.search(line)
    assert sshd.key_identity(line) == (m.groups() if m else None)


@pytest.mark.parametrize(
    "text", ["%h/.ssh/keys", "/keys/%u", "%%h", "%%%u", "100%", "%x%h", "%", "a%%", "%u%u"]
)
def test_tokens_expand_as_the_substitution_did(text: str) -> None:
    table = {"%": "%", "h": "/home/bob", "u": "bob"}
    expected = re.sub(r"%([%hu])", lambda m: table[m.group(1)], text)
    assert sshd.expand_tokens(text, "/home/bob", "bob") == expected


def test_host_key_names_are_checked_exactly(guest_root: Root) -> None:
    with pytest.raises(ConfigError, match=r"ssh_keys\.rsa_private"):
        sshd.write_host_keys(guest_root, {"rsa_private\n": "x"})
