"""The guest agent must stay light: importing it pulls in no server-side dependency."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


GUARD_PROBE = """
import _socket, sys
def refused(make):
    try:
        make().connect(("169.254.169.254", 80))
    except PermissionError:
        return "refused"
    except OSError as err:
        return f"not refused: {err}"
    return "not refused: connected"
print(refused(lambda: _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)))
import socket
print(refused(socket.socket))
print(socket.socket.__mro__[1].__name__)
"""


@pytest.mark.netns
def test_netguard_guards_the_socket_type_the_agent_uses_directly() -> None:
    """The agent's HTTP client makes its sockets from ``_socket`` (no ``socket.py``): the guard
    refuses there too, and ``socket.socket``, imported afterwards, inherits the refusal. The
    probe runs in a namespace of its own with no route anywhere, declared the "machine's own"
    to the guard: were the guard to let a connection through, nothing could leave."""
    import os
    from pathlib import Path

    netguard = Path(__file__).parent / "netguard"
    probe = (
        'METABOOT_HOST_NETNS="$(readlink /proc/self/ns/net)" '
        f'PYTHONPATH={netguard} exec "$0" -c "$1"'
    )
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", probe, sys.executable, GUARD_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "METABOOT_HOST_NETNS"},
    )
    assert proc.stdout.split("\n")[:3] == ["refused", "refused", "GuardedSocket"]
