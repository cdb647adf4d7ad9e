"""The guest agent must stay light: importing it pulls in no server-side dependency."""

from __future__ import annotations

import subprocess
import sys

SERVER_ONLY = ("sqlalchemy", "alembic", "psycopg", "uvloop", "httptools", "pycdlib", "cryptography")
SERVER_PARTS = ("metaboot.service", "metaboot.registry", "metaboot.proxy", "metaboot.drive")


def test_guest_and_client_import_no_server_dependency() -> None:
    code = (
        "import sys, pkgutil, importlib, metaboot.guest, metaboot.client\n"
        "for m in pkgutil.walk_packages(metaboot.guest.__path__, 'metaboot.guest.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    leaked = [m for m in out if m.split(".")[0] in SERVER_ONLY or m.startswith(SERVER_PARTS)]
    assert leaked == []


def test_netguard_refuses_link_local_metadata() -> None:
    import socket

    import pytest

    with socket.socket() as sock, pytest.raises(PermissionError):
        sock.connect(("169.254.169.254", 80))


def test_netguard_refuses_raw_frames_from_the_machines_namespace() -> None:
    """A DHCP client's packet socket must never send on the machine's own NICs."""
    import socket

    import pytest

    with (
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as sock,
        pytest.raises(PermissionError),
    ):
        sock.sendto(b"\0" * 28, ("lo", 0x0800, 0, 0, b"\xff" * 6))
