"""Where a drive's ``random_seed`` bytes come from.

The service puts 512 fresh random bytes into every meta_data.json it serves; a drive is built
once, and should still be reproducible: the same instance and build time must give the same
image so drives can be cached and compared. Both hold when the bytes are a keyed
pseudo-random stream:

    block_i = HMAC-SHA512(key, "metaboot drive seed" | uuid | build time | call n | i)

With a secret key the seed is unpredictable to anyone without the key (the guest mixes it into
its entropy pool, so it must not be guessable from public facts like the uuid and the time), and
it is still the same on every rebuild. Without a key the bytes come from ``os.urandom``: the seed
is then as fresh as the service's, and only the seed differs between two builds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

RandomBytes = Callable[[int], bytes]

_CONTEXT = b"metaboot drive seed\x00"
MIN_KEY_BYTES = 16


def seed_source(key: bytes | None, instance_uuid: str, build_seconds: int) -> RandomBytes:
    """A ``random_bytes(n)`` for one drive build; each call returns new bytes."""
    if key is None:
        return os.urandom
    calls = 0

    def random_bytes(n: int) -> bytes:
        nonlocal calls
        calls += 1
        prefix = b"%s%s\x00%d\x00%d\x00" % (
            _CONTEXT,
            instance_uuid.encode("utf-8"),
            build_seconds,
            calls,
        )
        out = bytearray()
        block = 0
        while len(out) < n:
            out += hmac.new(key, prefix + b"%d" % block, hashlib.sha512).digest()
            block += 1
        return bytes(out[:n])

    return random_bytes
