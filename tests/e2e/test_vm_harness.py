"""The VM harness's own parts, without booting: its QEMU network is sealed, its disk reader reads
what mkfs.ext4 wrote, its console parsing finds the report, its sshd reading follows sshd."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e import e2e_image
from tests.e2e.e2e_image import Image
from tests.e2e.e2e_scenarios import Scenario, sshd_settings, user_data
from tests.e2e.e2e_vm import Disk, VmSpec, _qemu_args, clean_console, report_section


def _fake_image(tmp_path: Path) -> Image:
    directory = tmp_path / "image"
    directory.mkdir()
    for name in ("disk.raw", "vmlinuz", "initrd.img"):
        (directory / name).write_bytes(b"")
    return Image("fake", directory)


def _netdev(args: list[str]) -> str:
    return args[args.index("-netdev") + 1]


def test_the_vm_network_has_one_way_out(tmp_path: Path) -> None:
    spec = VmSpec(
        image=_fake_image(tmp_path),
        workdir=tmp_path,
        metadata_command=["metaboot", "proxy", "--stdio", "--network-id", "n1"],
    )
    args = _qemu_args(spec, tmp_path / "o.qcow2", tmp_path / "console.log", "tcg")
    netdev = _netdev(args).split(",")
    assert netdev[0] == "user" and "restrict=on" in netdev and "ipv6=off" in netdev
    assert "net=169.254.169.0/24" in netdev
    forwards = [opt for opt in netdev if opt.startswith(("guestfwd=", "hostfwd="))]
    assert forwards == [f"guestfwd=tcp:169.254.169.254:80-cmd:{tmp_path / 'guestfwd.sh'}"]
    assert args.count("-netdev") == 1 and "-nic" not in args
    script = (tmp_path / "guestfwd.sh").read_text()
    assert "exec metaboot proxy --stdio --network-id n1 2>>" in script
    smbios = args[args.index("-smbios") + 1]
    assert "product=OpenStack Nova" in smbios


def test_without_a_metadata_command_nothing_is_forwarded(tmp_path: Path) -> None:
    spec = VmSpec(image=_fake_image(tmp_path), workdir=tmp_path, config_drive=tmp_path / "c.img")
    spec.config_drive_format = "vfat"
    args = _qemu_args(spec, tmp_path / "o.qcow2", tmp_path / "console.log", "tcg")
    assert "guestfwd" not in _netdev(args) and "hostfwd" not in _netdev(args)
    assert f"file={tmp_path / 'c.img'},format=raw,if=virtio,readonly=on" in args
    spec.config_drive_format = "iso"
    args = _qemu_args(spec, tmp_path / "o.qcow2", tmp_path / "console.log", "tcg")
    assert f"file={tmp_path / 'c.img'},format=raw,media=cdrom,if=ide,readonly=on" in args
    spec.config_drive_format = "floppy"
    with pytest.raises(ValueError, match="iso or vfat"):
        _qemu_args(spec, tmp_path / "o.qcow2", tmp_path / "console.log", "tcg")


def test_disk_reader_reads_an_ext4_image_without_mounting(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc/ssh/sshd_config.d").mkdir(parents=True)
    (tree / "etc/hostname").write_text("vm-1\n")
    (tree / "home/debian/.ssh").mkdir(parents=True)
    keys = tree / "home/debian/.ssh/authorized_keys"
    keys.write_text("ssh-ed25519 AAAA e2e\n")
    keys.chmod(0o600)
    os.chown(keys, 1000, 1000)
    os.symlink("instances/i-1", tree / "home/debian/current")
    (tree / "home/debian/instances/i-1").mkdir(parents=True)
    (tree / "home/debian/instances/i-1/data").write_bytes(b"\x00\x01binary")
    (tree / "etc/ssh/sshd_config").write_text(
        "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\nMatch User x\n"
        "  PubkeyAuthentication no\n"
    )
    (tree / "etc/ssh/sshd_config.d/50-cloud-init.conf").write_text("PasswordAuthentication yes\n")
    (tree / "etc/ssh/sshd_config.d/ignored.txt").write_text("PubkeyAuthentication no\n")
    raw = tmp_path / "disk.raw"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(raw), "16M"], check=True)

    disk = Disk(raw)
    assert disk.read_text("/etc/hostname") == "vm-1\n"
    inode = disk.stat("/home/debian/.ssh/authorized_keys")
    assert inode is not None and (inode.kind, inode.mode & 0o777, inode.uid) == (
        "regular",
        0o600,
        1000,
    )
    assert disk.stat("/nope") is None and not disk.exists("/nope")
    with pytest.raises(FileNotFoundError):
        disk.read_bytes("/etc/nope")
    assert disk.read_bytes("/home/debian/current/data") == b"\x00\x01binary"
    link = disk.stat("/home/debian/current")
    assert link is not None and link.kind == "symlink" and link.link_target == "instances/i-1"
    assert disk.resolve("/home/debian/current") == "/home/debian/instances/i-1"
    assert disk.listdir("/etc/ssh") == ["sshd_config", "sshd_config.d"]
    copy = disk.extract("/home/debian/instances", tmp_path / "out")
    assert (copy / "i-1/data").read_bytes() == b"\x00\x01binary"
    # sshd: the first value wins, an Include is read where it stands, Match blocks are not global.
    settings = sshd_settings(disk)
    assert settings["passwordauthentication"] == "yes"
    assert "pubkeyauthentication" not in settings


def test_console_report_sections() -> None:
    raw = (
        "\x1b[0;32m  OK  \x1b[0m] Started x\r\n=== e2e-report: begin ===\r\n"
        "=== e2e-report: cloud-init status ===\r\nstatus: done\r\n"
        "=== e2e-report: systemd-analyze ===\r\nStartup finished in 1s\r\n"
        "=== e2e-report: end ===\r\n"
    )
    console = clean_console(raw)
    assert "\x1b" not in console and "\r" not in console
    assert report_section(console, "cloud-init status") == "status: done"
    assert report_section(console, "systemd-analyze") == "Startup finished in 1s"
    assert report_section(console, "metaboot status") is None


def test_user_data_is_valid_cloud_config() -> None:
    """The scenario's user-data passes cloud-init's own schema (Debian's cloud-init)."""
    from tests.reference import available, run_cloudinit

    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    text = user_data(Scenario("metaboot", "service"), canary_port=4242)
    result = run_cloudinit(
        f"""
from cloudinit.config.schema import validate_cloudconfig_schema, get_schema
import yaml
cfg = yaml.safe_load({text!r})
try:
    validate_cloudconfig_schema(cfg, get_schema(), strict=True)
    result = "ok"
except Exception as err:
    result = str(err)
"""
    )
    assert result == "ok"


def test_image_cache_key_follows_the_guest_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing the agent's code gives the metaboot image a new key (so it is rebuilt)."""
    fake_repo = tmp_path / "repo"
    for part in e2e_image.GUEST_SOURCES:
        path = fake_repo / part
        if part.endswith(".py") or part.endswith(".typed"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("# v1\n")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "mod.py").write_text("# v1\n")
    (fake_repo / "pyproject.toml").write_text("")
    monkeypatch.setattr(e2e_image, "REPO", fake_repo)
    built: list[str] = []

    def fake_build(name: str, key: str, layer: object, manifest: object) -> Image:
        built.append(key)
        return Image(name, tmp_path)

    monkeypatch.setattr(e2e_image, "_build_image", fake_build)
    e2e_image.metaboot_image()
    e2e_image.metaboot_image()
    (fake_repo / "metaboot/guest/mod.py").write_text("# v2\n")
    e2e_image.metaboot_image()
    e2e_image.metaboot_image(agent_yaml_suffix="broken: [")
    assert built[0] == built[1] and len(set(built)) == 3


def test_publishing_an_image_drops_only_its_own_older_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(e2e_image, "CACHE", tmp_path)
    old, other, base = (
        "image-metaboot-" + "a" * 16,
        "image-metaboot-bad-config-" + "b" * 16,
        "base-" + "c" * 16 + ".tar",
    )
    for name in (old, other):
        (tmp_path / name).mkdir()
    (tmp_path / base).write_bytes(b"")
    (tmp_path / ".image-metaboot-new.1").mkdir()
    (tmp_path / "logs").mkdir()
    for log in (old, other, "image-metaboot-" + "d" * 16):
        (tmp_path / "logs" / f"{log}.log").write_text("")
    e2e_image._publish(
        tmp_path / ".image-metaboot-new.1",
        tmp_path / ("image-metaboot-" + "d" * 16),
        "image-metaboot",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [other, base, "image-metaboot-" + "d" * 16, "logs"]
    )
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == sorted(
        [f"{other}.log", "image-metaboot-" + "d" * 16 + ".log"]
    )


def test_an_image_a_test_run_holds_survives_a_newer_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two checkouts share the cache: one boots image A while the other builds A's successor.
    A stays until its user is done; the next build of the name then removes it."""
    monkeypatch.setattr(e2e_image, "CACHE", tmp_path)
    monkeypatch.setattr(e2e_image, "_HELD", [])
    (tmp_path / "logs").mkdir()

    def build(key: str) -> Path:
        work = tmp_path / f".image-metaboot-{key}.1"
        work.mkdir()
        (work / "manifest.json").write_text("{}")
        final = tmp_path / f"image-metaboot-{key}"
        e2e_image._publish(work, final, "image-metaboot")
        return final

    first = build("a" * 16)
    assert e2e_image._hold(first)  # a test run boots from it
    second = build("b" * 16)
    assert first.is_dir() and second.is_dir()  # kept: in use
    for handle in e2e_image._HELD:  # that run ends
        handle.close()
    third = build("c" * 16)
    assert sorted(p.name for p in tmp_path.glob("image-*")) == [third.name]
    assert not first.exists()
    assert not e2e_image._hold(tmp_path / ("image-metaboot-" + "e" * 16))  # never built
