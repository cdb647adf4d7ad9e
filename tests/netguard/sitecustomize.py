"""Refuse, in any Python process a test starts, to talk to the link-local metadata address from
the machine's own network namespace, or to send raw frames there (a DHCP client's packet
socket: a DISCOVER must never leave on the machine's own NICs).

Tests put this directory on PYTHONPATH (see tests/conftest.py), so every child Python process
— our agent, Debian's cloud-init — loads it. Inside a network namespace or VM that a test created,
the address is the test's own and traffic is allowed.
"""

from __future__ import annotations

import os
import socket

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


def install() -> None:
    if getattr(socket.socket, "_metaboot_guarded", False) or not _in_initial_netns():
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto

    def connect(self: socket.socket, address: object) -> None:
        if _forbidden(address):
            raise PermissionError(f"metaboot tests: refusing to connect to {address!r}")
        original_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        if _forbidden(address):
            raise PermissionError(f"metaboot tests: refusing to connect to {address!r}")
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    def sendto(self: socket.socket, *args: object) -> int:
        if self.family == getattr(socket, "AF_PACKET", None):
            raise PermissionError(
                "metaboot tests: refusing to send raw frames from the machine's own namespace"
            )
        if _forbidden(args[-1]):
            raise PermissionError(f"metaboot tests: refusing to send to {args[-1]!r}")
        return original_sendto(self, *args)  # type: ignore[call-overload,no-any-return]

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.socket.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.socket._metaboot_guarded = True  # type: ignore[attr-defined]


install()
