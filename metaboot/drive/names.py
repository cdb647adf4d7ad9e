"""Secondary names for filesystems that cannot hold a name as given.

ISO 9660 primary records, Joliet and FAT short names each restrict characters and length. The
exact name always travels in the richer record (Rock Ridge ``NM``, VFAT long-name entries); the
names made here only need to be valid, unique within their directory and stable from build to
build, so that two builds of the same files are byte-identical.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_NOT_D_CHAR = re.compile(r"[^A-Z0-9_]")
# Joliet forbids these (ECMA-119 Joliet spec, section 3.3), plus control characters.
_JOLIET_BAD = re.compile(r"[\x00-\x1f*/:;?\\]")
_NON_BMP = re.compile(r"[^\u0000-\uffff]")


def unique_names(
    names: Iterable[str],
    propose: Callable[[str, int], str],
    fold: Callable[[str], str] = str.upper,
) -> dict[str, str]:
    """Give every name a secondary name that is unique (after ``fold``) within the directory.

    ``propose(name, n)`` returns candidate number ``n`` (0 = the plain mangling); candidates
    are tried in order, and names are visited in sorted order, so the result is deterministic.
    """
    taken: set[str] = set()
    result: dict[str, str] = {}
    for name in sorted(names):
        n = 0
        while True:
            candidate = propose(name, n)
            if fold(candidate) not in taken:
                break
            n += 1
        taken.add(fold(candidate))
        result[name] = candidate
    return result


def _with_suffix(stem: str, n: int, limit: int) -> str:
    if n == 0:
        return stem[:limit]
    tail = f"_{n}"
    return stem[: max(1, limit - len(tail))] + tail


def iso_file_name(name: str, n: int) -> str:
    """An ISO 9660 level-3 file identifier: d-characters, one dot, ≤ 30 characters, ``;1``."""
    upper = name.upper()
    stem, dot, ext = upper.rpartition(".")
    if not dot or not stem:
        stem, ext = upper, ""
    stem = _NOT_D_CHAR.sub("_", stem)
    ext = _NOT_D_CHAR.sub("_", ext)[:8]
    stem = _with_suffix(stem or "_", n, 30 - len(ext))
    return f"{stem}.{ext};1"


def iso_dir_name(name: str, n: int) -> str:
    """An ISO 9660 level-3 directory identifier: d-characters only, ≤ 31 characters."""
    return _with_suffix(_NOT_D_CHAR.sub("_", name.upper()) or "_", n, 31)


def _utf8_truncate(text: str, limit: int) -> str:
    """Cut ``text`` so that it is at most ``limit`` UTF-8 bytes, on a character boundary."""
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def joliet_name(name: str, n: int) -> str:
    """A Joliet name: UCS-2 without the forbidden characters, ≤ 64 characters (and, for the
    library we write with, ≤ 64 UTF-8 bytes). Kept as given whenever it already fits."""
    clean = _NON_BMP.sub("_", _JOLIET_BAD.sub("_", name))
    if n == 0 and len(clean.encode("utf-8")) <= 64:
        return clean
    stem, dot, ext = clean.rpartition(".")
    if not dot or not stem or len(ext.encode("utf-8")) > 16:
        stem, dot, ext = clean, "", ""
    tail = f"~{n}" if n else ""
    room = 64 - len(ext.encode("utf-8")) - len(dot) - len(tail)
    return _utf8_truncate(stem, room) + tail + dot + ext
