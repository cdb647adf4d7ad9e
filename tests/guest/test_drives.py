"""Real drive images: the drive builder's ISO 9660 and VFAT config drives, NoCloud seeds, and
images made by independent tools (genisoimage, mkfs.vfat + mcopy), found by label and read
without mounting."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from metaboot.drive import DriveOptions, write_drive_file
from metaboot.guest.modules.base import Stage
from metaboot.guest.status import summarize
from metaboot.guest.system import Root
from metaboot.metadata import parse_spec
from tests.guest.helpers import (
    KEY,
    UUID,
    Registry,
    make_root,
    recording_module,
    run_agent,
    runs,
    spec,
    status,
    tree,
)


def link_label(root: Root, label: str, target: str) -> None:
    root.makedirs("/dev/disk/by-label")
    link = root.path(f"/dev/disk/by-label/{label}")
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def registry() -> Registry:
    return Registry([recording_module("hostname_mod", Stage.NETWORK, keys=("hostname",))])


@pytest.mark.parametrize("fmt", ["iso", "vfat"])
def test_builder_config_drive_found_by_label(tmp_path: Path, fmt: str) -> None:
    root = make_root(tmp_path)
    root.makedirs("/images")
    instance = parse_spec(spec(user_data="#cloud-config\nhostname: from-drive\n"))
    write_drive_file(instance, root.path("/images/disk.config"), DriveOptions(time.time(), fmt))
    link_label(root, "config-2", "../../../images/disk.config")
    code, out, _ = run_agent(root, registry())
    assert code == 0, out
    record = status(root)
    assert record["source"] == "ConfigDrive"
    assert record["subplatform"] == "config-disk (/images/disk.config)"
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "from-drive"}
    data = root.read_text("/run/metaboot/instance-data-sensitive.json")
    assert UUID in data and KEY in data


def test_builder_nocloud_seed_found_by_label(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.makedirs("/images")
    instance = parse_spec(spec(user_data="#cloud-config\nhostname: from-seed\n"))
    options = DriveOptions(time.time(), "nocloud", nocloud_filesystem="vfat")
    write_drive_file(instance, root.path("/images/seed.img"), options)
    link_label(root, "CIDATA", "/images/seed.img")
    run_agent(root, registry())
    record = status(root)
    assert record["source"] == "NoCloud" and record["instance_id"] == UUID
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "from-seed"}


def test_genisoimage_drive(tmp_path: Path) -> None:
    """A drive made the way nova makes one (genisoimage -R -J -V config-2)."""
    assert shutil.which("genisoimage"), "genisoimage missing: run scripts/setup-system"
    source = tmp_path / "files"
    for path, body in tree().drive_files(lambda n: b"\0" * n).items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(body)
    root = make_root(tmp_path / "root")
    root.makedirs("/dev")
    subprocess.run(
        [
            "genisoimage",
            "-quiet",
            "-o",
            str(root.path("/dev/sr0")),
            "-V",
            "config-2",
            "-r",
            "-J",
            str(source),
        ],
        check=True,
    )
    link_label(root, "config-2", "../../sr0")
    run_agent(root, registry())
    record = status(root)
    assert (record["source"], record["subplatform"]) == ("ConfigDrive", "config-disk (/dev/sr0)")
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "from-user-data"}


def test_mkfs_vfat_drive(tmp_path: Path) -> None:
    for tool in ("mkfs.vfat", "mcopy"):
        assert shutil.which(tool), f"{tool} missing: run scripts/setup-system"
    root = make_root(tmp_path)
    root.makedirs("/dev")
    image = root.path("/dev/vdb")
    subprocess.run(["truncate", "-s", "8M", str(image)], check=True)
    subprocess.run(["mkfs.vfat", "-n", "CONFIG-2", str(image)], check=True, capture_output=True)
    staging = tmp_path / "stage"
    for path, body in tree().drive_files(lambda n: b"\0" * n).items():
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_bytes(body)
    for top in ("openstack", "ec2"):
        subprocess.run(["mcopy", "-s", "-i", str(image), str(staging / top), "::"], check=True)
    link_label(root, "CONFIG-2", "../../vdb")
    run_agent(root, registry())
    assert status(root)["source"] == "ConfigDrive"
    assert runs(root, "hostname_mod")


def test_damaged_drive_is_reported_and_the_next_source_used(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.makedirs("/dev")
    root.write_file("/dev/sr0", b"\0" * 40960 + b"CD001" + b"\xff" * 4000)
    link_label(root, "config-2", "../../sr0")
    root.write_file("/var/lib/metaboot/seed/nocloud/meta-data", "instance-id: fallback-1\n")
    run_agent(root, registry())
    record = status(root)
    assert record["source"] == "NoCloud" and record["instance_id"] == "fallback-1"
    errors = summarize(record).errors
    assert len(errors) == 1 and errors[0].startswith("local: source ConfigDrive: /dev/sr0: ")


def test_one_blkid_listing_serves_every_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a live system without udev links the sources ask blkid; its export listing (real
    blkid output, over image files standing in for devices) is read once for all labels."""
    from metaboot.guest.sources import drives

    images = []
    for name, label in (("a.img", "config-2"), ("b.img", "cidata"), ("c.img", "")):
        image = tmp_path / name
        subprocess.run(["truncate", "-s", "2M", str(image)], check=True)
        subprocess.run(
            ["mkfs.vfat", *(["-n", label] if label else []), str(image)],
            check=True, capture_output=True,
        )  # fmt: skip
        images.append(str(image))
    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "blkid").write_text(
        f'#!/bin/sh\necho x >> {calls}\nexec {shutil.which("blkid")} "$@" {" ".join(images)}\n'
    )
    (fake / "blkid").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin")
    monkeypatch.setattr(drives, "_blkid_listing", None)
    assert drives.blkid_by_label("config-2") == [images[0]]
    assert drives.blkid_by_label("cidata") == [images[1]]
    assert drives.blkid_by_label("CONFIG-2") == []
    assert calls.read_text().count("x") == 1
