"""Property tests: any valid file set written by our writers reads back the same, through our
readers and through the independent tools."""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from metaboot.diskfs import open_image
from metaboot.drive.fileset import build_tree
from metaboot.drive.iso import build_iso
from metaboot.drive.vfat import build_vfat
from metaboot.errors import DriveError
from tests.drive.checkers import fsck_vfat, mcopy_extract, osirrox_extract, require_tools

BUILD_TIME = datetime(2030, 2, 3, 4, 5, 6, tzinfo=UTC)
WIDE = "abcXYZ019 -_.~+,;=[]()'!@#$%&\u00e9\u00df\u65e5\u0416\U0001f600"
NARROW = "abcXYZ019 -_.~+,;=[]()'!@#$%&\u00e9\u65e5\u0416"


def _names(alphabet: str) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=1, max_size=70).filter(lambda n: n not in (".", ".."))


def _file_sets(alphabet: str, max_files: int) -> st.SearchStrategy[dict[str, bytes]]:
    paths = st.lists(_names(alphabet), min_size=1, max_size=3).map("/".join)
    return st.dictionaries(paths, st.binary(max_size=6000), min_size=1, max_size=max_files)


def _vfat_ok(files: dict[str, bytes]) -> bool:
    """VFAT holds a name only without a trailing dot/space and unique ignoring case."""
    try:
        tree = build_tree(files)
    except DriveError:
        return False
    for _path, directory in tree.walk():
        names = [name for name, _ in directory.entries()]
        if len({n.lower() for n in names}) != len(names):
            return False
        if any(n.endswith((".", " ")) for n in names):
            return False
    return True


def _tree_ok(files: dict[str, bytes]) -> bool:
    try:
        build_tree(files)
    except DriveError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_file_sets(WIDE, 25))
def test_iso_roundtrip_through_our_reader(files: dict[str, bytes]) -> None:
    assume(_tree_ok(files))
    reader = open_image(io.BytesIO(build_iso(files, build_time=BUILD_TIME)))
    assert reader.read_all() == files


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_file_sets(WIDE, 25))
def test_vfat_roundtrip_through_our_reader(files: dict[str, bytes]) -> None:
    assume(_vfat_ok(files))
    image = build_vfat(files, build_time=BUILD_TIME, size=2 * 1024 * 1024)
    reader = open_image(io.BytesIO(image))
    assert reader.read_all() == files


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_file_sets(NARROW, 12))
def test_iso_roundtrip_through_xorriso(files: dict[str, bytes]) -> None:
    require_tools()
    assume(_tree_ok(files))
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp, "p.iso")
        image.write_bytes(build_iso(files, build_time=BUILD_TIME))
        assert osirrox_extract(image, Path(tmp, "x")) == files


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_file_sets(NARROW, 12))
def test_vfat_roundtrip_through_mtools_and_fsck(files: dict[str, bytes]) -> None:
    require_tools()
    assume(_vfat_ok(files))
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp, "p.img")
        image.write_bytes(build_vfat(files, build_time=BUILD_TIME, size=2 * 1024 * 1024))
        fsck = fsck_vfat(image)
        assert fsck.returncode == 0, fsck.stdout
        assert mcopy_extract(image, Path(tmp, "x")) == files
