"""VFAT (FAT12/FAT16 with long names) images, written directly: no mkfs, no mount, no root.

nova formats a sparse file with ``mkfs.vfat`` and copies the tree in through a loop mount,
which needs root. Here the whole volume is laid out in memory as a handful of regions (boot
sector, two FATs, root directory, the clusters in use) and written into a sparse file.

Layout choices, all fixed so that the same files and build time give the same bytes:
512-byte sectors, one reserved sector, two FATs, media 0xF8; FAT12 below 8400 sectors and
FAT16 above, with the cluster size of Microsoft's FAT16 table; clusters are allocated
contiguously, directories first then files, both in tree order; the volume serial number is
derived from the label, the build time and the content. Every name that is not already an
upper-case 8.3 name gets long-name entries (which hold the exact name) and a ``~N`` short name.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from metaboot.drive.fileset import Directory, build_tree, epoch_seconds
from metaboot.drive.sparse import SparseImage
from metaboot.errors import DriveError

SECTOR = 512
DEFAULT_SIZE = 64 * 1024 * 1024
RESERVED_SECTORS = 1
NUM_FATS = 2
DEFAULT_ROOT_ENTRIES = 512
MEDIA = 0xF8
MAX_FAT12_CLUSTERS = 4084  # Linux, dosfstools and Microsoft all switch to FAT16 at 4085
MAX_FAT16_CLUSTERS = 65524
FAT12_BELOW_SECTORS = 8400  # Microsoft's FAT16 table starts at 8400 sectors (4.1 MB)
# Microsoft's FAT16 cluster-size table: up to N sectors -> sectors per cluster
_FAT16_CLUSTER_TABLE = ((32680, 2), (262144, 4), (524288, 8), (1048576, 16), (2097152, 32))
_FAT16_LARGEST_SPC = 64

ATTR_READ_ONLY = 0x01
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_ARCHIVE = 0x20
ATTR_LONG_NAME = 0x0F

_SHORT_CHARS = re.compile(r"[A-Z0-9$%'\-_@~`!(){}^#&]")
# Characters a long name cannot hold (Microsoft's list; Linux's vfat_bad_char agrees).
_LONG_BAD = re.compile(r'[\x00-\x1f"*/:<>?\\|]')
_LABEL_BAD = re.compile(r'[\x00-\x1f"*+,./:;<=>?\[\\\]|]')


@dataclass(frozen=True)
class Geometry:
    """Where everything sits on the volume; all counts in sectors unless named otherwise."""

    total_sectors: int
    sectors_per_cluster: int
    root_entries: int
    fat_sectors: int
    fat_bits: int
    clusters: int

    @property
    def cluster_bytes(self) -> int:
        return self.sectors_per_cluster * SECTOR

    @property
    def root_sectors(self) -> int:
        return (self.root_entries * 32 + SECTOR - 1) // SECTOR

    @property
    def root_offset(self) -> int:
        return (RESERVED_SECTORS + NUM_FATS * self.fat_sectors) * SECTOR

    @property
    def data_offset(self) -> int:
        return self.root_offset + self.root_sectors * SECTOR

    def cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_bytes


def _layout(total: int, spc: int, root_entries: int, bits: int) -> tuple[int, int]:
    """FAT size and cluster count for one choice; the FAT grows until it covers the clusters."""
    root_sectors = (root_entries * 32 + SECTOR - 1) // SECTOR
    fat_sectors = 1
    while True:
        data = total - RESERVED_SECTORS - root_sectors - NUM_FATS * fat_sectors
        clusters = max(0, data // spc)
        need = ((clusters + 2) * bits // 8 + (1 if bits == 12 else 0) + SECTOR - 1) // SECTOR
        if need <= fat_sectors:
            return fat_sectors, clusters
        fat_sectors = need


def geometry(size: int, root_entries: int = DEFAULT_ROOT_ENTRIES) -> Geometry:
    """Choose FAT12 or FAT16 and the cluster size for a volume of ``size`` bytes."""
    if size % SECTOR:
        raise DriveError(f"VFAT size {size}: must be a multiple of {SECTOR} bytes")
    total = size // SECTOR
    if total < FAT12_BELOW_SECTORS:
        for spc in (1, 2, 4, 8, 16, 32, 64):
            fat_sectors, clusters = _layout(total, spc, root_entries, 12)
            if clusters <= MAX_FAT12_CLUSTERS:
                break
        bits = 12
    else:
        spc = next((s for limit, s in _FAT16_CLUSTER_TABLE if total <= limit), _FAT16_LARGEST_SPC)
        fat_sectors, clusters = _layout(total, spc, root_entries, 16)
        if clusters > MAX_FAT16_CLUSTERS:
            raise DriveError(
                f"VFAT size {size}: too large for FAT16 (at most about 2047 MiB); "
                "a config drive is normally 64 MiB"
            )
        bits = 16
    if clusters < 1:
        raise DriveError(f"VFAT size {size}: too small to hold a FAT volume")
    return Geometry(total, spc, root_entries, fat_sectors, bits, clusters)


# ---- names ---------------------------------------------------------------------------------


def _is_plain_short(name: str) -> bool:
    """True when ``name`` can be stored as an 8.3 entry alone, exactly as given."""
    stem, dot, ext = name.partition(".")
    if not stem or len(stem) > 8 or len(ext) > 3 or "." in ext or (dot and not ext):
        return False
    return all(_SHORT_CHARS.fullmatch(c) for c in stem + ext)


def _short_field(stem: str, ext: str) -> bytes:
    return stem.ljust(8).encode("ascii") + ext.ljust(3).encode("ascii")


def _short_basis(name: str) -> tuple[str, str]:
    """The basis of a generated 8.3 name: upper case, valid characters only, spaces and
    leading dots dropped, extension from the last dot."""
    clean = name.upper().lstrip(".")
    stem, dot, ext = clean.rpartition(".")
    if not dot:
        stem, ext = clean, ""

    def keep(text: str) -> str:
        return "".join(c if _SHORT_CHARS.fullmatch(c) else "_" for c in text if c not in " .")

    return keep(stem) or "_", keep(ext)[:3]


def short_names(names: list[str]) -> dict[str, bytes]:
    """An 11-byte short name for every name of one directory, unique within it."""
    result: dict[str, bytes] = {}
    taken: set[bytes] = set()
    for name in names:
        if _is_plain_short(name):
            stem, _, ext = name.partition(".")
            result[name] = _short_field(stem, ext)
            taken.add(result[name])
    for name in sorted(set(names) - set(result)):
        stem, ext = _short_basis(name)
        n = 1
        while True:
            tail = f"~{n}"
            candidate = _short_field(stem[: 8 - len(tail)] + tail, ext)
            if candidate not in taken:
                break
            n += 1
        taken.add(candidate)
        result[name] = candidate
    return result


def _checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _long_entries(name: str, short: bytes) -> list[bytes]:
    """The long-name entries for ``name``, in on-disk order (last part first)."""
    units = name.encode("utf-16-le")
    chars = [units[i : i + 2] for i in range(0, len(units), 2)]
    if len(chars) % 13:
        chars.append(b"\x00\x00")
        chars += [b"\xff\xff"] * (-len(chars) % 13)
    checksum = _checksum(short)
    count = len(chars) // 13
    entries = []
    for index in range(count):
        part = chars[index * 13 : (index + 1) * 13]
        order = index + 1 | (0x40 if index == count - 1 else 0)
        entries.append(
            bytes([order])
            + b"".join(part[0:5])
            + bytes([ATTR_LONG_NAME, 0, checksum])
            + b"".join(part[5:11])
            + b"\x00\x00"
            + b"".join(part[11:13])
        )
    entries.reverse()
    return entries


def _check_long_name(path: str, name: str) -> None:
    if _LONG_BAD.search(name):
        raise DriveError(
            f'drive path {path!r}: VFAT names cannot hold control characters or \\ / : * ? " < > |'
        )
    if name.endswith((".", " ")):
        raise DriveError(f"drive path {path!r}: VFAT drops a trailing dot or space from names")
    if len(name.encode("utf-16-le")) > 255 * 2:
        raise DriveError(f"drive path {path!r}: VFAT names are at most 255 UTF-16 units")


# ---- directory entries ---------------------------------------------------------------------


def fat_datetime(seconds: int) -> tuple[int, int]:
    """FAT (date, time) words for a UTC time; FAT has no zone, UTC keeps builds comparable."""
    tm = time.gmtime(seconds)
    if not 1980 <= tm.tm_year <= 2107:
        raise DriveError(f"build time {seconds}: VFAT dates run from 1980 to 2107")
    date = (tm.tm_year - 1980) << 9 | tm.tm_mon << 5 | tm.tm_mday
    clock = tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec // 2
    return date, clock


def _short_entry(short: bytes, attr: int, cluster: int, size: int, stamp: tuple[int, int]) -> bytes:
    date, clock = stamp
    tenths = 0
    return struct.pack(
        "<11sBBBHHHHHHHI",
        short,
        attr,
        0,
        tenths,
        clock,
        date,
        date,
        cluster >> 16,
        clock,
        date,
        cluster & 0xFFFF,
        size,
    )


@dataclass
class _Allocation:
    """Where one directory or file starts, and how many clusters it takes."""

    first: int
    count: int


def _directory_entries(
    path: str,
    directory: Directory,
    alloc: dict[str, _Allocation],
    stamp: tuple[int, int],
) -> list[bytes]:
    names = [name for name, _ in directory.entries()]
    folded: dict[str, str] = {}
    for name in names:
        key = name.lower()
        if key in folded:
            raise DriveError(
                f"drive paths {path + folded[key]!r} and {path + name!r}: VFAT names ignore "
                "case, so both cannot be in one directory"
            )
        folded[key] = name
    shorts = short_names(names)
    entries: list[bytes] = []
    for name, node in directory.entries():
        child = path + name
        short = shorts[name]
        if not _is_plain_short(name):
            _check_long_name(child, name)
            entries += _long_entries(name, short)
        if isinstance(node, Directory):
            a = alloc[child + "/"]
            entries.append(_short_entry(short, ATTR_DIRECTORY, a.first, 0, stamp))
        else:
            a = alloc[child]
            entries.append(_short_entry(short, ATTR_ARCHIVE, a.first, len(node), stamp))
    return entries


def _clusters_for(nbytes: int, cluster_bytes: int) -> int:
    return (nbytes + cluster_bytes - 1) // cluster_bytes


def _entry_count(directory: Directory) -> int:
    """Directory entries a directory's children need (short + long-name entries)."""
    count = 0
    for name, _ in directory.entries():
        count += 1
        if not _is_plain_short(name):
            count += (len(name.encode("utf-16-le")) // 2 + 12) // 13
    return count


def _pack_fat(entries: list[int], bits: int) -> bytes:
    if bits == 16:
        return struct.pack(f"<{len(entries)}H", *entries)
    if len(entries) % 2:
        entries = [*entries, 0]
    out = bytearray()
    for i in range(0, len(entries), 2):
        a, b = entries[i], entries[i + 1]
        out += bytes((a & 0xFF, (a >> 8) | ((b & 0x0F) << 4), b >> 4))
    return bytes(out)


def _boot_sector(geo: Geometry, label: bytes, serial: int) -> bytes:
    total16 = geo.total_sectors if geo.total_sectors < 0x10000 else 0
    total32 = 0 if total16 else geo.total_sectors
    head = struct.pack(
        "<3s8sHBHBHHBHHHII",
        b"\xeb\x3c\x90",
        b"MSWIN4.1",
        SECTOR,
        geo.sectors_per_cluster,
        RESERVED_SECTORS,
        NUM_FATS,
        geo.root_entries,
        total16,
        MEDIA,
        geo.fat_sectors,
        32,  # sectors per track (nominal)
        64,  # heads (nominal)
        0,  # hidden sectors: the volume starts the disk, no partition table
        total32,
    )
    fs_type = b"FAT12   " if geo.fat_bits == 12 else b"FAT16   "
    ext = struct.pack("<BBBI11s8s", 0x80, 0, 0x29, serial, label, fs_type)
    # Boot code: "int 18h" (try the next boot device), then halt in a loop.
    code = b"\xcd\x18\xf4\xeb\xfd"
    sector = bytearray(SECTOR)
    sector[: len(head) + len(ext)] = head + ext
    sector[62 : 62 + len(code)] = code
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def _label_field(label: str) -> bytes:
    try:
        raw = label.encode("ascii")
    except UnicodeEncodeError:
        raise DriveError(f"VFAT label {label!r}: must be ASCII") from None
    if not raw or len(raw) > 11 or _LABEL_BAD.search(label) or raw.startswith(b" "):
        raise DriveError(f'VFAT label {label!r}: 1-11 characters, none of "*+,./:;<=>?[\\]|')
    return raw.ljust(11)


def _serial(label: bytes, seconds: int, files: Mapping[str, bytes]) -> int:
    digest = hashlib.sha256(label + seconds.to_bytes(8, "little", signed=True))
    for path in sorted(files):
        digest.update(path.encode("utf-8") + b"\x00" + hashlib.sha256(files[path]).digest())
    return int.from_bytes(digest.digest()[:4], "little")


def vfat_image(
    files: Mapping[str, bytes],
    *,
    build_time: datetime | float,
    label: str = "config-2",
    size: int = DEFAULT_SIZE,
) -> SparseImage:
    """Lay out a VFAT volume holding ``files`` and return its non-zero regions."""
    label_raw = _label_field(label)
    tree = build_tree(files)
    seconds = epoch_seconds(build_time)
    stamp = fat_datetime(seconds)

    root_needed = 1 + _entry_count(tree)  # +1 for the volume label entry
    root_entries = max(DEFAULT_ROOT_ENTRIES, -(-root_needed // 16) * 16)
    geo = geometry(size, root_entries)
    cb = geo.cluster_bytes

    # Pass 1: allocate clusters, directories first (tree order), then files.
    alloc: dict[str, _Allocation] = {}
    next_cluster = 2
    walk = list(tree.walk())
    for path, directory in walk[1:]:
        count = _clusters_for((2 + _entry_count(directory)) * 32, cb)
        alloc[path] = _Allocation(next_cluster, count)
        next_cluster += count
    for path, directory in walk:
        for name, data in sorted(directory.files.items()):
            count = _clusters_for(len(data), cb)
            alloc[path + name] = _Allocation(next_cluster if count else 0, count)
            next_cluster += count
    used = next_cluster - 2
    if used > geo.clusters:
        content = sum(len(d) for d in files.values())
        raise DriveError(
            f"content does not fit a VFAT volume of {size} bytes: {content} bytes of files "
            f"need {used} clusters of {cb} bytes, the volume has {geo.clusters}"
        )

    image = SparseImage(size)
    image.put(0, _boot_sector(geo, label_raw, _serial(label_raw, seconds, files)))

    # Pass 2: directory contents and file data.
    root = [_short_entry(label_raw, ATTR_VOLUME_ID, 0, 0, stamp)]
    root += _directory_entries("", tree, alloc, stamp)
    image.put(geo.root_offset, b"".join(root))
    for path, directory in walk[1:]:
        here = alloc[path]
        parent_path = path[: path.rstrip("/").rfind("/") + 1]
        parent = alloc[parent_path].first if parent_path else 0
        body = [
            _short_entry(b".          ", ATTR_DIRECTORY, here.first, 0, stamp),
            _short_entry(b"..         ", ATTR_DIRECTORY, parent, 0, stamp),
        ]
        body += _directory_entries(path, directory, alloc, stamp)
        image.put(geo.cluster_offset(here.first), b"".join(body))
    for path, directory in walk:
        for name, data in directory.files.items():
            if data:
                image.put(geo.cluster_offset(alloc[path + name].first), data)

    # The FAT: media and end-of-chain markers, then one chain per allocation.
    eoc = 0xFFF if geo.fat_bits == 12 else 0xFFFF
    fat = [0] * (next_cluster)
    fat[0] = (eoc & ~0xFF) | MEDIA
    fat[1] = eoc
    for a in alloc.values():
        for cluster in range(a.first, a.first + a.count):
            fat[cluster] = cluster + 1
        if a.count:
            fat[a.first + a.count - 1] = eoc
    packed = _pack_fat(fat, geo.fat_bits)
    for copy in range(NUM_FATS):
        image.put((RESERVED_SECTORS + copy * geo.fat_sectors) * SECTOR, packed)
    return image


def write_vfat(
    files: Mapping[str, bytes],
    out: BinaryIO,
    *,
    build_time: datetime | float,
    label: str = "config-2",
    size: int = DEFAULT_SIZE,
) -> None:
    """Write a VFAT image of ``files`` to ``out`` (sparse when ``out`` is a seekable file)."""
    vfat_image(files, build_time=build_time, label=label, size=size).write_to(out)


def build_vfat(
    files: Mapping[str, bytes],
    *,
    build_time: datetime | float,
    label: str = "config-2",
    size: int = DEFAULT_SIZE,
) -> bytes:
    """The VFAT image of ``files`` as bytes (the full volume size, mostly zeros)."""
    out = io.BytesIO()
    write_vfat(files, out, build_time=build_time, label=label, size=size)
    return out.getvalue()
