"""VFAT writer: judged by fsck.vfat, blkid and mtools."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaboot.diskfs import open_image
from metaboot.drive.vfat import DEFAULT_SIZE, build_vfat, geometry, vfat_image, write_vfat
from metaboot.errors import DriveError
from tests.drive.checkers import blkid, fsck_vfat, mcopy_extract, require_tools, sample_files

BUILD_TIME = datetime(2024, 5, 17, 12, 30, 45, tzinfo=UTC)
MiB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools()


def _write(path: Path, files: dict[str, bytes], **kwargs: object) -> Path:
    with path.open("wb") as fp:
        write_vfat(files, fp, build_time=BUILD_TIME, **kwargs)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize(
    ("size", "fat_type"),
    [(1 * MiB, "FAT12"), (4 * MiB, "FAT12"), (DEFAULT_SIZE, "FAT16"), (300 * MiB, "FAT16")],
)
def test_checkers_accept_every_size(tmp_path: Path, size: int, fat_type: str) -> None:
    image = _write(tmp_path / "disk.config", sample_files(), size=size)
    assert image.stat().st_size == size
    fsck = fsck_vfat(image)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "FATs differ" not in fsck.stdout and "Free cluster" not in fsck.stdout
    probe = blkid(image)
    assert (probe["TYPE"], probe["LABEL"]) == ("vfat", "config-2")
    assert probe.get("SEC_TYPE", "msdos") == "msdos"
    assert image.read_bytes()[54:62].decode() == f"{fat_type}   "
    assert mcopy_extract(image, tmp_path / "x") == sample_files()
    with image.open("rb") as fp:
        reader = open_image(fp)
        assert (reader.fs_type, reader.label) == ("vfat", "config-2")
        assert reader.read_all() == sample_files()


def test_default_is_a_sparse_64_mib_fat16(tmp_path: Path) -> None:
    image = _write(tmp_path / "disk.config", sample_files())
    st = image.stat()
    assert st.st_size == 64 * MiB
    assert st.st_blocks * 512 < 2 * MiB  # holes, not 64 MiB of zeros
    geo = geometry(64 * MiB)
    assert (geo.fat_bits, geo.cluster_bytes) == (16, 2048)


def test_same_input_same_bytes_and_stream_forms_agree(tmp_path: Path) -> None:
    first = build_vfat(sample_files(), build_time=BUILD_TIME, size=2 * MiB)
    assert build_vfat(sample_files(), build_time=BUILD_TIME, size=2 * MiB) == first
    file_form = _write(tmp_path / "a.img", sample_files(), size=2 * MiB).read_bytes()
    assert file_form == first
    # a pipe cannot seek: zeros are written out, same bytes arrive
    read_fd, write_fd = os.pipe()
    reader = subprocess.Popen(["sha256sum"], stdin=read_fd, stdout=subprocess.PIPE, text=True)
    os.close(read_fd)
    with os.fdopen(write_fd, "wb") as pipe:
        write_vfat(sample_files(), pipe, build_time=BUILD_TIME, size=2 * MiB)
    out, _ = reader.communicate(timeout=30)
    assert out.split()[0] == hashlib.sha256(first).hexdigest()
    # a stream already holding a prefix gets the image after it
    buf = io.BytesIO(b"head")
    buf.seek(4)
    write_vfat(sample_files(), buf, build_time=BUILD_TIME, size=2 * MiB)
    assert buf.getvalue()[4:] == first


def test_build_time_and_content_set_the_serial() -> None:
    def serial(files: dict[str, bytes], when: datetime) -> bytes:
        return build_vfat(files, build_time=when, size=1 * MiB)[39:43]

    base = serial({"a": b"1"}, BUILD_TIME)
    assert serial({"a": b"2"}, BUILD_TIME) != base
    assert serial({"a": b"1"}, datetime(2025, 1, 1, tzinfo=UTC)) != base


def test_mtools_sees_the_build_time(tmp_path: Path) -> None:
    image = _write(tmp_path / "d.img", {"openstack/latest/meta_data.json": b"{}"}, size=MiB)
    listing = subprocess.run(
        ["mdir", "-i", str(image), "::/openstack/latest"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
    ).stdout
    assert "2024-05-17  12:30" in listing
    assert "meta_data.json" in listing


def test_many_files_in_root_and_in_a_directory(tmp_path: Path) -> None:
    """More entries than FAT16's usual 512-entry root, and a directory spanning clusters."""
    files = {f"root-file-{i:04d}.json": str(i).encode() for i in range(700)}
    files |= {f"sub/entry-{i:04d}-with-a-long-name.txt": b"x" * i for i in range(300)}
    image = _write(tmp_path / "many.img", files, size=16 * MiB)
    fsck = fsck_vfat(image)
    assert fsck.returncode == 0, fsck.stdout
    assert mcopy_extract(image, tmp_path / "x") == files


def test_short_names_stay_unique(tmp_path: Path) -> None:
    files = {f"longname{i}.json": bytes([i]) for i in range(20)}
    files |= {"LONGNA~1.JSO": b"taken by a real 8.3 name", "longna~1.jso": b"", "NAME": b"n"}
    files.pop("longna~1.jso")
    image = _write(tmp_path / "short.img", files, size=MiB)
    fsck = fsck_vfat(image)
    assert fsck.returncode == 0, fsck.stdout
    assert mcopy_extract(image, tmp_path / "x") == files


def test_content_larger_than_the_volume_is_refused_naming_sizes() -> None:
    with pytest.raises(DriveError, match=r"does not fit a VFAT volume of 1048576 bytes"):
        vfat_image({"big": bytes(2 * MiB)}, build_time=BUILD_TIME, size=MiB)


@pytest.mark.parametrize(
    ("files", "kwargs", "problem"),
    [
        ({"a?b": b""}, {}, "cannot hold"),
        ({"dir/name.": b""}, {}, "trailing dot"),
        ({"Readme": b"", "README": b""}, {}, "ignore case"),
        ({"a": b""}, {"size": 1000}, "multiple of 512"),
        ({"a": b""}, {"size": 4096}, "too small"),
        ({"a": b""}, {"size": 4096 * MiB}, "too large for FAT16"),
        ({"a": b""}, {"label": "config/2"}, "label"),
        ({"a": b""}, {"label": "twelve chars"}, "label"),
    ],
)
def test_bad_input_is_refused_by_name(
    files: dict[str, bytes], kwargs: dict[str, object], problem: str
) -> None:
    with pytest.raises(DriveError, match=problem):
        vfat_image(files, build_time=BUILD_TIME, **kwargs)  # type: ignore[arg-type]


def test_dates_outside_fat_range_are_refused() -> None:
    with pytest.raises(DriveError, match="1980"):
        vfat_image({"a": b""}, build_time=0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.integers(256, 1 << 20),  # sectors: 128 KiB .. 512 MiB
        st.sampled_from([8399, 8400, 8401, 32680, 32681, 262144, 262145]),  # table edges
    )
)
def test_any_size_is_a_clean_volume(sectors: int) -> None:
    """Every size picks a FAT type and cluster size that fsck.vfat and mtools accept, and the
    FAT type matches the cluster count as Linux decides it."""
    size = sectors * 512
    geo = geometry(size)
    assert (geo.fat_bits == 12) == (geo.clusters <= 4084)
    assert geo.clusters <= 65524
    files = {"openstack/latest/meta_data.json": b'{"uuid": "x"}', "README": b"r" * 3000}
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp, "s.img")
        with image.open("wb") as fp:
            write_vfat(files, fp, build_time=BUILD_TIME, size=size)
        fsck = fsck_vfat(image)
        assert fsck.returncode == 0, fsck.stdout
        assert mcopy_extract(image, Path(tmp, "x")) == files
