"""Damaged images: whatever bytes are flipped, a reader answers or raises DriveError — never
another exception, never a hang. A guest reads drives it did not make."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaboot.diskfs import open_image
from metaboot.drive.iso import build_iso
from metaboot.drive.vfat import build_vfat
from metaboot.errors import DriveError
from tests.drive.checkers import sample_files

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
ISO = build_iso(sample_files(), build_time=WHEN)
FAT12 = build_vfat(sample_files(), build_time=WHEN, size=1 << 20)
FAT16 = build_vfat(sample_files(), build_time=WHEN, size=16 << 20)
# where the metadata lives: descriptors and directories (ISO), boot sector, FATs, root (FAT)
IMAGES = {"iso": (ISO, 80 * 2048), "fat12": (FAT12, 24 * 1024), "fat16": (FAT16, 80 * 1024)}


def _damage(image: bytes, limit: int, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(image)
    for offset, value in edits:
        data[offset % limit] = value
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(IMAGES)),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=12),
)
def test_flipped_bytes_give_answers_or_drive_errors(
    kind: str, edits: list[tuple[int, int]]
) -> None:
    image, limit = IMAGES[kind]
    damaged = _damage(image, limit, edits)
    try:
        reader = open_image(io.BytesIO(damaged))
        for path in reader.files():
            reader.read(path)
    except DriveError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(IMAGES)), st.integers(0, 200_000))
def test_truncated_anywhere(kind: str, length: int) -> None:
    image, _ = IMAGES[kind]
    try:
        reader = open_image(io.BytesIO(image[: length % len(image)]))
        reader.read_all()
    except DriveError:
        pass
