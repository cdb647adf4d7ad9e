"""Instance → drive: the files on the image are the service's documents, byte for byte."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from metaboot.diskfs import read_image
from metaboot.drive import DriveOptions, build_drive, drive_files, write_atomic, write_drive_file
from metaboot.errors import DriveError
from metaboot.metadata import MetadataSettings, build_tree, parse_spec
from tests.drive.checkers import (
    blkid,
    isoinfo_paths,
    isoinfo_x,
    mcopy_extract,
    osirrox_extract,
    pycdlib_read,
    require_tools,
)
from tests.drive.specs import KEY1, USER_DATA, UUID, rich_spec

WHEN = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)
KEY = b"drive-test-seed-key-0123456789ab"


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools()


def _extract(image: Path, fmt: str, dest: Path) -> dict[str, bytes]:
    return mcopy_extract(image, dest) if fmt == "vfat" else osirrox_extract(image, dest)


def _seeded(path: str) -> bool:
    """meta_data.json carries random_seed from 2013-04-04 on."""
    return path.endswith("meta_data.json") and "2012-08-10" not in path


def _seed_of(body: bytes) -> bytes:
    return base64.b64decode(json.loads(body)["random_seed"])


@pytest.mark.parametrize("fmt", ["iso", "vfat"])
def test_every_file_is_what_the_service_serves(tmp_path: Path, fmt: str) -> None:
    instance = parse_spec(rich_spec())
    options = DriveOptions(build_time=WHEN, format=fmt, seed_key=KEY)
    image = write_drive_file(instance, tmp_path / "disk.config", options)
    probe = blkid(image)
    assert (probe["LABEL"], probe["TYPE"]) == ("config-2", "iso9660" if fmt == "iso" else "vfat")

    extracted = _extract(image, fmt, tmp_path / "x")
    assert extracted == drive_files(instance, options)
    tree = build_tree(instance)
    served = 0
    for path, body in extracted.items():
        if path.startswith("ec2/"):
            continue  # EC2 JSON exists only on drives; checked against drive_files above
        doc = tree.lookup("/" + path)
        assert doc is not None, path
        seed = _seed_of(body) if doc.seed_at is not None else b""
        assert doc.render(lambda n, s=seed: s) == body, path
        served += 1
    assert served > 40
    assert extracted["openstack/latest/user_data"] == USER_DATA.encode()
    assert extracted["openstack/content/0001"] == b"[app]\nmode=prod\n"
    assert "password" not in {p.rsplit("/", 1)[1] for p in extracted}


def test_isoinfo_and_pycdlib_read_every_file_of_an_iso_drive(tmp_path: Path) -> None:
    """Two more readers than osirrox, file by file, through Rock Ridge and Joliet names."""
    instance = parse_spec(rich_spec())
    options = DriveOptions(build_time=WHEN, seed_key=KEY)
    image = write_drive_file(instance, tmp_path / "disk.config", options)
    files = drive_files(instance, options)
    assert len(files) > 50
    directories = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    for joliet in (False, True):
        assert isoinfo_paths(image, joliet=joliet) == files.keys() | directories
    for path, body in files.items():
        assert isoinfo_x(image, path) == body, path
        assert isoinfo_x(image, path, joliet=True) == body, path
    assert pycdlib_read(image, "rr") == files
    assert pycdlib_read(image, "joliet") == files


def test_admin_pass_only_in_meta_data(tmp_path: Path) -> None:
    instance = parse_spec(rich_spec())
    options = DriveOptions(build_time=WHEN, seed_key=KEY, admin_pass="pa55 w0rd")
    files = read_image(write_drive_file(instance, tmp_path / "d.iso", options))
    metas = [p for p in files if p.endswith("meta_data.json")]
    assert len(metas) == 11  # ten versions and latest
    for path in metas:
        assert json.loads(files[path])["admin_pass"] == "pa55 w0rd"
    others = b"".join(body for path, body in files.items() if path not in metas)
    assert b"pa55 w0rd" not in others
    assert "pa55" not in repr(options)


def test_same_instance_and_time_give_identical_images() -> None:
    instance = parse_spec(rich_spec())
    for fmt in ("iso", "vfat", "nocloud"):
        options = DriveOptions(build_time=WHEN, format=fmt, seed_key=KEY, size=2 << 20)
        assert build_drive(instance, options) == build_drive(instance, options), fmt


def test_keyed_seeds_are_fresh_per_file_and_per_instance() -> None:
    one = drive_files(parse_spec(rich_spec()), DriveOptions(build_time=WHEN, seed_key=KEY))
    other_spec = rich_spec() | {"uuid": "11111111-2222-4333-8444-555555555555"}
    two = drive_files(parse_spec(other_spec), DriveOptions(build_time=WHEN, seed_key=KEY))
    seeds = [_seed_of(b) for p, b in one.items() if _seeded(p)]
    assert len(set(seeds)) == len(seeds) and all(len(s) == 512 for s in seeds)
    key = "openstack/latest/meta_data.json"
    assert _seed_of(one[key]) != _seed_of(two[key])
    later = drive_files(
        parse_spec(rich_spec()), DriveOptions(build_time=WHEN.replace(hour=9), seed_key=KEY)
    )
    assert _seed_of(later[key]) != _seed_of(one[key])


def test_without_a_key_only_the_seed_differs(tmp_path: Path) -> None:
    instance = parse_spec(rich_spec())
    options = DriveOptions(build_time=WHEN)
    a = drive_files(instance, options)
    b = drive_files(instance, options)
    assert a.keys() == b.keys()

    def unseeded(body: bytes) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(body)
        doc.pop("random_seed")
        return doc

    for path in a:
        if _seeded(path):
            assert _seed_of(a[path]) != _seed_of(b[path])
            assert unseeded(a[path]) == unseeded(b[path])
        else:
            assert a[path] == b[path], path


def test_settings_reach_the_drive() -> None:
    settings = MetadataSettings(dhcp_domain="example.org", static_vendor_data={"motd": "hi"})
    files = drive_files(
        parse_spec(rich_spec()), DriveOptions(build_time=WHEN, settings=settings, seed_key=KEY)
    )
    assert json.loads(files["openstack/latest/meta_data.json"])["hostname"] == "drive-1.example.org"
    assert json.loads(files["openstack/latest/vendor_data.json"])["motd"] == "hi"


@pytest.mark.parametrize("filesystem", ["iso", "vfat"])
def test_nocloud_seed(tmp_path: Path, filesystem: str) -> None:
    instance = parse_spec(rich_spec())
    options = DriveOptions(
        build_time=WHEN, format="nocloud", nocloud_filesystem=filesystem, size=1 << 20
    )
    image = write_drive_file(instance, tmp_path / "seed.img", options)
    assert blkid(image)["LABEL"] == "cidata"
    files = _extract(image, filesystem, tmp_path / "x")
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    assert files["user-data"] == USER_DATA.encode()
    meta = files["meta-data"].decode()
    assert f"instance-id: {UUID}" in meta and "local-hostname: drive-1" in meta
    assert KEY1 in meta


def test_nocloud_without_user_data_or_ports() -> None:
    spec = {"uuid": UUID, "name": "bare"}
    files = drive_files(parse_spec(spec), DriveOptions(build_time=WHEN, format="nocloud"))
    assert files["user-data"] == b""  # cloud-init requires the file
    assert "network-config" not in files
    assert "public-keys" not in files["meta-data"].decode()


def test_content_larger_than_the_vfat_size_leaves_nothing(tmp_path: Path) -> None:
    spec = rich_spec() | {"user_data": "#!/bin/sh\n" + "x" * 40000}
    options = DriveOptions(build_time=WHEN, format="vfat", size=256 * 1024)
    target = tmp_path / "disk.config"
    with pytest.raises(DriveError, match="does not fit a VFAT volume of 262144 bytes"):
        write_drive_file(parse_spec(spec), target, options)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    instance = parse_spec(rich_spec())
    options = DriveOptions(build_time=WHEN)
    with pytest.raises(DriveError, match="cannot write here"):
        write_drive_file(instance, tmp_path / "missing-dir" / "disk.config", options)
    with pytest.raises(DriveError, match="is a directory"):
        write_drive_file(instance, tmp_path, options)
    if os.geteuid() != 0:  # root ignores directory permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(DriveError, match="cannot write here"):
            write_drive_file(instance, locked / "disk.config", options)


def test_a_failing_write_keeps_the_old_drive_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "disk.config"
    target.write_bytes(b"previous drive")

    def half_then_fail(out: Any) -> None:
        out.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(DriveError, match="No space left"):
        write_atomic(target, half_then_fail)
    assert target.read_bytes() == b"previous drive"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]


def test_drive_file_is_private(tmp_path: Path) -> None:
    path = write_drive_file(
        parse_spec(rich_spec()), tmp_path / "d.iso", DriveOptions(build_time=WHEN)
    )
    assert path.stat().st_mode & 0o777 == 0o600


def test_bad_options_are_refused() -> None:
    with pytest.raises(DriveError, match="drive format 'udf'"):
        DriveOptions(build_time=WHEN, format="udf")
    with pytest.raises(DriveError, match="NoCloud filesystem"):
        DriveOptions(build_time=WHEN, format="nocloud", nocloud_filesystem="ext4")
    with pytest.raises(DriveError, match="timezone-aware"):
        DriveOptions(build_time=datetime(2024, 1, 1))
