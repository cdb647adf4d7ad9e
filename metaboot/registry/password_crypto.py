"""The guest-password convention of nova's ``get-password`` and cloudbase-init: the guest
encrypts its password with the instance's first SSH public key (RSA, PKCS#1 v1.5 padding),
base64-encodes the ciphertext and POSTs it; only the holder of the private key can read it.
The registry stores the text as posted; this module is the operator's side."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from metaboot.errors import MetabootError


class PasswordError(MetabootError):
    """The stored password cannot be decrypted with the key given."""


class KeyEncryptedError(PasswordError):
    """The private key needs a passphrase and none was given."""


def load_private_key(data: bytes, passphrase: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key in PEM (PKCS#1 or PKCS#8) or OpenSSH format."""
    key: object
    try:
        if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key = serialization.load_ssh_private_key(data, passphrase)
        else:
            key = serialization.load_pem_private_key(data, passphrase)
    except TypeError as err:
        # cryptography: "Password was not given but private key is encrypted", or the reverse.
        if passphrase is None:
            raise KeyEncryptedError(
                "the private key is encrypted: its passphrase is needed"
            ) from None
        raise PasswordError(f"the private key: {err}") from None
    except (ValueError, UnsupportedAlgorithm) as err:
        raise PasswordError(f"cannot read the private key: {err}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PasswordError(
            f"the private key is {type(key).__name__.removeprefix('_')}, not RSA; "
            "guests encrypt passwords with RSA keys only"
        )
    return key


def public_key_matches(private: rsa.RSAPrivateKey, ssh_public_key: str) -> bool:
    """Whether ``ssh_public_key`` (an ``ssh-rsa AAAA… comment`` line) is this key's half."""
    try:
        public = serialization.load_ssh_public_key(ssh_public_key.strip().encode())
    except (ValueError, UnsupportedAlgorithm):
        return False
    return (
        isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == private.public_key().public_numbers()
    )


def encrypt_password(password: str, ssh_public_key: str) -> str:
    """What a guest posts: base64(RSA-PKCS#1v1.5(password)) under the instance's key."""
    public = serialization.load_ssh_public_key(ssh_public_key.strip().encode())
    if not isinstance(public, rsa.RSAPublicKey):
        raise PasswordError("passwords are encrypted with RSA keys only")
    return base64.b64encode(public.encrypt(password.encode(), padding.PKCS1v15())).decode()


def decrypt_password(stored: str, private: rsa.RSAPrivateKey) -> str:
    try:
        ciphertext = base64.b64decode("".join(stored.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PasswordError("the stored password is not base64: was it encrypted?") from None
    try:
        plain = private.decrypt(ciphertext, padding.PKCS1v15())
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise PasswordError(
            "decryption failed: the password was not encrypted with this key"
        ) from None
