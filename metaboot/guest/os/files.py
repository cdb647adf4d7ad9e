"""File operations the Root does not offer itself: symbolic links and bounded decompression."""

from __future__ import annotations

import os
import zlib
from pathlib import PurePosixPath

from metaboot.errors import ConfigError
from metaboot.guest.system import Root


def symlink(root: Root, guest_path: str, target: str) -> bool:
    """Point ``guest_path`` at ``target`` (a guest path), replacing what is there atomically.

    Returns False when the link already pointed there.
    """
    host = root.path(guest_path)
    try:
        if os.readlink(host) == target:
            return False
    except OSError:
        pass
    root.makedirs(str(PurePosixPath(guest_path).parent))
    tmp = host.with_name(f".{host.name}.metaboot-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, host)
    return True


def gunzip_bounded(data: bytes, limit: int, what: str) -> bytes:
    """Decompress gzip ``data`` (all members), refusing to produce more than ``limit`` bytes."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as err:
            raise ConfigError(f"{what}: not valid gzip data ({err})") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise ConfigError(f"{what}: decompresses to more than {limit} bytes; refused")
        if not inflater.eof:
            raise ConfigError(f"{what}: gzip data is truncated")
        rest = inflater.unused_data
    return bytes(out)
