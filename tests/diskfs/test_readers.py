"""diskfs readers on images made by other tools (genisoimage, xorriso, mkfs.vfat + mcopy),
compared with the files that went in, and on damaged images."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from metaboot.diskfs import FatReader, IsoReader, open_image, read_image
from metaboot.errors import DriveError
from tests.drive.checkers import (
    genisoimage,
    mcopy_in,
    mkfs_vfat,
    require_tools,
    run,
    sample_files,
    write_tree,
)

MiB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    write_tree(src, sample_files())
    return src


def _read(image: Path) -> tuple[str, str, dict[str, bytes]]:
    with image.open("rb") as fp:
        reader = open_image(fp)
        return reader.fs_type, reader.label, reader.read_all()


def test_genisoimage_as_nova_runs_it(tmp_path: Path, source: Path) -> None:
    image = tmp_path / "nova.iso"
    genisoimage(image, source)
    assert _read(image) == ("iso9660", "config-2", sample_files())


def test_genisoimage_joliet_only(tmp_path: Path, source: Path) -> None:
    """Without Rock Ridge the Joliet names are used (as Linux would)."""
    image = tmp_path / "joliet.iso"
    files = {k: v for k, v in sample_files().items() if len(k.rsplit("/", 1)[-1]) <= 64}
    write_tree(tmp_path / "j", files)
    out = run(
        ["genisoimage", "-o", str(image), "-quiet", "-J", "-V", "cidata", str(tmp_path / "j")]
    )
    assert out.returncode == 0, out.stderr
    with image.open("rb") as fp:
        reader = open_image(fp)
        assert isinstance(reader, IsoReader) and reader.names == "joliet"
        assert (reader.label, reader.read_all()) == ("cidata", files)


def test_plain_iso9660_names_are_shown_as_linux_does(tmp_path: Path) -> None:
    write_tree(tmp_path / "p", {"README.TXT": b"r", "DIR/DATA": b"d"})
    image = tmp_path / "plain.iso"
    out = run(["genisoimage", "-o", str(image), "-quiet", "-V", "PLAIN", str(tmp_path / "p")])
    assert out.returncode == 0, out.stderr
    assert _read(image) == ("iso9660", "PLAIN", {"readme.txt": b"r", "dir/data": b"d"})


def test_deep_directories_relocated_by_genisoimage(tmp_path: Path) -> None:
    """Rock Ridge moves directories past depth 8 into rr_moved; the reader puts them back."""
    deep = "/".join(f"level{i}" for i in range(11)) + "/leaf.txt"
    files = {deep: b"deep", "top.txt": b"top"}
    write_tree(tmp_path / "d", files)
    image = tmp_path / "deep.iso"
    out = run(["genisoimage", "-o", str(image), "-quiet", "-J", "-r", str(tmp_path / "d")])
    assert out.returncode == 0, out.stderr
    assert _read(image)[2] == files


def test_xorriso_image(tmp_path: Path, source: Path) -> None:
    image = tmp_path / "xorriso.iso"
    out = run(["xorrisofs", "-o", str(image), "-J", "-R", "-V", "config-2", str(source)])
    assert out.returncode == 0, out.stderr
    assert _read(image) == ("iso9660", "config-2", sample_files())


def test_xorriso_long_names_use_continuation_areas(tmp_path: Path) -> None:
    """Names near 255 bytes push Rock Ridge entries into CE continuation areas."""
    files = {("n" * 250) + f"{i:02d}": bytes([i]) for i in range(5)}
    files["\u00e9" * 127] = b"two-byte characters"
    write_tree(tmp_path / "l", files)
    image = tmp_path / "long.iso"
    out = run(["xorrisofs", "-o", str(image), "-R", str(tmp_path / "l")])
    assert out.returncode == 0, out.stderr
    assert _read(image)[2] == files


@pytest.mark.parametrize(
    ("size", "extra", "bits"),
    [(1440 * 1024, (), 12), (64 * MiB, (), 16), (64 * MiB, ("-F", "32"), 32)],
)
def test_mkfs_vfat_and_mcopy(
    tmp_path: Path, source: Path, size: int, extra: tuple[str, ...], bits: int
) -> None:
    image = tmp_path / "disk.img"
    mkfs_vfat(image, size, "config-2", *extra)
    mcopy_in(image, source)
    with image.open("rb") as fp:
        reader = open_image(fp)
        assert isinstance(reader, FatReader) and reader.fat_bits == bits
        assert (reader.label, reader.read_all()) == ("config-2", sample_files())


def test_fragmented_fat_files(tmp_path: Path) -> None:
    """Delete every other file and grow the rest: chains are no longer contiguous."""
    image = tmp_path / "frag.img"
    mkfs_vfat(image, 2 * MiB, "FRAG")
    src = tmp_path / "f"
    write_tree(src, {f"f{i}": b"a" * 600 for i in range(10)})
    mcopy_in(image, src)
    for i in range(0, 10, 2):
        assert run(["mdel", "-i", str(image), f"::/f{i}"]).returncode == 0
    grown = {f"f{i}": bytes([i]) * 5000 for i in range(1, 10, 2)}
    write_tree(tmp_path / "g", grown)
    for i in range(1, 10, 2):
        out = run(["mcopy", "-o", "-i", str(image), str(tmp_path / "g" / f"f{i}"), f"::/f{i}"])
        assert out.returncode == 0, out.stderr
    assert _read(image)[2] == grown


def test_read_image_and_errors_name_the_problem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(40000))
    with pytest.raises(DriveError, match="neither an ISO 9660 nor a FAT"):
        read_image(junk)
    with pytest.raises(DriveError, match="cannot read image"):
        read_image(tmp_path / "absent.img")
    image = tmp_path / "ok.img"
    mkfs_vfat(image, MiB, "X")
    with image.open("rb") as fp:
        reader = open_image(fp)
        with pytest.raises(DriveError, match="not on the image"):
            reader.read("missing")


def _fat16_with_loop(tmp_path: Path) -> bytes:
    image = tmp_path / "loop.img"
    mkfs_vfat(image, 8 * MiB, "LOOP")
    write_tree(tmp_path / "s", {"file": b"z" * 5000})
    mcopy_in(image, tmp_path / "s")
    return image.read_bytes()


def test_cluster_chain_loop_is_caught(tmp_path: Path) -> None:
    data = bytearray(_fat16_with_loop(tmp_path))
    reserved = struct.unpack_from("<H", data, 14)[0]
    fat = reserved * 512
    # the file starts at cluster 2 or later; make its second cluster point back to its first
    with io.BytesIO(bytes(data)) as fp:
        reader = FatReader(fp)
        first = (reader._files["file"].extents[0].offset - reader.bpb.data_offset) // 2048 + 2
    struct.pack_into("<H", data, fat + 2 * (first + 1), first)
    with pytest.raises(DriveError, match="loops"):
        FatReader(io.BytesIO(bytes(data)))


def test_truncated_images_are_errors_not_crashes(tmp_path: Path, source: Path) -> None:
    iso = tmp_path / "t.iso"
    genisoimage(iso, source)
    data = iso.read_bytes()
    with pytest.raises(DriveError):
        reader = open_image(io.BytesIO(data[: len(data) // 2]))
        reader.read_all()
    fat = bytearray(_fat16_with_loop(tmp_path))
    with pytest.raises(DriveError, match="truncated"):
        open_image(io.BytesIO(bytes(fat[: 40 * 1024])))
