"""Read ISO 9660 images, with the names Linux would show: Rock Ridge, else Joliet, else the
primary names (lower-cased, version dropped, as the kernel's default ``map=normal`` does).

Handled: several volume descriptors, Joliet levels 1-3, SUSP continuation areas (``CE``), Rock
Ridge names split over several ``NM`` entries, deep directories relocated with ``CL``/``RE``,
multi-extent files. Symbolic links and associated files are left out (a config drive has none).
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from metaboot.diskfs.base import MAX_DEPTH, Extent, FileEntry, ImageReader
from metaboot.errors import DriveError

SYSTEM_AREA = 16 * 2048
MAGIC = b"CD001"
_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
_RRIP_IDS = (b"RRIP_1991A", b"IEEE_P1282", b"IEEE_1282")
_MAX_DESCRIPTORS = 64
_MAX_CONTINUATIONS = 64
_MAX_DIRECTORY_BYTES = 16 << 20

FLAG_HIDDEN = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ASSOCIATED = 0x04
FLAG_MULTI_EXTENT = 0x80

# (raw identifier, is_directory) -> the name a reader should show
_Decoder = Callable[[str, bool], str]


def looks_like_iso(head: bytes) -> bool:
    """True if ``head`` (the image's first 34 KiB or more) has an ISO volume descriptor."""
    return head[SYSTEM_AREA + 1 : SYSTEM_AREA + 6] == MAGIC


@dataclass(frozen=True)
class _Record:
    """One directory record, with the Rock Ridge facts that matter for reading."""

    name: str
    extent: int
    size: int
    flags: int
    rr_name: str | None = None
    rr_mode: int | None = None
    rr_symlink: bool = False
    rr_child: int | None = None  # CL: where a relocated directory really is
    rr_relocated: bool = False  # RE: this is the relocated copy; list it via its CL only

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & FLAG_DIRECTORY) or self.rr_child is not None


class IsoReader(ImageReader):
    fs_type = "iso9660"

    def __init__(self, fp: BinaryIO, name: str = "image") -> None:
        super().__init__(fp, name)
        primary, joliet = self._descriptors()
        self.block_size = int.from_bytes(primary[128:130], "little")
        if self.block_size not in (512, 1024, 2048):
            raise DriveError(f"{name}: unsupported ISO logical block size {self.block_size}")
        self.label = primary[40:72].decode("latin-1").rstrip(" \x00")
        if joliet is not None and not self.label:
            self.label = joliet[40:72].decode("utf-16-be", errors="replace").rstrip(" \x00")
        root = self._parse_record(primary[156:190], 0, susp=False)
        self._susp_skip: int | None = self._detect_rock_ridge(root)
        self.has_rock_ridge = self._susp_skip is not None
        self.has_joliet = joliet is not None
        if self.has_rock_ridge:
            self.names = "rock-ridge"
            self._load(root, susp=True, decode=_primary_name)
        elif joliet is not None:
            self.names = "joliet"
            joliet_root = self._parse_record(joliet[156:190], 0, susp=False)
            self._load(joliet_root, susp=False, decode=_joliet_name)
        else:
            self.names = "iso9660"
            self._load(root, susp=False, decode=_primary_name)

    # -- volume descriptors ------------------------------------------------------------

    def _descriptors(self) -> tuple[bytes, bytes | None]:
        primary: bytes | None = None
        joliet: bytes | None = None
        for index in range(_MAX_DESCRIPTORS):
            desc = self._read_at(SYSTEM_AREA + index * 2048, 2048, "volume descriptor")
            if desc[1:6] != MAGIC:
                raise DriveError(f"{self.name}: not an ISO 9660 image (no CD001 at sector 16)")
            kind = desc[0]
            if kind == 255:
                break
            if kind == 1 and primary is None:
                primary = desc
            elif kind == 2 and joliet is None and desc[88:91] in _JOLIET_ESCAPES:
                joliet = desc
        if primary is None:
            raise DriveError(f"{self.name}: ISO image without a primary volume descriptor")
        return primary, joliet

    # -- records -----------------------------------------------------------------------

    def _parse_record(self, raw: bytes, offset_hint: int, *, susp: bool) -> _Record:
        if len(raw) < 34 or raw[0] < 34 or raw[0] > len(raw):
            raise DriveError(f"{self.name}: malformed directory record near byte {offset_hint}")
        length = raw[0]
        name_len = raw[32]
        if 33 + name_len > length:
            raise DriveError(f"{self.name}: directory record name overruns near {offset_hint}")
        name_raw = raw[33 : 33 + name_len]
        if name_raw == b"\x00":
            name = "."
        elif name_raw == b"\x01":
            name = ".."
        else:
            name = name_raw.decode("latin-1")
        record = _Record(
            name=name,
            extent=int.from_bytes(raw[2:6], "little"),
            size=int.from_bytes(raw[10:14], "little"),
            flags=raw[25],
        )
        if raw[26] or raw[27]:
            raise DriveError(f"{self.name}: interleaved file {name!r} is not supported")
        if not susp:
            return record
        record_name = name_raw if name not in (".", "..") else None
        sua_start = 33 + name_len + (0 if name_len % 2 else 1)
        return self._apply_rock_ridge(record, raw[sua_start:length], record_name)

    def _susp_entries(self, area: bytes, skip: int) -> Iterator[tuple[bytes, bytes]]:
        """Yield (signature, entry) from a system use area and its continuation areas."""
        pending = [(area, skip)]
        hops = 0
        while pending:
            data, pos = pending.pop(0)
            while pos + 4 <= len(data):
                sig, length = data[pos : pos + 2], data[pos + 2]
                if length < 4 or pos + length > len(data) or sig == b"ST":
                    break
                entry = data[pos : pos + length]
                if sig == b"CE" and length >= 28:
                    hops += 1
                    if hops > _MAX_CONTINUATIONS:
                        raise DriveError(f"{self.name}: too many SUSP continuation areas")
                    block = int.from_bytes(entry[4:8], "little")
                    offset = int.from_bytes(entry[12:16], "little")
                    size = int.from_bytes(entry[20:24], "little")
                    where = block * self.block_size + offset
                    pending.append((self._read_at(where, size, "SUSP continuation"), 0))
                else:
                    yield sig, entry
                pos += length

    def _detect_rock_ridge(self, root: _Record) -> int | None:
        """The SUSP skip length if the primary tree carries Rock Ridge, else None."""
        data = self._read_at(root.extent * self.block_size, min(root.size, 2048), "root dir")
        if not data or data[0] < 34:
            return None
        dot = data[: data[0]]
        name_len = dot[32]
        area = dot[33 + name_len + (0 if name_len % 2 else 1) :]
        if area[:2] != b"SP" or len(area) < 7 or area[4:6] != b"\xbe\xef":
            return None
        skip = area[6]
        for sig, entry in self._susp_entries(area, 0):
            if sig == b"ER" and len(entry) >= 8:
                ident = entry[8 : 8 + entry[4]]
                if ident.startswith(_RRIP_IDS):
                    return skip
            if sig in (b"RR", b"PX", b"NM"):
                return skip
        return None

    def _apply_rock_ridge(self, record: _Record, area: bytes, own_name: bytes | None) -> _Record:
        skip = self._susp_skip or 0
        name_parts: list[bytes] = []
        mode: int | None = None
        symlink = False
        child: int | None = None
        relocated = False
        for sig, entry in self._susp_entries(area, skip):
            if sig == b"NM" and len(entry) >= 5:
                if entry[4] & 0x06:  # "current" / "parent" names
                    continue
                name_parts.append(entry[5:])
            elif sig == b"PX" and len(entry) >= 12:
                mode = int.from_bytes(entry[4:8], "little")
            elif sig == b"SL":
                symlink = True
            elif sig == b"CL" and len(entry) >= 12:
                child = int.from_bytes(entry[4:8], "little")
            elif sig == b"RE":
                relocated = True
        rr_name = b"".join(name_parts).decode("utf-8", errors="surrogateescape") or None
        if own_name is None:
            rr_name = None
        return _Record(
            name=record.name,
            extent=record.extent,
            size=record.size,
            flags=record.flags,
            rr_name=rr_name,
            rr_mode=mode,
            rr_symlink=symlink or (mode is not None and stat.S_ISLNK(mode)),
            rr_child=child,
            rr_relocated=relocated,
        )

    def _records(self, extent: int, size: int, *, susp: bool) -> Iterator[_Record]:
        if size > _MAX_DIRECTORY_BYTES:
            raise DriveError(f"{self.name}: directory at block {extent} claims {size} bytes")
        base = extent * self.block_size
        data = self._read_at(base, size, f"directory at block {extent}")
        pos = 0
        while pos < len(data):
            length = data[pos]
            if length == 0:  # records never cross a block; the rest of this one is padding
                pos = (pos // self.block_size + 1) * self.block_size
                continue
            yield self._parse_record(data[pos : pos + length], base + pos, susp=susp)
            pos += length

    # -- tree ------------------------------------------------------------------------------

    def _load(self, root: _Record, *, susp: bool, decode: _Decoder) -> None:
        stack: list[tuple[str, int, int, int]] = [("", root.extent, root.size, 0)]
        seen: set[int] = set()
        while stack:
            prefix, extent, size, depth = stack.pop()
            if extent in seen:
                raise DriveError(f"{self.name}: directory loop at block {extent}")
            seen.add(extent)
            if depth > MAX_DEPTH:
                raise DriveError(f"{self.name}: directories nest deeper than {MAX_DEPTH}")
            pending: list[Extent] = []
            for rec in self._records(extent, size, susp=susp):
                if rec.name in (".", "..") or rec.flags & FLAG_ASSOCIATED:
                    continue
                if rec.rr_relocated or rec.rr_symlink:
                    continue
                if rec.rr_mode is not None and not (
                    stat.S_ISREG(rec.rr_mode) or stat.S_ISDIR(rec.rr_mode)
                ):
                    continue
                name = rec.rr_name if rec.rr_name is not None else decode(rec.name, rec.is_dir)
                if not name or "/" in name or name in (".", ".."):
                    raise DriveError(f"{self.name}: unusable file name {name!r} in {prefix!r}")
                path = prefix + name
                if rec.is_dir:
                    if rec.rr_child is not None:
                        child_extent = rec.rr_child
                        child_size = self._dot_size(child_extent)
                    else:
                        child_extent, child_size = rec.extent, rec.size
                    self._add_dir(path)
                    stack.append((path + "/", child_extent, child_size, depth + 1))
                    continue
                pending.append(Extent(rec.extent * self.block_size, rec.size))
                if rec.flags & FLAG_MULTI_EXTENT:
                    continue
                total = sum(e.length for e in pending)
                self._add_file(FileEntry(path, total, tuple(pending)))
                pending = []
            if pending:
                raise DriveError(f"{self.name}: multi-extent file without its last part")

    def _dot_size(self, extent: int) -> int:
        """The size of a relocated directory, from its own ``.`` record."""
        head = self._read_at(extent * self.block_size, 34, f"relocated dir at block {extent}")
        return int.from_bytes(head[10:14], "little")


def _strip_version(name: str) -> str:
    base, semi, version = name.rpartition(";")
    return base if semi and version.isdigit() else name


def _primary_name(raw: str, is_dir: bool) -> str:
    name = raw if is_dir else _strip_version(raw)
    if not is_dir and name.endswith("."):
        name = name[:-1]
    return name.lower()


def _joliet_name(raw: str, is_dir: bool) -> str:
    name = raw.encode("latin-1").decode("utf-16-be", errors="replace")
    return name if is_dir else _strip_version(name)
