"""The records of an ISO 9660 image as bytes: volume descriptors, directory and path-table
records (ECMA-119), the Joliet supplementary descriptor, and the SUSP / Rock Ridge entries
(RRIP 1.09, the version ``genisoimage -r`` writes) that carry POSIX names, modes and times.

Pure functions of their arguments, no layout decisions: ``iso.py`` decides where everything
goes and calls these to encode it. Every multi-byte number in ECMA-119 is either little-endian,
big-endian or "both-byte order" (little then big); the helpers below name which.
"""

from __future__ import annotations

import struct
import time

from metaboot.errors import DriveError

SECTOR = 2048
SYSTEM_AREA_SECTORS = 16

FLAG_DIRECTORY = 0x02

# The identifiers of "." and ".." in a directory's own extent.
DOT = b"\x00"
DOTDOT = b"\x01"

# Joliet level 3 (UCS-2, all of it) is announced by this escape sequence in the SVD.
JOLIET_LEVEL_3 = b"%/E"

# RRIP 1.09's extension reference (RRIP section 5.5): identifier, description and source are
# the texts the standard prescribes; readers match the identifier.
_ER_ID = b"RRIP_1991A"
_ER_DESCRIPTION = (
    b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
)
_ER_SOURCE = (
    b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN "
    b"PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."
)

# The RR entry (RRIP 1.09 only) says which other Rock Ridge entries a record carries.
RR_PX = 0x01
RR_NM = 0x08
RR_TF = 0x80
# NM flag: the name goes on in the next NM entry.
NM_CONTINUE = 0x01
# The longest name one NM entry holds (the entry length is one byte, 5 of them header).
NM_CHUNK = 250

# length, ext. attr. length, extent (LE, BE), size (LE, BE), date, flags, then unit size and
# interleave gap (both 0), volume sequence number (both-endian), identifier length
_RECORD_HEAD = struct.Struct("<BBI4sI4s7sB2x4sB")
_VOLUME_SEQUENCE_1 = b"\x01\x00\x00\x01"
_PATH_LE = struct.Struct("<BBIH")
_PATH_BE = struct.Struct(">BBIH")


def both16(value: int) -> bytes:
    return struct.pack("<H", value) + struct.pack(">H", value)


def both32(value: int) -> bytes:
    return struct.pack("<I", value) + struct.pack(">I", value)


def _gmtime(seconds: int) -> time.struct_time:
    try:
        tm = time.gmtime(seconds)
    except (OverflowError, OSError, ValueError):
        tm = None
    if tm is None or not 1900 <= tm.tm_year <= 2155:
        raise DriveError(f"time {seconds}: ISO 9660 dates hold the years 1900 to 2155")
    return tm


def record_date(seconds: int) -> bytes:
    """The 7-byte date of directory records and Rock Ridge TF: years since 1900, month, day,
    hour, minute, second, and the zone in 15-minute steps (always 0: the image is in UTC)."""
    tm = _gmtime(seconds)
    return bytes((tm.tm_year - 1900, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, 0))


def descriptor_date(seconds: int | None) -> bytes:
    """The 17-byte date of volume descriptors: 16 ASCII digits then the zone; ``None`` is the
    "not specified" value (all digits zero)."""
    if seconds is None:
        return b"0" * 16 + b"\x00"
    return time.strftime("%Y%m%d%H%M%S00", _gmtime(seconds)).encode("ascii") + b"\x00"


def record_length(identifier_length: int, system_use_length: int) -> int:
    """Length of a directory record: 33 bytes of header, the identifier, a pad byte that keeps
    the system use area at an even offset, then the system use area (itself padded to even)."""
    head = 33 + identifier_length + (1 - identifier_length % 2)
    return head + system_use_length + system_use_length % 2


def directory_record(
    identifier: bytes,
    extent: int,
    size: int,
    date: bytes,
    *,
    directory: bool,
    system_use: bytes = b"",
) -> bytes:
    """One directory record (ECMA-119 9.1); volume sequence number 1, no interleaving."""
    length = record_length(len(identifier), len(system_use))
    if length > 255:
        raise ValueError(f"directory record for {identifier!r} is {length} bytes, over 255")
    id_pad = b"" if len(identifier) % 2 else b"\x00"
    su_pad = b"\x00" if len(system_use) % 2 else b""
    head = _RECORD_HEAD.pack(
        length,
        0,  # extended attribute record length
        extent,
        extent.to_bytes(4, "big"),
        size,
        size.to_bytes(4, "big"),
        date,
        FLAG_DIRECTORY if directory else 0,
        _VOLUME_SEQUENCE_1,
        len(identifier),
    )
    return head + identifier + id_pad + system_use + su_pad


def path_table_record(identifier: bytes, extent: int, parent: int, *, big_endian: bool) -> bytes:
    """One path table record (ECMA-119 9.4); ``parent`` is the parent's 1-based number."""
    packer = _PATH_BE if big_endian else _PATH_LE
    out = packer.pack(len(identifier), 0, extent, parent) + identifier
    return out + b"\x00" if len(identifier) % 2 else out


def path_table_length(identifier: bytes) -> int:
    """Length of the path table record for a directory with this identifier."""
    return 8 + len(identifier) + len(identifier) % 2


def _padded(text: str, size: int, *, ucs2: bool) -> bytes:
    if ucs2:
        raw = text.encode("utf-16-be")[:size]
        return raw + " ".encode("utf-16-be") * ((size - len(raw)) // 2)
    return text.encode("ascii")[:size].ljust(size, b" ")


def volume_descriptor(
    *,
    joliet: bool,
    system_id: str,
    volume_id: str,
    publisher: str,
    application: str,
    volume_sectors: int,
    path_table_size: int,
    path_table_le: int,
    path_table_be: int,
    root_record: bytes,
    seconds: int,
) -> bytes:
    """The primary volume descriptor (ECMA-119 8.4), or with ``joliet`` the supplementary one
    that announces Joliet level 3: same layout, type 2, the escape sequence, UCS-2 texts."""
    ucs2 = joliet
    out = bytearray(SECTOR)
    out[0] = 2 if joliet else 1
    out[1:6] = b"CD001"
    out[6] = 1
    out[8:40] = _padded(system_id, 32, ucs2=ucs2)
    out[40:72] = _padded(volume_id, 32, ucs2=ucs2)
    out[80:88] = both32(volume_sectors)
    if joliet:
        out[88:91] = JOLIET_LEVEL_3
    out[120:124] = both16(1)  # volume set size
    out[124:128] = both16(1)  # volume sequence number
    out[128:132] = both16(SECTOR)
    out[132:140] = both32(path_table_size)
    out[140:144] = struct.pack("<I", path_table_le)
    out[148:152] = struct.pack(">I", path_table_be)
    out[156:190] = root_record
    blank = _padded("", 128, ucs2=ucs2)
    out[190:318] = blank  # volume set identifier
    out[318:446] = _padded(publisher, 128, ucs2=ucs2)
    out[446:574] = blank  # data preparer
    out[574:702] = _padded(application, 128, ucs2=ucs2)
    out[702:739] = _padded("", 37, ucs2=False)  # copyright, abstract, bibliographic files
    out[739:776] = _padded("", 37, ucs2=False)
    out[776:813] = _padded("", 37, ucs2=False)
    stamp = descriptor_date(seconds)
    out[813:830] = stamp  # creation
    out[830:847] = stamp  # modification
    out[847:864] = descriptor_date(None)  # expiration
    out[864:881] = stamp  # effective
    out[881] = 1  # file structure version
    return bytes(out)


def terminator() -> bytes:
    """The volume descriptor set terminator (ECMA-119 8.3)."""
    return b"\xffCD001\x01".ljust(SECTOR, b"\x00")


# SUSP and Rock Ridge entries: two signature bytes, the entry length, the version, the data.


def sp_entry() -> bytes:
    """SUSP "SP": marks the root's "." record, so readers look for Rock Ridge at all."""
    return b"SP\x07\x01\xbe\xef\x00"


def rr_entry(flags: int) -> bytes:
    """RRIP 1.09 "RR": which Rock Ridge entries follow in this record."""
    return b"RR\x05\x01" + bytes((flags,))


def px_entry(mode: int, links: int) -> bytes:
    """RRIP 1.09 "PX": mode, link count, uid 0, gid 0 (36 bytes; 1.12 adds an inode)."""
    return b"PX\x24\x01" + both32(mode) + both32(links) + both32(0) + both32(0)


def tf_entry(date: bytes) -> bytes:
    """RRIP "TF": modification, access and attribute-change times, all the build time."""
    return b"TF\x1a\x01\x0e" + date * 3


def nm_entries(name: bytes) -> list[bytes]:
    """RRIP "NM" entries for ``name``: one per 250 bytes, each but the last marked CONTINUE."""
    chunks = [name[i : i + NM_CHUNK] for i in range(0, len(name), NM_CHUNK)] or [b""]
    last = len(chunks) - 1
    return [
        b"NM" + bytes((5 + len(chunk), 1, NM_CONTINUE if i < last else 0)) + chunk
        for i, chunk in enumerate(chunks)
    ]


def ce_entry(sector: int, offset: int, length: int) -> bytes:
    """SUSP "CE": the record's system use goes on at ``offset`` in ``sector``."""
    return b"CE\x1c\x01" + both32(sector) + both32(offset) + both32(length)


CE_LENGTH = 28


def er_entry() -> bytes:
    """SUSP "ER": names the extension in use (RRIP 1.09), on the root's "." record."""
    head = bytes((len(_ER_ID), len(_ER_DESCRIPTION), len(_ER_SOURCE), 1))
    body = head + _ER_ID + _ER_DESCRIPTION + _ER_SOURCE
    return b"ER" + bytes((4 + len(body), 1)) + body
