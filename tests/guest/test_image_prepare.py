"""``metaboot image prepare|seal`` on temporary root trees (the VM tests boot the real result)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metaboot.cli import main as cli_main
from metaboot.errors import ConfigError, MetabootError
from metaboot.guest import bundle, image
from metaboot.guest.system import Root

SITE = "usr/lib/python3/dist-packages"
DEBIAN_PYTHON = "/usr/bin/python3"


def make_root(tmp_path: Path, python: str = "3.11", with_yaml: bool = True) -> Path:
    """The least an image needs for the agent: a python3, its stdlib directory, PyYAML."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("")
    (root / f"usr/lib/python{python}").mkdir(parents=True)
    (root / f"usr/lib/python{python}/os.py").write_text("")
    (root / SITE).mkdir(parents=True)
    if with_yaml:
        (root / SITE / "yaml").mkdir()
        (root / SITE / "yaml/__init__.py").write_text("")
    (root / "etc").mkdir()
    return root


def unit_values(text: str) -> dict[str, list[str]]:
    """A systemd unit's settings, every repeated key's values kept (configparser drops them)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).extend(value.split())
    return values


def test_prepare_installs_package_launcher_units_and_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path)
    rc = cli_main(
        ["image", "prepare", str(root), "--default-user", "debian", "--allow-root",
         "--ssh-pwauth", "--preserve-hostname", "--strip-domain", ".novalocal",
         "--datasource", "ConfigDrive,OpenStack", "--no-network-config"]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "installed /etc/metaboot/agent.yaml" in printed

    pkg = root / SITE / "metaboot"
    assert (pkg / "cli.py").is_file() and (pkg / "guest/image.py").is_file()
    assert (pkg / "guest/units/metaboot-local.service").is_file()
    assert (pkg / "diskfs/iso9660.py").is_file()  # config drives read without a mount
    # The server side stays out of the image.
    for server_part in ("service", "registry", "proxy", "drive"):
        assert not (pkg / server_part).exists()
    assert not list(pkg.rglob("*.pyc")) or sys.version_info[:2] == (3, 11)

    launcher = root / "usr/bin/metaboot"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    text = launcher.read_text()
    assert text.startswith("#!/usr/bin/python3 -IS\n")  # no environment, no site scan
    assert "sys.path.append('/usr/lib/python3/dist-packages')" in text

    cfg = yaml.safe_load((root / "etc/metaboot/agent.yaml").read_text())
    assert cfg == {
        "datasource_list": ["ConfigDrive", "OpenStack"],
        "disable_root": False,
        "ssh_pwauth": True,
        "preserve_hostname": True,
        "strip_domain": ["novalocal"],
        "network": {"config": "disabled"},
        "system_info": {
            "default_user": {
                "name": "debian",
                "lock_passwd": True,
                "gecos": "Default user",
                "groups": ["adm", "sudo"],
                "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
                "shell": "/bin/bash",
            }
        },
    }
    # ds-identify-style readers want the list on one line, as cloud.cfg recommends.
    assert (
        "datasource_list: [ConfigDrive, OpenStack]"
        in (root / "etc/metaboot/agent.yaml").read_text()
    )

    units = root / "usr/lib/systemd/system"
    for stage in ("local", "network", "config", "final"):
        unit = units / f"metaboot-{stage}.service"
        assert f"ExecStart=/usr/bin/metaboot init --stage {stage}\n" in unit.read_text()
        link = root / f"etc/systemd/system/metaboot.target.wants/metaboot-{stage}.service"
        assert os.readlink(link) == f"/usr/lib/systemd/system/metaboot-{stage}.service"
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/metaboot.target") == (
        "/usr/lib/systemd/system/metaboot.target"
    )


def test_unit_ordering_follows_cloud_init() -> None:
    """Local before the network starts (like cloud-init-local), the rest after it."""
    units = {p.name: unit_values(p.read_text()) for p in image.UNITS_DIR.iterdir()}
    local = units["metaboot-local.service"]
    assert local["Unit.DefaultDependencies"] == ["no"]
    assert (
        "network-pre.target" in local["Unit.Before"] and "network-pre.target" in local["Unit.Wants"]
    )
    assert "sysinit.target" in local["Unit.Before"]
    network = units["metaboot-network.service"]
    assert {"metaboot-local.service", "networking.service"} <= set(network["Unit.After"])
    assert {"network-online.target", "ssh.service", "systemd-user-sessions.service"} <= set(
        network["Unit.Before"]
    )
    config = units["metaboot-config.service"]
    assert {"network-online.target", "metaboot-network.service"} <= set(config["Unit.After"])
    final = units["metaboot-final.service"]
    assert {"metaboot-config.service", "multi-user.target"} <= set(final["Unit.After"])
    assert final["Service.KillMode"] == ["process"]  # power_state's waiter must survive
    for name, values in units.items():
        if name.endswith(".service"):
            assert values["Service.Type"] == ["oneshot"]
            assert "!/etc/metaboot/disabled" in values["Unit.ConditionPathExists"]
            assert values["Service.StandardOutput"] == ["journal+console"]


def test_units_pass_systemd_verify() -> None:
    """systemd itself accepts the units: known sections and keys, valid values, and the units
    they order against exist on a Debian system (this machine's own systemd checks them)."""
    units = sorted(str(p) for p in image.UNITS_DIR.iterdir())
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    # The launcher exists only inside a prepared image, not on this machine.
    problems = [
        line
        for line in proc.stderr.splitlines()
        if line.strip() and "Command /usr/bin/metaboot is not executable" not in line
    ]
    assert problems == [], proc.stderr


def test_installed_copy_runs_under_debian_python(tmp_path: Path) -> None:
    """The copied package is self-contained: Debian's own python3 runs the launcher from it."""
    if not Path(DEBIAN_PYTHON).exists():
        pytest.fail(f"{DEBIAN_PYTHON} is missing (scripts/setup-system installs it)")
    root = make_root(tmp_path)
    image.prepare(root, image.PrepareOptions(default_user="debian"))
    site = root / SITE
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "sys.argv = ['metaboot', '--version']\n"
        f"runpy.run_path({str(root / 'usr/bin/metaboot')!r}, run_name='__main__')\n"
    )
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    probe = f"import sys; sys.path.insert(0, {str(site)!r}); import metaboot.guest.image as m"
    imported = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c", probe + "; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert imported.startswith(str(site))
    # The byte-code is in the one-file bundle too, when this Python's is the image's, and the
    # launcher's imports are served from it.
    bundled = site / "metaboot" / bundle.NAME
    assert bundled.is_file() == (sys.version_info[:2] == image._guest_python(Root(root)))
    if bundled.is_file():
        served = (
            "import sys, runpy\n"
            f"sys.path.insert(0, {str(site)!r})\n"
            "sys.argv = ['metaboot', '--version']\n"
            "import atexit\n"
            "loader = lambda: type(sys.modules['metaboot.cli'].__loader__).__name__\n"
            "atexit.register(lambda: print(loader()))\n"
            f"runpy.run_path({str(root / 'usr/bin/metaboot')!r}, run_name='__main__')\n"
        )
        proc = subprocess.run(
            [DEBIAN_PYTHON, "-I", "-c", served], capture_output=True, text=True, check=False
        )
        assert proc.stdout.split()[-1] == "BundleFinder", proc.stdout + proc.stderr


def test_prepare_again_replaces_the_old_copy(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    image.prepare(root, image.PrepareOptions())
    stale = root / SITE / "metaboot/guest/stale_module.py"
    stale.write_text("raise SystemExit('stale')\n")
    image.prepare(root, image.PrepareOptions(ssh_pwauth=False))
    assert not stale.exists()
    assert not (root / SITE / ".metaboot.new").exists()
    assert yaml.safe_load((root / "etc/metaboot/agent.yaml").read_text()) == {"ssh_pwauth": False}


def test_prepare_disables_a_cloud_init_it_finds(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "etc/cloud").mkdir()
    (root / "etc/cloud/cloud.cfg").write_text("users: [default]\n")
    image.prepare(root, image.PrepareOptions())
    assert (root / "etc/cloud/cloud-init.disabled").is_file()
    other = make_root(tmp_path / "other")
    (other / "etc/cloud").mkdir()
    (other / "etc/cloud/cloud.cfg").write_text("")
    image.prepare(other, image.PrepareOptions(keep_cloud_init=True))
    assert not (other / "etc/cloud/cloud-init.disabled").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda r: (r / "usr/bin/python3").unlink(), "no /usr/bin/python3"),
        (lambda r: (r / "usr/lib/python3.11").rename(r / "usr/lib/python3.9"), "Python 3.9"),
        (lambda r: (r / SITE / "yaml/__init__.py").unlink(), "no PyYAML"),
    ],
)
def test_prepare_refuses_an_image_the_agent_cannot_run_in(
    tmp_path: Path, setup, message: str
) -> None:  # type: ignore[no-untyped-def]
    root = make_root(tmp_path)
    setup(root)
    with pytest.raises(MetabootError, match=message):
        image.prepare(root, image.PrepareOptions())
    assert not (root / SITE / "metaboot").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--default-user", "Bad User"], "--default-user"),
        (["--datasource", "ConfigDrive,../x"], "--datasource"),
    ],
)
def test_prepare_refuses_bad_options(tmp_path: Path, argv: list[str], message: str) -> None:
    root = make_root(tmp_path)
    with pytest.raises(ConfigError, match=message):
        image.main("image", ["prepare", str(root), *argv])


def test_prepare_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(MetabootError, match="not a directory"):
        image.prepare(tmp_path / "nope", image.PrepareOptions())
    proc = subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "image", "prepare", str(tmp_path / "nope")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "metaboot image: error:" in proc.stderr and "not a directory" in proc.stderr


# ---- seal ------------------------------------------------------------------------------------


def write(root: Path, guest_path: str, content: str = "x\n") -> Path:
    path = root / guest_path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def booted_root(tmp_path: Path) -> Path:
    """A root as one boot leaves it: state, logs, identity, keys, history."""
    root = tmp_path / "root"
    for guest_path in (
        "/var/lib/metaboot/data/instance-id",
        "/var/lib/metaboot/instances/i-1/sem/config_users",
        "/var/lib/metaboot/sem/once",
        "/var/lib/cloud/instances/i-1/user-data.txt",
        "/var/lib/cloud/data/instance-id",
        "/var/log/metaboot.log",
        "/var/log/cloud-init.log",
        "/var/log/cloud-init-output.log",
        "/var/log/syslog.1",
        "/var/log/dpkg.log.2.gz",
        "/var/log/journal/0123456789abcdef/system.journal",
        "/var/lib/systemd/random-seed",
        "/var/lib/dhcp/dhclient.ens3.leases",
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/etc/ssh/ssh_host_rsa_key",
        "/root/.bash_history",
        "/home/debian/.bash_history",
        "/home/debian/.python_history",
        "/srv/app/.bash_history",
    ):
        write(root, guest_path)
    write(root, "/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    write(root, "/var/log/wtmp", "login records")
    write(root, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:999:999::/srv/app:/bin/sh\n")
    # What belongs to the image and must survive.
    write(root, "/var/lib/metaboot/seed/nocloud/meta-data", "instance-id: seed\n")
    write(root, "/var/lib/metaboot/scripts/per-boot/10-hello.sh", "#!/bin/sh\n")
    write(root, "/var/lib/cloud/seed/nocloud/meta-data")
    write(root, "/var/log/journal/.keep", "")
    write(root, "/etc/ssh/sshd_config", "PermitRootLogin no\n")
    write(root, "/etc/ssh/ssh_config", "")
    write(root, "/home/debian/.ssh/authorized_keys", "ssh-ed25519 AAAA image-owner\n")
    (root / "var/lib/dbus").mkdir(parents=True)
    os.symlink("/etc/machine-id", root / "var/lib/dbus/machine-id")
    return root


def test_seal_returns_the_root_to_never_booted(tmp_path: Path) -> None:
    root = booted_root(tmp_path)
    removed = image.seal(root)
    gone = [
        "var/lib/metaboot/data", "var/lib/metaboot/instances", "var/lib/metaboot/sem",
        "var/lib/cloud/instances", "var/lib/cloud/data",
        "var/log/metaboot.log", "var/log/cloud-init.log", "var/log/cloud-init-output.log",
        "var/log/syslog.1", "var/log/dpkg.log.2.gz", "var/log/journal/0123456789abcdef",
        "var/lib/systemd/random-seed", "var/lib/dhcp/dhclient.ens3.leases",
        "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/ssh/ssh_host_rsa_key",
        "root/.bash_history", "home/debian/.bash_history", "home/debian/.python_history",
        "srv/app/.bash_history",
    ]  # fmt: skip
    for rel in gone:
        assert not (root / rel).exists(), rel
        assert "/" + rel in removed
    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "var/log/wtmp").stat().st_size == 0
    kept = [
        "var/lib/metaboot/seed/nocloud/meta-data", "var/lib/metaboot/scripts/per-boot/10-hello.sh",
        "var/lib/cloud/seed/nocloud/meta-data", "etc/ssh/sshd_config", "etc/ssh/ssh_config",
        "home/debian/.ssh/authorized_keys", "var/log/journal",
    ]  # fmt: skip
    for rel in kept:
        assert (root / rel).exists(), rel
    assert os.readlink(root / "var/lib/dbus/machine-id") == "/etc/machine-id"
    # A second seal finds nothing more to do.
    assert image.seal(root) == []


def test_seal_keeps_host_keys_when_asked(tmp_path: Path) -> None:
    root = booted_root(tmp_path)
    image.main("image", ["seal", "-q", str(root), "--keep-ssh-host-keys"])
    assert (root / "etc/ssh/ssh_host_rsa_key").exists()
    assert not (root / "var/lib/metaboot/data").exists()


def test_seal_never_leaves_the_root(tmp_path: Path) -> None:
    """Symlinks in the image are resolved inside it, never on the machine that seals it."""
    outside = tmp_path / "outside"
    write(outside, "/.bash_history", "host history")
    write(outside, "/var/log/metaboot.log", "host log")
    root = booted_root(tmp_path)
    os.symlink(str(outside), root / "home/evil")  # absolute: means <root><outside> in the image
    os.symlink(str(outside / ".bash_history"), root / "root/.lesshst")
    (root / "var/log/metaboot.log").unlink()
    os.symlink(str(outside / "var/log/metaboot.log"), root / "var/log/metaboot.log")
    image.seal(root)
    assert (outside / ".bash_history").read_text() == "host history"
    assert (outside / "var/log/metaboot.log").read_text() == "host log"
    assert not (root / "root/.lesshst").is_symlink()  # the link itself went


def test_seal_takes_a_root_object(tmp_path: Path) -> None:
    """``metaboot clean --seal`` hands over the agent's own Root."""
    from metaboot.guest.system import Root

    root = booted_root(tmp_path)
    assert "/etc/machine-id" in image.seal(Root(root))
    assert (root / "etc/machine-id").read_text() == ""


def test_seal_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(MetabootError, match="not a directory"):
        image.seal(tmp_path / "absent")


def test_clean_seal_runs_the_image_seal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``metaboot clean --seal`` (the agent's command) ends in this module's seal."""
    root = booted_root(tmp_path)
    assert cli_main(["clean", "--root", str(root), "--seal"]) == 0
    capsys.readouterr()
    assert not list((root / "etc/ssh").glob("ssh_host_*"))
    assert (root / "etc/machine-id").read_text() == ""
    assert not (root / "root/.bash_history").exists()
    assert (root / "var/lib/metaboot/seed/nocloud/meta-data").exists()
