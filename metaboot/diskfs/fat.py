"""Read FAT12, FAT16 (and FAT32) volumes, with VFAT long names.

Names are what Linux's vfat shows: the long name when its entries are intact and their checksum
matches the short entry, otherwise the 8.3 name (with the Windows NT lower-case flags applied).
The FAT type follows from the cluster count, as the specification and the kernel decide it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from metaboot.diskfs.base import MAX_DEPTH, Extent, FileEntry, ImageReader
from metaboot.errors import DriveError

ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_LONG_NAME = 0x0F
NT_LOWER_BASE = 0x08
NT_LOWER_EXT = 0x10


def looks_like_fat(boot: bytes) -> bool:
    """True if ``boot`` (the first sector) is a plausible FAT boot sector."""
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
        return False
    bps, spc, reserved, fats = struct.unpack_from("<HBHB", boot, 11)
    return (
        bps in (512, 1024, 2048, 4096)
        and spc in (1, 2, 4, 8, 16, 32, 64, 128)
        and reserved >= 1
        and fats >= 1
        and boot[21] in (0xF0, *range(0xF8, 0x100))
    )


@dataclass(frozen=True)
class _Bpb:
    bytes_per_sector: int
    sectors_per_cluster: int
    reserved: int
    fats: int
    root_entries: int
    total_sectors: int
    fat_sectors: int
    root_cluster: int  # FAT32 only
    label: str
    fat32: bool

    @property
    def cluster_bytes(self) -> int:
        return self.bytes_per_sector * self.sectors_per_cluster

    @property
    def root_offset(self) -> int:
        return (self.reserved + self.fats * self.fat_sectors) * self.bytes_per_sector

    @property
    def root_bytes(self) -> int:
        return self.root_entries * 32

    @property
    def data_offset(self) -> int:
        root_sectors = -(-self.root_bytes // self.bytes_per_sector)
        return self.root_offset + root_sectors * self.bytes_per_sector


def _parse_bpb(boot: bytes, name: str) -> _Bpb:
    if not looks_like_fat(boot):
        raise DriveError(f"{name}: not a FAT volume (no valid boot sector)")
    bps, spc, reserved, fats, root_entries, total16, _media, fat16 = struct.unpack_from(
        "<HBHBHHBH", boot, 11
    )
    total32 = int.from_bytes(boot[32:36], "little")
    fat32 = fat16 == 0
    fat_sectors = int.from_bytes(boot[36:40], "little") if fat32 else fat16
    ext = 64 if fat32 else 36  # the extended BPB (drive number, signature, serial, label)
    label = ""
    if boot[ext + 2] in (0x28, 0x29):
        label = boot[ext + 7 : ext + 18].decode("cp437").rstrip(" ")
    return _Bpb(
        bytes_per_sector=bps,
        sectors_per_cluster=spc,
        reserved=reserved,
        fats=fats,
        root_entries=0 if fat32 else root_entries,
        total_sectors=total16 or total32,
        fat_sectors=fat_sectors,
        root_cluster=int.from_bytes(boot[44:48], "little") if fat32 else 0,
        label="" if label == "NO NAME" else label,
        fat32=fat32,
    )


def _checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _short_name(entry: bytes) -> str:
    raw = bytearray(entry[:11])
    if raw[0] == 0x05:
        raw[0] = 0xE5
    base = raw[:8].decode("cp437").rstrip(" ")
    ext = raw[8:11].decode("cp437").rstrip(" ")
    case = entry[12]
    if case & NT_LOWER_BASE:
        base = base.lower()
    if case & NT_LOWER_EXT:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


def _utf16_name(units: bytes) -> str:
    """A long name from its UTF-16 units, up to the NUL terminator (padding is 0xFFFF)."""
    for i in range(0, len(units) - 1, 2):
        if units[i : i + 2] == b"\x00\x00":
            units = units[:i]
            break
    return units.decode("utf-16-le", errors="replace")


class FatReader(ImageReader):
    fs_type = "vfat"

    def __init__(self, fp: BinaryIO, name: str = "image") -> None:
        super().__init__(fp, name)
        self.bpb = bpb = _parse_bpb(self._read_at(0, 512, "boot sector"), name)
        volume_bytes = bpb.total_sectors * bpb.bytes_per_sector
        if volume_bytes > self.image_size:
            raise DriveError(
                f"{name}: truncated: the boot sector says {volume_bytes} bytes, "
                f"the image has {self.image_size}"
            )
        data_sectors = bpb.total_sectors - bpb.data_offset // bpb.bytes_per_sector
        if data_sectors <= 0 or bpb.fat_sectors <= 0:
            raise DriveError(f"{name}: FAT layout leaves no data area")
        self.clusters = data_sectors // bpb.sectors_per_cluster
        if bpb.fat32:
            self.fat_bits = 32
        else:
            self.fat_bits = 12 if self.clusters < 4085 else 16
        fat_bytes = bpb.fat_sectors * bpb.bytes_per_sector
        self._fat = self._read_at(bpb.reserved * bpb.bytes_per_sector, fat_bytes, "FAT")
        if (self.clusters + 2) * self.fat_bits // 8 > fat_bytes:
            raise DriveError(f"{name}: the FAT is too small for {self.clusters} clusters")
        self.label = bpb.label
        self._load()

    # -- FAT ---------------------------------------------------------------------------

    def _next(self, cluster: int) -> int:
        if self.fat_bits == 16:
            return int.from_bytes(self._fat[cluster * 2 : cluster * 2 + 2], "little")
        if self.fat_bits == 32:
            return int.from_bytes(self._fat[cluster * 4 : cluster * 4 + 4], "little") & 0x0FFFFFFF
        pair = int.from_bytes(self._fat[cluster * 3 // 2 : cluster * 3 // 2 + 2], "little")
        return pair >> 4 if cluster & 1 else pair & 0xFFF

    def _chain(self, first: int, what: str) -> list[int]:
        end = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.fat_bits]
        chain: list[int] = []
        cluster = first
        while True:
            if not 2 <= cluster < self.clusters + 2:
                raise DriveError(f"{self.name}: {what} points at invalid cluster {cluster}")
            chain.append(cluster)
            if len(chain) > self.clusters:
                raise DriveError(f"{self.name}: cluster chain of {what} loops")
            cluster = self._next(cluster)
            if cluster >= end:
                return chain

    def _extents(self, chain: list[int]) -> list[Extent]:
        """Merge consecutive clusters into runs, so a contiguous file is one read."""
        cb = self.bpb.cluster_bytes
        runs: list[Extent] = []
        for cluster in chain:
            offset = self.bpb.data_offset + (cluster - 2) * cb
            if runs and runs[-1].offset + runs[-1].length == offset:
                runs[-1] = Extent(runs[-1].offset, runs[-1].length + cb)
            else:
                runs.append(Extent(offset, cb))
        return runs

    # -- directories -------------------------------------------------------------------

    def _directory_bytes(self, first: int, what: str) -> bytes:
        if first == 0 and not self.bpb.fat32:
            return self._read_at(self.bpb.root_offset, self.bpb.root_bytes, "root directory")
        runs = self._extents(self._chain(first, what))
        return b"".join(self._read_at(r.offset, r.length, what) for r in runs)

    def _entries(self, data: bytes, where: str) -> list[tuple[str, int, int, int]]:
        """(name, attributes, first cluster, size) of each live entry of one directory."""
        result = []
        long_parts: dict[int, bytes] = {}
        long_count = 0
        long_sum = -1
        for pos in range(0, len(data) - 31, 32):
            entry = data[pos : pos + 32]
            if entry[0] == 0x00:
                break
            if entry[0] == 0xE5:
                long_parts, long_sum = {}, -1
                continue
            attr = entry[11]
            if attr & 0x3F == ATTR_LONG_NAME:
                order = entry[0]
                if order & 0x40:
                    long_parts, long_count, long_sum = {}, order & 0x1F, entry[13]
                if entry[13] != long_sum:
                    long_parts, long_sum = {}, -1
                    continue
                units = entry[1:11] + entry[14:26] + entry[28:32]
                long_parts[order & 0x1F] = units
                continue
            name = _short_name(entry)
            if (
                long_parts
                and long_sum == _checksum(entry[:11])
                and set(long_parts) == set(range(1, long_count + 1))
            ):
                joined = b"".join(long_parts[i] for i in range(1, long_count + 1))
                long_name = _utf16_name(joined)
                if long_name:
                    name = long_name
            long_parts, long_sum = {}, -1
            if attr & ATTR_VOLUME_ID:
                if not attr & ATTR_DIRECTORY and where == "":
                    # blkid and Windows take the label from here over the boot sector's copy
                    self.label = entry[:11].decode("cp437").rstrip(" ")
                continue
            if name in (".", ".."):
                continue
            first = int.from_bytes(entry[26:28], "little")
            if self.fat_bits == 32:
                first |= int.from_bytes(entry[20:22], "little") << 16
            size = int.from_bytes(entry[28:32], "little")
            result.append((name, attr, first, size))
        return result

    def _load(self) -> None:
        root = self.bpb.root_cluster if self.bpb.fat32 else 0
        stack: list[tuple[str, int, int]] = [("", root, 0)]
        seen: set[int] = set()
        while stack:
            prefix, first, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise DriveError(f"{self.name}: directories nest deeper than {MAX_DEPTH}")
            if first in seen:
                raise DriveError(f"{self.name}: directory loop at cluster {first}")
            seen.add(first)
            data = self._directory_bytes(first, f"directory {prefix or '/'!r}")
            for name, attr, cluster, size in self._entries(data, prefix):
                if "/" in name or "\x00" in name:
                    raise DriveError(f"{self.name}: unusable file name {name!r} in {prefix!r}")
                path = prefix + name
                if attr & ATTR_DIRECTORY:
                    if cluster == 0:
                        raise DriveError(f"{self.name}: directory {path!r} has no cluster")
                    self._add_dir(path)
                    stack.append((path + "/", cluster, depth + 1))
                    continue
                if size == 0:
                    self._add_file(FileEntry(path, 0, ()))
                    continue
                chain = self._chain(cluster, repr(path))
                if len(chain) * self.bpb.cluster_bytes < size:
                    raise DriveError(f"{self.name}: {path!r} is shorter than its size {size}")
                self._add_file(FileEntry(path, size, tuple(self._extents(chain))))
