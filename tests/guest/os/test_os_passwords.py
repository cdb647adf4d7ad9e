"""Password hashes are real crypt(3) SHA-512 hashes, as openssl computes them independently."""

from __future__ import annotations

import subprocess

import pytest

from metaboot.guest.os import passwords


def openssl_hash(password: str, salt: str) -> str:
    return subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize("password", ["s3cret", "pässwörd with spaces", "x" * 100, "$6$looks"])
def test_hash_matches_openssl(password: str) -> None:
    hashed = passwords.hash_password(password)
    assert hashed.startswith("$6$")
    salt = hashed.split("$")[2]
    assert hashed == openssl_hash(password, salt)


def test_openssl_fallback_gives_the_same_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_crypt_module", lambda _p, _s: None)
    assert passwords.hash_password("hunter2", salt="abcdefgh") == openssl_hash(
        "hunter2", "abcdefgh"
    )


def test_fresh_salt_each_time() -> None:
    assert passwords.hash_password("same") != passwords.hash_password("same")


@pytest.mark.parametrize("bad", ["two\nlines", "nul\0"])
def test_refuses_passwords_chpasswd_cannot_carry(bad: str) -> None:
    with pytest.raises(ValueError, match="newline or a NUL"):
        passwords.hash_password(bad)


def test_random_password_shape() -> None:
    seen = {passwords.random_password() for _ in range(200)}
    assert len(seen) == 200
    for pw in seen:
        assert len(pw) == 20
        assert any(c.islower() for c in pw) and any(c.isupper() for c in pw)
        assert any(c.isdigit() for c in pw)
        assert not set(pw) & set("loLOI01")


@pytest.mark.parametrize(
    ("value", "hashed"),
    [
        ("$6$rounds=4096$salt$abcdef", True),
        ("$1$salt$hash", True),
        ("$2y$10$abcdefghijk", True),
        ("plain", False),
        ("$6$only", False),
        ("$6$a$b:c", False),
    ],
)
def test_looks_hashed_follows_cloud_init(value: str, hashed: bool) -> None:
    assert passwords.looks_hashed(value) is hashed
