"""ISO writer: judged by blkid, isoinfo, xorriso, pycdlib and genisoimage-era readers."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from metaboot.diskfs import open_image
from metaboot.drive.iso import build_iso, write_iso
from metaboot.errors import DriveError
from tests.drive.checkers import (
    blkid,
    isoinfo_d,
    isoinfo_paths,
    isoinfo_x,
    osirrox_extract,
    pycdlib_read,
    require_tools,
    sample_files,
)

BUILD_TIME = datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("iso") / "disk.config"
    path.write_bytes(build_iso(sample_files(), build_time=BUILD_TIME))
    return path


def test_blkid_sees_config_2_iso9660(image: Path) -> None:
    probe = blkid(image)
    assert probe["TYPE"] == "iso9660"
    assert probe["LABEL"] == "config-2"


def test_isoinfo_finds_joliet_and_rock_ridge(image: Path) -> None:
    info = isoinfo_d(image)
    assert "Volume id: config-2" in info
    assert "Joliet with UCS level 3 found" in info
    assert "Rock Ridge signatures version 1 found" in info


def test_xorriso_extracts_every_file_byte_for_byte(image: Path, tmp_path: Path) -> None:
    assert osirrox_extract(image, tmp_path / "x") == sample_files()


def test_isoinfo_reads_rock_ridge_and_joliet_paths(image: Path) -> None:
    files = sample_files()
    for path in ("openstack/latest/meta_data.json", "ec2/latest/user-data", "big.bin"):
        assert isoinfo_x(image, path) == files[path]
        assert isoinfo_x(image, path, joliet=True) == files[path]


def test_pycdlib_reads_all_three_trees(image: Path) -> None:
    files = sample_files()
    assert pycdlib_read(image, "rr") == files
    joliet = pycdlib_read(image, "joliet")
    primary = pycdlib_read(image, "iso")
    assert len(joliet) == len(primary) == len(files)
    # the same data behind every tree; Joliet keeps the exact names that fit it
    assert sorted(joliet.values()) == sorted(primary.values()) == sorted(files.values())
    for path, body in files.items():
        if path.isascii() and len(path.rsplit("/", 1)[-1]) <= 64:
            assert joliet[path] == body, path
    assert primary["OPENSTACK/LATEST/META_DATA.JSON;1"] == files["openstack/latest/meta_data.json"]


def crowded_files() -> dict[str, bytes]:
    """More than one sector of everything: directory records, path tables, continuation area
    (long names, names split over two NM entries), and file data."""
    files: dict[str, bytes] = {}
    for n in range(150):
        files[f"dir{n:03d}/f"] = b"%d" % n
    for n in range(120):
        name = f"{n:03d}-" + "long-name-" * 25  # 254 characters: NM in the continuation area
        files[f"many/{name}"] = bytes([n]) * (n * 37)
    files["n" * 255] = b"longest name"  # 255 bytes: two NM entries
    files["é" * 127] = b"254 bytes of UTF-8"
    files["deep/" * 6 + "bottom"] = b"depth 7"
    files["sizes/exact"] = b"s" * 2048
    files["sizes/over"] = b"o" * 2049
    files["sizes/empty"] = b""
    return files


def test_a_crowded_image_is_read_alike_by_every_reader(tmp_path: Path) -> None:
    files = crowded_files()
    image = tmp_path / "crowded.iso"
    image.write_bytes(build_iso(files, build_time=BUILD_TIME))
    assert blkid(image)["TYPE"] == "iso9660"
    assert osirrox_extract(image, tmp_path / "x") == files
    assert pycdlib_read(image, "rr") == files
    assert len(pycdlib_read(image, "joliet")) == len(pycdlib_read(image, "iso")) == len(files)
    directories = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    listed = isoinfo_paths(image)
    assert {p for p in listed if p.isascii()} == {
        p for p in files.keys() | directories if p.isascii()
    }
    for path in ("n" * 255, "many/119-" + "long-name-" * 25, "sizes/over", "deep/" * 6 + "bottom"):
        assert isoinfo_x(image, path) == files[path]
    with image.open("rb") as fp:
        assert open_image(fp).read_all() == files


def test_our_reader_agrees(image: Path) -> None:
    with image.open("rb") as fp:
        reader = open_image(fp)
        assert (reader.fs_type, reader.label, reader.names) == ("iso9660", "config-2", "rock-ridge")
        assert reader.read_all() == sample_files()


def test_same_input_same_bytes_whatever_the_host_zone() -> None:
    """Two builds, one in this process and one in a child in another zone, are identical."""
    ours = hashlib.sha256(build_iso(sample_files(), build_time=BUILD_TIME)).hexdigest()
    assert hashlib.sha256(build_iso(sample_files(), build_time=BUILD_TIME)).hexdigest() == ours
    code = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1])\n"
        "from tests.drive.checkers import sample_files\n"
        "from metaboot.drive.iso import build_iso\n"
        f"print(hashlib.sha256(build_iso(sample_files(), build_time={BUILD_TIME.timestamp()}))"
        ".hexdigest())\n"
    )
    env = dict(os.environ, TZ="Pacific/Chatham")
    tests_dir = str(Path(__file__).parents[2])
    child = subprocess.run(
        [sys.executable, "-c", code, tests_dir], env=env, capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == ours


def test_build_time_is_what_the_records_carry(image: Path) -> None:
    listing = subprocess.run(
        ["isoinfo", "-R", "-l", "-i", str(image)], capture_output=True, text=True, check=True
    ).stdout
    assert "May 17 2024" in listing
    # an equivalent aware time in another zone is the same instant, hence the same image
    shifted = BUILD_TIME.astimezone(timezone(timedelta(hours=-7)))
    assert build_iso({"a": b"1"}, build_time=shifted) == build_iso(
        {"a": b"1"}, build_time=BUILD_TIME
    )
    assert build_iso({"a": b"1"}, build_time=BUILD_TIME) != build_iso(
        {"a": b"1"}, build_time=BUILD_TIME + timedelta(seconds=2)
    )


def test_stream_and_bytes_agree() -> None:
    out = io.BytesIO()
    out.write(b"prefix")
    write_iso({"a/b": b"c"}, out, build_time=BUILD_TIME)
    assert out.getvalue()[6:] == build_iso({"a/b": b"c"}, build_time=BUILD_TIME)


def test_names_iso9660_cannot_hold_get_unique_mangled_names(tmp_path: Path) -> None:
    files = {
        "meta_data.json": b"1",
        "meta-data.json": b"2",
        "META_DATA.JSON": b"3",
        "a;b*c?.txt": b"4",
        "n" * 200: b"5",
        "n" * 199 + "m": b"6",
    }
    path = tmp_path / "names.iso"
    path.write_bytes(build_iso(files, build_time=BUILD_TIME))
    assert osirrox_extract(path, tmp_path / "x") == files
    # the Joliet tree alone (what Windows reads) still holds six distinct files
    joliet = subprocess.run(
        ["isoinfo", "-J", "-f", "-i", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(set(joliet)) == 6


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"/etc/passwd": b""}, "must be relative"),
        ({"a/../b": b""}, "'..'"),
        ({"a//b": b""}, "empty"),
        ({"a": b"", "a/b": b""}, "is a file"),
        ({"x" * 256: b""}, "over 255"),
        ({"/".join("d" * 8) + "/f": b""}, "deeper than 7"),
        ({"a": "text"}, "must be bytes"),
    ],
)
def test_bad_file_sets_are_refused_by_name(files: dict[str, bytes], problem: str) -> None:
    with pytest.raises(DriveError, match=problem):
        build_iso(files, build_time=BUILD_TIME)


def test_bad_label_and_naive_time_are_refused() -> None:
    with pytest.raises(DriveError, match="label"):
        build_iso({"a": b""}, build_time=BUILD_TIME, label="x" * 33)
    with pytest.raises(DriveError, match="timezone-aware"):
        build_iso({"a": b""}, build_time=datetime(2024, 1, 1))
