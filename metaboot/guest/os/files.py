"""File operations the Root does not offer itself: symbolic links and bounded decompression."""

from __future__ import annotations

import os
import zlib

from metaboot.errors import ConfigError
from metaboot.guest.system import Root


def symlink(root: Root, guest_path: str, target: str) -> bool:
    """Point ``guest_path`` at ``target`` (a guest path), replacing what is there atomically.

    Returns False when the link already pointed there.
    """
    host = root.host_path(guest_path)
    try:
        if os.readlink(host) == target:
            return False
    except OSError:
        pass
    root.makedirs(os.path.dirname(os.path.normpath(guest_path)) or "/")
    directory, name = os.path.split(host)
    tmp = os.path.join(directory, f".{name}.metaboot-tmp")
    try:  # noqa: SIM105 - contextlib is not otherwise loaded on a boot
        os.unlink(tmp)
    except FileNotFoundError:
        pass
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
