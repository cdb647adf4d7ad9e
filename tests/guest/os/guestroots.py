"""Realistic system roots for the guest tests.

A root gets this machine's real account files (passwd, group, shadow, gshadow, login.defs,
default/useradd, skel), a Debian 12 style sshd_config that includes ``sshd_config.d/*.conf``,
/etc/hostname and /etc/hosts as a fresh Debian image has them, sudoers, a time zone and the
locale lists. ``chrootable=True`` adds a real /bin/sh and a few tools with their libraries, so
commands can run inside the tree with chroot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from metaboot.guest.system import Root

SSHD_CONFIG = """\
# sshd configuration as Debian 12 ships it (see sshd_config(5)).

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#PermitRootLogin prohibit-password
#PubkeyAuthentication yes
#AuthorizedKeysFile	.ssh/authorized_keys .ssh/authorized_keys2
#PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
"""

HOSTS = """\
127.0.0.1	localhost
127.0.1.1	debian

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
ff02::2 ip6-allrouters
"""

SUDOERS = """\
Defaults	env_reset
Defaults	secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root	ALL=(ALL:ALL) ALL
%sudo	ALL=(ALL:ALL) ALL
@includedir /etc/sudoers.d
"""

CHROOT_TOOLS = ("sh", "id", "touch", "cat", "env", "ls", "ln", "rm")


def _copy(src: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst)


def build_root(base: Path, *, chrootable: bool = False) -> Root:
    base.mkdir(parents=True, exist_ok=True)
    etc = base / "etc"
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs", "skel", "default/useradd"):
        _copy(f"/etc/{name}", etc / name)
    for directory, mode in (
        ("home", 0o755),
        ("root", 0o700),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("etc/ssh/sshd_config.d", 0o755),
        ("etc/sudoers.d", 0o750),
        ("run", 0o755),
    ):
        (base / directory).mkdir(parents=True, exist_ok=True)
        os.chmod(base / directory, mode)
    (etc / "ssh/sshd_config").write_text(SSHD_CONFIG)
    for key_type in ("rsa", "ecdsa", "ed25519"):
        # The image's own host keys, which every clone would otherwise share.
        (etc / f"ssh/ssh_host_{key_type}_key").write_text("IMAGE PRIVATE KEY\n")
        (etc / f"ssh/ssh_host_{key_type}_key.pub").write_text(f"ssh-{key_type} IMAGE\n")
    (etc / "hostname").write_text("debian\n")
    (etc / "hosts").write_text(HOSTS)
    (etc / "sudoers").write_text(SUDOERS)
    os.chmod(etc / "sudoers", 0o440)
    (etc / "debian_version").write_text("12.0\n")
    _copy("/usr/share/zoneinfo/Europe/Berlin", base / "usr/share/zoneinfo/Europe/Berlin")
    _copy("/usr/share/zoneinfo/Etc/UTC", base / "usr/share/zoneinfo/Etc/UTC")
    os.symlink("/usr/share/zoneinfo/Etc/UTC", etc / "localtime")
    (etc / "timezone").write_text("Etc/UTC\n")
    _copy("/etc/locale.gen", etc / "locale.gen")
    _copy("/usr/share/i18n/SUPPORTED", base / "usr/share/i18n/SUPPORTED")
    if chrootable:
        make_chrootable(base)
    return Root(base)


def make_chrootable(base: Path) -> None:
    """Copy a shell and a few tools with the shared libraries they need into ``base``."""
    for tool in CHROOT_TOOLS:
        host = shutil.which("dash" if tool == "sh" else tool)
        assert host is not None, f"{tool} is needed on this machine to build a chroot"
        target = base / "bin" / tool
        _copy(os.path.realpath(host), target)
        libraries = subprocess.run(["ldd", host], capture_output=True, text=True, check=True)
        for path in re.findall(r"(/\S+\.so[.\d]*)", libraries.stdout):
            dest = base / path.lstrip("/")
            if not dest.exists():
                _copy(os.path.realpath(path), dest)
    (base / "usr").mkdir(exist_ok=True)
    for link in ("usr/bin", "usr/sbin", "sbin"):
        if not (base / link).exists():
            os.symlink("/bin", base / link)
