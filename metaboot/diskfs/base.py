"""What every filesystem reader offers: a label, a sorted file list and file contents.

A reader loads the directory tree once when it is opened (config drives hold tens of files) and
reads file data on demand. Images come from outside — another cloud's drive, a damaged disk — so
every offset, length and chain is checked and a bad one raises ``DriveError`` naming where, rather
than looping, reading past the end or allocating without bound.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from metaboot.errors import DriveError

# Bounds that no config drive comes near but a hostile image might try to exceed.
MAX_ENTRIES = 100_000
MAX_DEPTH = 64
MAX_FILE_SIZE = 1 << 32


@dataclass(frozen=True)
class Extent:
    """A run of bytes in the image."""

    offset: int
    length: int


@dataclass(frozen=True)
class FileEntry:
    """A regular file found in the tree: its path and where its bytes are."""

    path: str
    size: int
    extents: tuple[Extent, ...]


class ImageReader:
    """Shared behaviour of the ISO 9660 and FAT readers (subclasses fill ``_files``)."""

    fs_type = ""

    def __init__(self, fp: BinaryIO, name: str) -> None:
        self._fp = fp
        self.name = name
        self.label = ""
        self._files: dict[str, FileEntry] = {}
        self._dirs: set[str] = set()
        self.image_size = fp.seek(0, os.SEEK_END)

    # -- for subclasses ----------------------------------------------------------------

    def _read_at(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.image_size:
            raise DriveError(
                f"{self.name}: {what} at byte {offset} (+{length}) lies outside the image "
                f"of {self.image_size} bytes"
            )
        self._fp.seek(offset)
        data = self._fp.read(length)
        if len(data) != length:
            raise DriveError(f"{self.name}: short read of {what} at byte {offset}")
        return data

    def _add_file(self, entry: FileEntry) -> None:
        if len(self._files) + len(self._dirs) >= MAX_ENTRIES:
            raise DriveError(f"{self.name}: more than {MAX_ENTRIES} entries")
        if entry.size > MAX_FILE_SIZE:
            raise DriveError(f"{self.name}: {entry.path!r} claims {entry.size} bytes")
        self._files.setdefault(entry.path, entry)

    def _add_dir(self, path: str) -> None:
        if len(self._files) + len(self._dirs) >= MAX_ENTRIES:
            raise DriveError(f"{self.name}: more than {MAX_ENTRIES} entries")
        self._dirs.add(path)

    # -- public --------------------------------------------------------------------------

    def files(self) -> list[str]:
        """Every regular file, as relative POSIX paths, sorted."""
        return sorted(self._files)

    def directories(self) -> list[str]:
        """Every directory except the root, as relative POSIX paths, sorted."""
        return sorted(self._dirs)

    def size(self, path: str) -> int:
        return self._entry(path).size

    def read(self, path: str) -> bytes:
        """The content of the file at ``path`` (leading ``/`` optional)."""
        entry = self._entry(path)
        parts = [self._read_at(e.offset, e.length, repr(entry.path)) for e in entry.extents]
        data = b"".join(parts)
        if len(data) < entry.size:
            raise DriveError(f"{self.name}: {entry.path!r} is truncated")
        return data[: entry.size]

    def read_all(self) -> dict[str, bytes]:
        return {path: self.read(path) for path in self.files()}

    def walk(self) -> Iterator[tuple[str, bytes]]:
        for path in self.files():
            yield path, self.read(path)

    def _entry(self, path: str) -> FileEntry:
        key = path.strip("/")
        entry = self._files.get(key)
        if entry is None:
            what = "a directory" if key in self._dirs else "not on the image"
            raise DriveError(f"{self.name}: {path!r} is {what}")
        return entry
