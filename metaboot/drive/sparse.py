"""An image described as a size plus the few regions that are not zero.

A 64 MiB VFAT config drive holds perhaps 100 KiB of data. Keeping only the non-zero regions lets
a writer seek over the rest, so the file on disk is sparse and building it costs the data, not the
volume size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import BinaryIO

_ZEROS = bytes(1 << 20)


@dataclass
class SparseImage:
    size: int
    extents: list[tuple[int, bytes]] = field(default_factory=list)

    def put(self, offset: int, data: bytes) -> None:
        if data:
            if offset < 0 or offset + len(data) > self.size:
                raise ValueError(f"extent at {offset}+{len(data)} outside image of {self.size}")
            self.extents.append((offset, data))

    def to_bytes(self) -> bytes:
        buf = bytearray(self.size)
        for offset, data in self.extents:
            buf[offset : offset + len(data)] = data
        return bytes(buf)

    def write_to(self, out: BinaryIO) -> None:
        """Write the image at the stream's current position: by seeking over zeros when the
        stream can seek (a sparse file), by writing them otherwise (a pipe)."""
        extents = sorted(self.extents, key=lambda item: item[0])
        try:
            seekable = out.seekable()
        except (AttributeError, ValueError):
            seekable = False
        if seekable and not isinstance(out, io.BytesIO):
            start = out.tell()
            for offset, data in extents:
                out.seek(start + offset)
                out.write(data)
            end = out.seek(0, io.SEEK_END)
            if end < start + self.size:
                try:
                    out.truncate(start + self.size)
                except (OSError, io.UnsupportedOperation):
                    _write_zeros(out, start + self.size - end)
            out.seek(start + self.size)
            return
        position = 0
        for offset, data in extents:
            _write_zeros(out, offset - position)
            out.write(data)
            position = offset + len(data)
        _write_zeros(out, self.size - position)


def _write_zeros(out: BinaryIO, count: int) -> None:
    if count < 0:
        raise ValueError("overlapping extents")
    while count > 0:
        chunk = min(count, len(_ZEROS))
        out.write(memoryview(_ZEROS)[:chunk])
        count -= chunk
