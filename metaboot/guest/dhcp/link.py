"""The interface side of an ephemeral lease: link up/down, the address and routes in and out.

Everything is done with the image's ``ip`` (iproute2) on the running kernel's interfaces —
never through a Root: a lease is about the network namespace the agent runs in, not about the
tree it configures. Each change is recorded so that :meth:`Applied.undo` puts the interface
back exactly as it was found, whatever happened in between.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence

from metaboot.errors import MetabootError
from metaboot.guest.dhcp.message import Reply

SYS_NET = "/sys/class/net"
IP_TIMEOUT = 5.0


class LinkError(MetabootError):
    """An ``ip`` command failed or is missing; the message names the command and why."""


def ip(argv: Sequence[str]) -> None:
    try:
        proc = subprocess.run(
            ["ip", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=IP_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise LinkError("the ip command (iproute2) is not installed") from None
    except subprocess.TimeoutExpired:
        raise LinkError(f"ip {' '.join(argv)}: no answer within {IP_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
        raise LinkError(f"ip {' '.join(argv)}: {detail}")


def read_sys(ifname: str, name: str) -> str | None:
    try:
        with open(f"{SYS_NET}/{ifname}/{name}") as handle:
            return handle.read().strip()
    except OSError:
        return None  # absent, or EINVAL (carrier of a link that is down)


def is_up(ifname: str) -> bool:
    """IFF_UP set (administratively up), whatever the carrier."""
    flags = read_sys(ifname, "flags")
    return flags is not None and bool(int(flags, 16) & 0x1)


def has_carrier(ifname: str) -> bool:
    return read_sys(ifname, "carrier") == "1"


class Applied:
    """The changes made to one interface, undone in reverse order."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._undo: list[list[str]] = []
        self.problems: list[str] = []

    def link_up(self) -> None:
        if is_up(self.ifname):
            return
        ip(["link", "set", "dev", self.ifname, "up"])
        self._undo.append(["link", "set", "dev", self.ifname, "down"])

    def lease(self, ack: Reply) -> None:
        """The leased address (no prefix route of its own kernel-made kind is lost: the kernel
        adds and removes it with the address) and the routes that reach beyond the link."""
        prefix = ack.prefix if ack.prefix is not None else _classful(ack.address)
        address = f"{ack.address}/{prefix}"
        lifetime = str(max(30, min(ack.lease_seconds or 300, 3600)))
        ip(["-4", "addr", "add", address, "broadcast", "+", "dev", self.ifname,
            "valid_lft", lifetime, "preferred_lft", lifetime])  # fmt: skip
        self._undo.append(["-4", "addr", "del", address, "dev", self.ifname])
        for destination, gateway in routes_of(ack):
            argv = ["-4", "route", "add", destination, "dev", self.ifname]
            if gateway != "0.0.0.0":
                argv[4:4] = ["via", gateway]
                argv.append("onlink")
            try:
                ip(argv)
            except LinkError as err:
                # One unusable route must not lose the lease: the metadata address is usually
                # on-link or behind the default route.
                self.problems.append(str(err))
                continue
            self._undo.append(["-4", "route", "del", destination, "dev", self.ifname])

    def undo(self) -> list[str]:
        """Revert every change, newest first; returns what could not be reverted."""
        failed: list[str] = []
        while self._undo:
            argv = self._undo.pop()
            try:
                ip(argv)
            except LinkError as err:
                failed.append(str(err))
        return failed


def routes_of(ack: Reply) -> list[tuple[str, str]]:
    """(destination, gateway) pairs: option 121 when present (RFC 3442: it replaces the
    router option), else a default route through the first router."""
    if ack.routes:
        return [(r.destination, r.gateway) for r in ack.routes]
    if ack.routers:
        return [("0.0.0.0/0", ack.routers[0])]
    return []


def _classful(address: str) -> int:
    first = int(ipaddress.IPv4Address(address)) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24
