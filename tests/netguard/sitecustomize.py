"""Refuse, in any Python process a test starts, to talk to the link-local metadata address from
the machine's own network namespace, or to send raw frames there (a DHCP client's packet
socket: a DISCOVER must never leave on the machine's own NICs).

Tests put this directory on PYTHONPATH (see tests/conftest.py), so every child Python process
— our agent, Debian's cloud-init — loads it. Inside a network namespace or VM that a test created,
the address is the test's own and traffic is allowed.
"""

from __future__ import annotations

import _socket
import os
import sys

_FORBIDDEN = ("169.254.169.254", "fe80::a9fe:a9fe")


def _in_initial_netns() -> bool:
    # tests/conftest.py records the namespace the suite runs in: /proc/1/ns/net cannot be
    # read everywhere (inside `ip netns exec`, or in a sandbox whose pid 1 is not ours), and
    # treating "unreadable" as "initial" would block test-made namespaces too.
    try:
        mine = os.readlink("/proc/self/ns/net")
    except OSError:
        return True
    host = os.environ.get("METABOOT_HOST_NETNS")
    if host:
        return mine == host
    try:
        return mine == os.readlink("/proc/1/ns/net")
    except OSError:
        return True


def _forbidden(address: object) -> bool:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0].split("%", 1)[0].lower()
        return host in _FORBIDDEN
    return False


def _refuse_connect(address: object) -> None:
    if _forbidden(address):
        raise PermissionError(f"metaboot tests: refusing to connect to {address!r}")


def _refuse_send(sock: _socket.socket, address: object) -> None:
    if sock.family == getattr(_socket, "AF_PACKET", None):
        raise PermissionError(
            "metaboot tests: refusing to send raw frames from the machine's own namespace"
        )
    if _forbidden(address):
        raise PermissionError(f"metaboot tests: refusing to send to {address!r}")


def install() -> None:
    """Guard ``_socket.socket``, the type every Python socket is made from: the agent's HTTP
    client uses it directly (``socket.py`` is a larger import than the client), and
    ``socket.socket`` derives from it when ``socket.py`` is imported after this. Where
    ``socket.py`` was imported before, its class gets the same guarded methods."""
    if getattr(_socket.socket, "_metaboot_guarded", False) or not _in_initial_netns():
        return
    base = _socket.socket

    class GuardedSocket(base):  # type: ignore[misc,valid-type]
        __slots__ = ()
        _metaboot_guarded = True

        def connect(self, address: object) -> None:
            _refuse_connect(address)
            base.connect(self, address)

        def connect_ex(self, address: object) -> int:
            _refuse_connect(address)
            return base.connect_ex(self, address)  # type: ignore[no-any-return]

        def sendto(self, *args: object) -> int:
            _refuse_send(self, args[-1])
            return base.sendto(self, *args)  # type: ignore[no-any-return]

    _socket.socket = GuardedSocket  # type: ignore[misc]
    module = sys.modules.get("socket")
    if module is not None and not getattr(module.socket, "_metaboot_guarded", False):
        for name in ("connect", "connect_ex", "sendto"):
            setattr(module.socket, name, getattr(GuardedSocket, name))
        module.socket._metaboot_guarded = True


install()
