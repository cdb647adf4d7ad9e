"""Encrypt a short secret to an OpenSSH RSA public key, the way nova's password API expects.

nova's ``get-password`` (and cloudbase-init, which writes the same thing) stores base64 of an
RSA PKCS#1 v1.5 encryption of the password under the instance's SSH key; the owner decrypts it
with the private key (``base64 -d | openssl pkeyutl -decrypt -inkey KEY``). The guest has no
``cryptography`` package, and this needs none: parsing the key and one modular exponentiation
are a few lines of standard Python.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Callable

from metaboot.errors import ConfigError


def parse_rsa_public_key(line: str) -> tuple[int, int]:
    """(modulus, public exponent) of an ``ssh-rsa AAAA... comment`` line."""
    fields = line.split()
    try:
        at = fields.index("ssh-rsa")
        blob = base64.b64decode(fields[at + 1], validate=True)
    except (ValueError, IndexError, binascii.Error):
        kind = fields[0] if fields else "empty"
        raise ConfigError(
            f"not an OpenSSH RSA public key (found {kind!r}): only ssh-rsa keys "
            "can receive an encrypted password"
        ) from None
    parts: list[bytes] = []
    offset = 0
    while offset < len(blob) and len(parts) < 3:
        if offset + 4 > len(blob):
            break
        (size,) = struct.unpack(">I", blob[offset : offset + 4])
        parts.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if len(parts) != 3 or parts[0] != b"ssh-rsa" or offset != len(blob):
        raise ConfigError("malformed ssh-rsa public key blob")
    exponent = int.from_bytes(parts[1], "big")
    modulus = int.from_bytes(parts[2], "big")
    if modulus.bit_length() < 1024 or exponent < 3:
        raise ConfigError(f"RSA key too weak to encrypt a password ({modulus.bit_length()} bits)")
    return modulus, exponent


def encrypt_pkcs1v15(
    modulus: int, exponent: int, message: bytes, random_bytes: Callable[[int], bytes] = os.urandom
) -> bytes:
    """RSAES-PKCS1-v1_5 (RFC 8017 §7.2.1): 00 02 <nonzero random> 00 <message>, then m^e mod n."""
    k = (modulus.bit_length() + 7) // 8
    if len(message) > k - 11:
        raise ConfigError(f"message too long for a {k * 8}-bit RSA key ({len(message)} bytes)")
    padding = bytearray()
    while len(padding) < k - len(message) - 3:
        padding += bytes(b for b in random_bytes(k) if b != 0)
    block = b"\x00\x02" + bytes(padding[: k - len(message) - 3]) + b"\x00" + message
    return pow(int.from_bytes(block, "big"), exponent, modulus).to_bytes(k, "big")


def encrypt_to_ssh_key(public_key: str, secret: str) -> str:
    """Base64 of ``secret`` encrypted to the OpenSSH RSA ``public_key`` (nova's password format)."""
    modulus, exponent = parse_rsa_public_key(public_key)
    return base64.b64encode(encrypt_pkcs1v15(modulus, exponent, secret.encode("utf-8"))).decode()
