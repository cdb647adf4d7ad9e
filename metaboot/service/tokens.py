"""IMDSv2 session tokens, self-verifying so that any worker (and any node sharing the key) can
check them without a shared store.

A token is ``base64url(version ‖ expiry ‖ nonce ‖ HMAC-SHA256(key, version ‖ expiry ‖ nonce ‖
instance id))``. The nonce comes from :mod:`secrets` (a CSPRNG), so two tokens are never equal;
the MAC binds the token to one instance (a token read on another VM fails to verify there) and
to its expiry. Why not a table of tokens: a boot storm would turn every ``PUT`` into a database
write and every read into a lookup, and the workers would need that store to agree; the MAC
needs neither. The cost is that a token cannot be revoked before it expires — AWS has no
revocation either; deleting the instance ends it, since the token never identifies anyone by
itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable

MIN_TTL = 1
MAX_TTL = 21600
_VERSION = 1
_HEAD = struct.Struct(">BQ16s")  # version, expiry (unix seconds), nonce
_MAC_LEN = 32
_TOKEN_BYTES = _HEAD.size + _MAC_LEN


def parse_ttl(value: str | None) -> int | None:
    """The ``X-aws-ec2-metadata-token-ttl-seconds`` value, or None when it is not 1..21600."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 6:
        return None
    ttl = int(value)
    return ttl if MIN_TTL <= ttl <= MAX_TTL else None


class TokenAuthority:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the token key must be at least 32 bytes")
        self._key = key
        self._clock = clock

    def _mac(self, head: bytes, instance_id: str) -> bytes:
        return hmac.new(self._key, head + instance_id.encode("utf-8"), hashlib.sha256).digest()

    def issue(self, instance_id: str, ttl: int) -> str:
        expiry = int(self._clock()) + ttl
        head = _HEAD.pack(_VERSION, expiry, secrets.token_bytes(16))
        raw = head + self._mac(head, instance_id)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def verify(self, token: str, instance_id: str) -> bool:
        """True only for an unexpired token issued to ``instance_id`` under this key."""
        text = token.strip()
        if len(text) > 128:
            return False
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(raw) != _TOKEN_BYTES:
            return False
        head, mac = raw[: _HEAD.size], raw[_HEAD.size :]
        version, expiry, _nonce = _HEAD.unpack(head)
        if version != _VERSION:
            return False
        if not hmac.compare_digest(mac, self._mac(head, instance_id)):
            return False
        return bool(expiry > self._clock())
