"""ISO 9660 images with Joliet and Rock Ridge, laid out and written here.

A config drive has a small, fixed shape: a few dozen small files in a shallow tree, with no
boot record, no symbolic links, no deep relocation and no multi-extent files. For that shape
this module writes the image in one to two milliseconds. It used pycdlib before. pycdlib is a
general ISO editor and keeps every record as an object it can later edit. For fifty files that
costs it 4 to 10 ms, between a quarter and a half of nova's whole genisoimage run, so the speed
target (3x genisoimage, bench/drive_build.py) did not hold on a loaded machine. The other ways
of calling pycdlib did not help either (bench/iso_writers.py; docs/drive.md has the figures).
pycdlib stays in the tests as an independent reader of what this module writes, next to
isoinfo, xorriso, blkid and cloud-init.

The image, in sector order:

    0-15   system area (zeros)
    16     primary volume descriptor     17  Joliet supplementary descriptor (level 3)
    18     descriptor set terminator
    19-    path tables: primary L, primary M, Joliet L, Joliet M
           primary directories, in path-table order, with Rock Ridge entries (RRIP 1.09)
           continuation area: the root's ER entry, and names too long for their record
           Joliet directories, in path-table order
           file data, one extent per file in tree order (empty files point at sector 0)

Names: the exact name goes in Rock Ridge ``NM``, which Linux shows. The primary identifier is
an upper-case, unique level-3 name and the Joliet name is the exact name whenever Joliet can
hold it (``names.py``). Every date is the build time in UTC, so the same files and build time
give the same bytes on any host.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from metaboot import __version__
from metaboot.drive import isorecords as rec
from metaboot.drive.fileset import Directory, build_tree, epoch_seconds
from metaboot.drive.names import iso_dir_name, iso_file_name, joliet_name, unique_names
from metaboot.errors import DriveError

SECTOR = rec.SECTOR
# Deeper directories would need Rock Ridge relocation (rr_moved); a drive never needs them.
MAX_DIR_DEPTH = 7
MAX_LABEL = 32
FILE_MODE = 0o100444
DIR_MODE = 0o040555
# The largest file one extent can describe (a 32-bit size); a drive is far below it.
MAX_FILE_BYTES = 0xFFFFFFFF - SECTOR + 1

_FIRST_FREE_SECTOR = rec.SYSTEM_AREA_SECTORS + 3  # after PVD, SVD and terminator


@dataclass(eq=False)
class _File:
    rr_name: bytes
    iso_id: bytes
    joliet_id: bytes
    data: bytes
    extent: int = 0


@dataclass(eq=False)
class _Dir:
    """One directory, with its place in both trees (primary and Joliet)."""

    rr_name: bytes
    iso_id: bytes
    joliet_id: bytes
    parent: _Dir | None
    subdirs: int = 0
    # children sorted by identifier, as each tree requires (ECMA-119 9.3)
    iso_children: list[_Dir | _File] = field(default_factory=list)
    joliet_children: list[_Dir | _File] = field(default_factory=list)
    iso_number: int = 0
    joliet_number: int = 0
    iso_extent: int = 0
    iso_size: int = 0
    joliet_extent: int = 0
    joliet_size: int = 0
    # the system use areas of this directory's records, one per record in iso order
    iso_records: list[_SystemUse] = field(default_factory=list)
    iso_offsets: list[int] = field(default_factory=list)
    joliet_offsets: list[int] = field(default_factory=list)

    @property
    def links(self) -> int:
        return 2 + self.subdirs


@dataclass(eq=False)
class _SystemUse:
    """A primary record's system use area: the entries that fit in the record, and (when a
    name does not) the entries continued in the continuation area through a CE entry."""

    inline: bytes
    continued: bytes = b""
    ce_sector: int = 0  # within the continuation area, then (once laid out) in the image
    ce_offset: int = 0

    def encode(self) -> bytes:
        if not self.continued:
            return self.inline
        return self.inline + rec.ce_entry(self.ce_sector, self.ce_offset, len(self.continued))

    @property
    def length(self) -> int:
        return len(self.inline) + (rec.CE_LENGTH if self.continued else 0)


def _check_label(label: str) -> None:
    if not label or len(label) > MAX_LABEL or not label.isascii() or not label.isprintable():
        raise DriveError(f"ISO volume label {label!r}: must be 1-{MAX_LABEL} printable ASCII")


def _ucs2(name: str) -> bytes:
    return name.encode("utf-16-be")


def _gather(tree: Directory) -> tuple[_Dir, list[_File]]:
    """Name every directory and file in the three namespaces; files come back in tree order."""
    root = _Dir(rr_name=b"", iso_id=rec.DOT, joliet_id=rec.DOT, parent=None)
    files: list[_File] = []
    pending: deque[tuple[str, Directory, _Dir]] = deque([("", tree, root)])
    while pending:
        drive_path, directory, node = pending.popleft()
        if directory.dirs and drive_path.count("/") >= MAX_DIR_DEPTH:
            deep = drive_path + sorted(directory.dirs)[0]
            raise DriveError(
                f"drive path {deep!r}: directories nest deeper than {MAX_DIR_DEPTH} levels, "
                "which ISO 9660 cannot hold without relocation"
            )
        iso_dirs = unique_names(directory.dirs, iso_dir_name)
        iso_files = unique_names(directory.files, iso_file_name)
        # Joliet names share one namespace per directory (files and directories together).
        joliet = unique_names([*directory.dirs, *directory.files], joliet_name)
        children: list[_Dir | _File] = []
        for name in sorted(directory.dirs):
            sub = _Dir(
                rr_name=name.encode("utf-8"),
                iso_id=iso_dirs[name].encode("ascii"),
                joliet_id=_ucs2(joliet[name]),
                parent=node,
            )
            children.append(sub)
            pending.append((f"{drive_path}{name}/", directory.dirs[name], sub))
        node.subdirs = len(directory.dirs)
        for name, data in sorted(directory.files.items()):
            if len(data) > MAX_FILE_BYTES:
                raise DriveError(f"drive path {drive_path + name!r}: over 4 GiB, too big for ISO")
            entry = _File(
                rr_name=name.encode("utf-8"),
                iso_id=iso_files[name].encode("ascii"),
                joliet_id=_ucs2(joliet[name]),
                data=data,
            )
            children.append(entry)
            files.append(entry)
        node.iso_children = sorted(children, key=lambda child: child.iso_id)
        node.joliet_children = sorted(children, key=lambda child: child.joliet_id)
    return root, files


def _path_table_order(root: _Dir, *, joliet: bool) -> list[_Dir]:
    """Directories level by level, each level by parent number then identifier (ECMA-119
    9.4.3): a breadth-first walk over children already sorted by identifier gives exactly
    that. Numbers every directory on the way."""
    order = [root]
    for node in order:  # grows while it is walked
        children = node.joliet_children if joliet else node.iso_children
        order.extend(child for child in children if isinstance(child, _Dir))
    for number, node in enumerate(order, start=1):
        if joliet:
            node.joliet_number = number
        else:
            node.iso_number = number
    return order


def _place(lengths: list[int]) -> tuple[list[int], int]:
    """Offsets of consecutive records in a directory extent, none crossing a sector boundary
    (ECMA-119 6.8.1.1), and the extent's size in whole sectors."""
    offsets = []
    position = 0
    for length in lengths:
        if position % SECTOR + length > SECTOR:
            position += SECTOR - position % SECTOR
        offsets.append(position)
        position += length
    return offsets, -(-position // SECTOR) * SECTOR


class _EntryCache:
    """The Rock Ridge entries most records share, encoded once per image: every file's are
    the same, and a directory's differ only by its link count."""

    def __init__(self, date: bytes) -> None:
        self.tf = rec.tf_entry(date)
        self.dot_rr = rec.rr_entry(rec.RR_PX | rec.RR_TF)
        self.named_rr = rec.rr_entry(rec.RR_PX | rec.RR_TF | rec.RR_NM)
        self.file = self.named_rr + rec.px_entry(FILE_MODE, 1) + self.tf
        self._dirs: dict[tuple[bool, int], bytes] = {}

    def directory(self, links: int, *, named: bool) -> bytes:
        key = (named, links)
        if key not in self._dirs:
            rr = self.named_rr if named else self.dot_rr
            self._dirs[key] = rr + rec.px_entry(DIR_MODE, links) + self.tf
        return self._dirs[key]


def _plan_primary(node: _Dir, root: _Dir, entries: _EntryCache) -> None:
    """The Rock Ridge entries of every record in ``node``'s primary extent, and its size."""
    dot = entries.directory(node.links, named=False)
    if node is root:
        records = [_SystemUse(rec.sp_entry() + dot, continued=rec.er_entry())]
    else:
        records = [_SystemUse(dot)]
    parent = node.parent or node
    records.append(_SystemUse(entries.directory(parent.links, named=False)))
    lengths = [rec.record_length(1, records[0].length), rec.record_length(1, records[1].length)]
    for child in node.iso_children:
        if isinstance(child, _Dir):
            fixed = entries.directory(child.links, named=True)
        else:
            fixed = entries.file
        names = rec.nm_entries(child.rr_name)
        inline_name = fixed + names[0]
        if len(names) == 1 and rec.record_length(len(child.iso_id), len(inline_name)) <= 255:
            system_use = _SystemUse(inline_name)
        else:
            system_use = _SystemUse(fixed, continued=b"".join(names))
        records.append(system_use)
        lengths.append(rec.record_length(len(child.iso_id), system_use.length))
    node.iso_records = records
    node.iso_offsets, node.iso_size = _place(lengths)


def _plan_joliet(node: _Dir) -> None:
    lengths = [rec.record_length(1, 0)] * 2
    lengths += [rec.record_length(len(child.joliet_id), 0) for child in node.joliet_children]
    node.joliet_offsets, node.joliet_size = _place(lengths)


def _plan_continuations(order: list[_Dir]) -> int:
    """Give every continued system use a place in the continuation area (each piece within
    one sector); returns the number of sectors the area needs."""
    sector = offset = 0
    for node in order:
        for system_use in node.iso_records:
            if not system_use.continued:
                continue
            if offset + len(system_use.continued) > SECTOR:
                sector, offset = sector + 1, 0
            system_use.ce_sector, system_use.ce_offset = sector, offset
            offset += len(system_use.continued)
    return sector + 1 if offset else sector


def _path_table(order: list[_Dir], *, joliet: bool, big_endian: bool) -> bytes:
    parts = []
    for node in order:
        if joliet:
            parent = node.parent.joliet_number if node.parent else 1
            parts.append(
                rec.path_table_record(
                    node.joliet_id, node.joliet_extent, parent, big_endian=big_endian
                )
            )
        else:
            parent = node.parent.iso_number if node.parent else 1
            parts.append(
                rec.path_table_record(node.iso_id, node.iso_extent, parent, big_endian=big_endian)
            )
    return b"".join(parts)


def _sectors(size: int) -> int:
    return -(-size // SECTOR)


def _child_extent(child: _Dir | _File, *, joliet: bool) -> tuple[int, int]:
    if isinstance(child, _File):
        return child.extent, len(child.data)
    if joliet:
        return child.joliet_extent, child.joliet_size
    return child.iso_extent, child.iso_size


def _write_directory(image: bytearray, node: _Dir, date: bytes, *, joliet: bool) -> None:
    """One directory's records, in either tree: the same walk over ``.``, ``..`` and the
    children; only the primary tree's records carry Rock Ridge system use entries."""
    parent = node.parent or node
    if joliet:
        extent, size, children = node.joliet_extent, node.joliet_size, node.joliet_children
        parent_extent, parent_size = parent.joliet_extent, parent.joliet_size
        offsets, system_uses = node.joliet_offsets, [b""] * len(node.joliet_offsets)
    else:
        extent, size, children = node.iso_extent, node.iso_size, node.iso_children
        parent_extent, parent_size = parent.iso_extent, parent.iso_size
        offsets, system_uses = node.iso_offsets, [su.encode() for su in node.iso_records]
    entries: list[tuple[bytes, int, int, bool]] = [
        (rec.DOT, extent, size, True),
        (rec.DOTDOT, parent_extent, parent_size, True),
    ]
    for child in children:
        child_extent, child_size = _child_extent(child, joliet=joliet)
        identifier = child.joliet_id if joliet else child.iso_id
        entries.append((identifier, child_extent, child_size, isinstance(child, _Dir)))
    base = extent * SECTOR
    for (identifier, entry_extent, entry_size, is_dir), system_use, offset in zip(
        entries, system_uses, offsets, strict=True
    ):
        record = rec.directory_record(
            identifier, entry_extent, entry_size, date, directory=is_dir, system_use=system_use
        )
        image[base + offset : base + offset + len(record)] = record


@dataclass
class _Layout:
    """Where the path tables start, their sizes, and the image's size in sectors (directories,
    continuations and files carry their own places)."""

    path_tables: tuple[int, int, int, int]  # primary L, primary M, Joliet L, Joliet M
    iso_table_size: int
    joliet_table_size: int
    sectors: int


def _allocate(
    iso_order: list[_Dir], joliet_order: list[_Dir], files: list[_File], continuation: int
) -> _Layout:
    """Give everything its sectors, in the order the module docstring shows; every size is
    already known, so one pass does it."""
    iso_table = sum(rec.path_table_length(node.iso_id) for node in iso_order)
    joliet_table = sum(rec.path_table_length(node.joliet_id) for node in joliet_order)
    cursor = _FIRST_FREE_SECTOR
    tables = []
    for size in (iso_table, iso_table, joliet_table, joliet_table):
        tables.append(cursor)
        cursor += _sectors(size)
    for node in iso_order:
        node.iso_extent = cursor
        cursor += node.iso_size // SECTOR
    continuation_start = cursor
    cursor += continuation
    for node in iso_order:
        for system_use in node.iso_records:
            if system_use.continued:
                system_use.ce_sector += continuation_start
    for node in joliet_order:
        node.joliet_extent = cursor
        cursor += node.joliet_size // SECTOR
    for entry in files:
        if entry.data:
            entry.extent = cursor
            cursor += _sectors(len(entry.data))
    return _Layout(
        (tables[0], tables[1], tables[2], tables[3]),
        iso_table,
        joliet_table,
        cursor,
    )


def _put(image: bytearray, sector: int, data: bytes, offset: int = 0) -> None:
    start = sector * SECTOR + offset
    image[start : start + len(data)] = data


def _encode(
    iso_order: list[_Dir],
    joliet_order: list[_Dir],
    files: list[_File],
    layout: _Layout,
    *,
    label: str,
    seconds: int,
    date: bytes,
) -> bytes:
    image = bytearray(layout.sectors * SECTOR)
    for node in iso_order:
        for system_use in node.iso_records:
            if system_use.continued:
                _put(image, system_use.ce_sector, system_use.continued, system_use.ce_offset)
        _write_directory(image, node, date, joliet=False)
    for node in joliet_order:
        _write_directory(image, node, date, joliet=True)
    for entry in files:
        _put(image, entry.extent, entry.data)
    kinds = ((False, False), (True, False), (False, True), (True, True))
    for sector, (big_endian, joliet) in zip(layout.path_tables, kinds, strict=True):
        order = joliet_order if joliet else iso_order
        _put(image, sector, _path_table(order, joliet=joliet, big_endian=big_endian))
    root = iso_order[0]
    for index, joliet in ((0, False), (1, True)):
        root_record = rec.directory_record(
            rec.DOT,
            root.joliet_extent if joliet else root.iso_extent,
            root.joliet_size if joliet else root.iso_size,
            date,
            directory=True,
        )
        descriptor = rec.volume_descriptor(
            joliet=joliet,
            system_id="LINUX",
            volume_id=label,
            publisher=f"metaboot {__version__}",
            application="metaboot",
            volume_sectors=layout.sectors,
            path_table_size=layout.joliet_table_size if joliet else layout.iso_table_size,
            path_table_le=layout.path_tables[2 * index],
            path_table_be=layout.path_tables[2 * index + 1],
            root_record=root_record,
            seconds=seconds,
        )
        _put(image, rec.SYSTEM_AREA_SECTORS + index, descriptor)
    _put(image, rec.SYSTEM_AREA_SECTORS + 2, rec.terminator())
    return bytes(image)


def iso_image(files: Mapping[str, bytes], *, build_time: datetime | float, label: str) -> bytes:
    """Lay out and encode the whole image in memory: name everything, size every directory,
    give everything its sectors, then encode."""
    _check_label(label)
    tree = build_tree(files)
    seconds = epoch_seconds(build_time)
    date = rec.record_date(seconds)
    root, file_list = _gather(tree)
    iso_order = _path_table_order(root, joliet=False)
    joliet_order = _path_table_order(root, joliet=True)
    entries = _EntryCache(date)
    for node in iso_order:
        _plan_primary(node, root, entries)
    for node in joliet_order:
        _plan_joliet(node)
    continuation = _plan_continuations(iso_order)
    layout = _allocate(iso_order, joliet_order, file_list, continuation)
    return _encode(
        iso_order, joliet_order, file_list, layout, label=label, seconds=seconds, date=date
    )


def write_iso(
    files: Mapping[str, bytes],
    out: BinaryIO,
    *,
    build_time: datetime | float,
    label: str = "config-2",
) -> None:
    """Write an ISO 9660 + Joliet + Rock Ridge image of ``files`` to the binary stream ``out``.

    The image is built whole in memory first, so bad input raises before anything is written,
    and the stream gets one write (which also works on pipes and at any stream position)."""
    out.write(iso_image(files, build_time=build_time, label=label))


def build_iso(
    files: Mapping[str, bytes], *, build_time: datetime | float, label: str = "config-2"
) -> bytes:
    """The ISO image of ``files`` as bytes."""
    return iso_image(files, build_time=build_time, label=label)
