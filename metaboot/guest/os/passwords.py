"""Password hashes and generated passwords.

Hashes are crypt(3) SHA-512 (``$6$``), the default of every current Linux distribution, made by
Python's ``crypt`` module where the interpreter has it and by ``openssl passwd -6`` otherwise
(the password goes through standard input, never the command line). Plain-text passwords are
hashed here and handed to ``chpasswd -e``, so the system tools never see them and no PAM stack
runs inside someone else's root.
"""

from __future__ import annotations

import re
import warnings

from metaboot.guest.charsets import ASCII_ALNUM
from metaboot.guest.os.tools import ToolError

# What cloud-init accepts as an already-hashed password in ``chpasswd.list``.
# Compiled on first use, through re's own cache: most boots set no password.
_HASH = r"\$(1|2a|2y|5|6)(\$.+){2}"
_SALT_ALPHABET = ASCII_ALNUM + "./"
# Letters and digits without the ones people misread on a console (l/1/I, O/0).
_RANDOM_ALPHABET = "".join(c for c in ASCII_ALNUM if c not in "loLOI01")


def looks_hashed(value: str) -> bool:
    """True when ``value`` is a crypt hash (cloud-init's rule for ``chpasswd.list`` entries)."""
    return re.match(_HASH, value) is not None and ":" not in value


def random_password(length: int = 20) -> str:
    """A password with at least one lower-case letter, upper-case letter and digit."""
    if length < 8:
        raise ValueError("a generated password needs at least 8 characters")
    import secrets  # with hmac and hashlib (OpenSSL): only when a password is made

    while True:
        candidate = "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate


def hash_password(password: str, salt: str | None = None) -> str:
    """Return a SHA-512 crypt hash of ``password`` (``salt``: up to 16 chars of [./A-Za-z0-9])."""
    if "\n" in password or "\0" in password:
        raise ValueError("a password cannot contain a newline or a NUL character")
    if salt is None:
        import secrets

        salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(16))
    elif not salt or len(salt) > 16 or any(c not in _SALT_ALPHABET for c in salt):
        raise ValueError("a SHA-512 crypt salt is 1 to 16 characters of [./A-Za-z0-9]")
    hashed = _crypt_module(password, salt)
    return hashed if hashed is not None else _openssl(password, salt)


def _crypt_module(password: str, salt: str) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated in 3.11, gone in 3.13: openssl is the fallback
    except ImportError:
        return None
    result = crypt.crypt(password, f"$6${salt}")
    return result if result and result.startswith("$6$") else None


def _openssl(password: str, salt: str) -> str:
    import subprocess  # only where Python has no crypt module

    try:
        proc = subprocess.run(
            ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
            input=password.encode("utf-8") + b"\n",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as err:
        raise ToolError(
            "cannot hash a password: this Python has no crypt module and openssl is not installed"
        ) from err
    hashed = proc.stdout.decode().strip()
    if proc.returncode != 0 or not hashed.startswith("$6$"):
        raise ToolError(f"cannot hash a password: openssl passwd failed: {proc.stderr.decode()}")
    return hashed
