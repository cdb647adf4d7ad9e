"""Passwords encrypted to an SSH key decrypt with OpenSSL and with cryptography."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from metaboot.errors import ConfigError
from metaboot.guest.os import keycrypt


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "id_rsa"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-m",
            "PEM",
            "-N",
            "",
            "-C",
            "op",
            "-f",
            str(path),
        ],
        check=True,
    )
    return path


def test_openssl_decrypts(rsa_key: Path, tmp_path: Path) -> None:
    public = (rsa_key.with_suffix(".pub")).read_text()
    secret = "Xk9mPq2RtZ7vWc4nHs8J"
    blob = tmp_path / "pw.bin"
    blob.write_bytes(base64.b64decode(keycrypt.encrypt_to_ssh_key(public, secret)))
    out = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-decrypt",
            "-inkey",
            str(rsa_key),
            "-in",
            str(blob),
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
        ],
        capture_output=True,
        check=True,
    ).stdout
    assert out.decode() == secret


def test_cryptography_decrypts_and_ciphertexts_differ(rsa_key: Path) -> None:
    public = (rsa_key.with_suffix(".pub")).read_text()
    private = serialization.load_pem_private_key(rsa_key.read_bytes(), password=None)
    first = keycrypt.encrypt_to_ssh_key(public, "pässword")
    second = keycrypt.encrypt_to_ssh_key(public, "pässword")
    assert first != second  # random padding
    for b64 in (first, second):
        raw = base64.b64decode(b64)
        assert len(raw) == 256
        assert private.decrypt(raw, padding.PKCS1v15()).decode() == "pässword"  # type: ignore[union-attr]


def test_padding_is_pkcs1_type_2() -> None:
    n = (1 << 1023) | 1  # any 1024-bit modulus; e = 1 leaves the padded block visible
    block = keycrypt.encrypt_pkcs1v15(n, 1, b"hi", random_bytes=lambda k: bytes([0, 7]) * k)
    assert block[:2] == b"\x00\x02"
    assert block[-3:] == b"\x00hi"
    assert 0 not in block[2:-3]
    assert len(block) == 128


@pytest.mark.parametrize(
    "line",
    [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGcJ0rIkU3PLV3dY9Qe0yAqL8lqEZxM7bqz8hRvR8Kq0 x",
        "ssh-rsa not-base64!",
        "",
    ],
)
def test_non_rsa_keys_refused(line: str) -> None:
    with pytest.raises(ConfigError):
        keycrypt.encrypt_to_ssh_key(line, "pw")


def test_message_too_long(rsa_key: Path) -> None:
    with pytest.raises(ConfigError, match="too long"):
        keycrypt.encrypt_to_ssh_key(rsa_key.with_suffix(".pub").read_text(), "x" * 300)
