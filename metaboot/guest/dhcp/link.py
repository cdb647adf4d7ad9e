"""The interface side of an ephemeral lease: link up/down, the address and routes in and out.

Everything is done through rtnetlink (:mod:`~metaboot.guest.dhcp.netlink`) on the running
kernel's interfaces — never through a Root: a lease is about the network namespace the agent
runs in, not about the tree it configures. Each change is recorded so that
:meth:`Applied.undo` puts the interface back exactly as it was found, whatever happened in
between.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from metaboot.guest.dhcp import netlink
from metaboot.guest.dhcp.message import Reply
from metaboot.guest.dhcp.netlink import NetlinkError as LinkError

SYS_NET = "/sys/class/net"

__all__ = ["Applied", "LinkError", "has_carrier", "is_up", "read_sys", "routes_of"]


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
        self._undo: list[Callable[[], None]] = []
        self.problems: list[str] = []

    def link_up(self) -> None:
        if is_up(self.ifname):
            return
        netlink.set_up(self.ifname, True)
        self._undo.append(lambda: netlink.set_up(self.ifname, False))

    def lease(self, ack: Reply) -> None:
        """The leased address (its prefix route comes and goes with it) and the routes that
        reach beyond the link."""
        prefix = ack.prefix if ack.prefix is not None else _classful(ack.address)
        lifetime = max(30, min(ack.lease_seconds or 300, 3600))
        netlink.add_address(self.ifname, ack.address, prefix, lifetime)
        self._undo.append(lambda: netlink.delete_address(self.ifname, ack.address, prefix))
        for destination, gateway in routes_of(ack):
            via = None if gateway == "0.0.0.0" else gateway
            try:
                netlink.add_route(self.ifname, destination, via)
            except LinkError as err:
                # One unusable route must not lose the lease: the metadata address is usually
                # on-link or behind the default route.
                self.problems.append(str(err))
                continue
            self._undo.append(_route_remover(self.ifname, destination, via))

    def undo(self) -> list[str]:
        """Revert every change, newest first; returns what could not be reverted."""
        failed: list[str] = []
        while self._undo:
            action = self._undo.pop()
            try:
                action()
            except LinkError as err:
                failed.append(str(err))
        return failed


def _route_remover(ifname: str, destination: str, gateway: str | None) -> Callable[[], None]:
    return lambda: netlink.delete_route(ifname, destination, gateway)


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
