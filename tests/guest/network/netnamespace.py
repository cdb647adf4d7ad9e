"""A throwaway network namespace with veth NICs whose MACs the test chooses.

This kernel offers veth but not bond, VLAN or dummy devices, so the namespace holds physical-
like NICs only. Every namespace gets a random name and is deleted on exit.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

# Runs systemd-networkd inside a namespace on a directory of our files only ($1).
NETWORKD_SCRIPT = """
set -e
mount -t tmpfs tmpfs /run/systemd
mkdir -p /run/systemd/netif
chown systemd-network:systemd-network /run/systemd/netif 2>/dev/null || true
mount --bind "$1" /etc/systemd/network
# A read-only /sys tells networkd there is no udev to wait for (as in a container).
mount -o remount,ro /sys
exec /usr/lib/systemd/systemd-networkd
"""


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


@contextmanager
def namespace(nics: Mapping[str, str]) -> Iterator[str]:
    """A namespace where each NIC name has its MAC (the peer end is up, so carrier is on)."""
    name = f"mbnet-{secrets.token_hex(4)}"
    ip("netns", "add", name)
    try:
        for index, (nic, mac) in enumerate(nics.items()):
            peer = f"peer{index}"
            ip("link", "add", nic, "address", mac, "type", "veth", "peer", "name", peer, netns=name)
            ip("link", "set", peer, "up", netns=name)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def addresses(netns: str, devices: set[str]) -> dict[str, set[str]]:
    """Global addresses per device, read back with ``ip -j addr``."""
    found: dict[str, set[str]] = {d: set() for d in devices}
    for link in json.loads(ip("-j", "addr", "show", netns=netns)):
        if link["ifname"] not in devices:
            continue
        for info in link.get("addr_info", []):
            if info.get("scope") == "global":
                found[link["ifname"]].add(f"{info['local']}/{info['prefixlen']}")
    return found


def routes(netns: str, devices: set[str]) -> set[tuple[str, str, str]]:
    """(destination, gateway, device) of gatewayed routes, read back with ``ip -j route``."""
    found: set[tuple[str, str, str]] = set()
    for family in ("-4", "-6"):
        entries: list[dict[str, Any]] = json.loads(ip("-j", family, "route", "show", netns=netns))
        for entry in entries:
            if entry.get("dev") in devices and entry.get("gateway"):
                dst = entry["dst"]
                if dst == "default":
                    dst = "::/0" if family == "-6" else "0.0.0.0/0"
                elif "/" not in dst:
                    dst += "/128" if family == "-6" else "/32"
                found.add((dst, entry["gateway"], entry["dev"]))
    return found


def mtus(netns: str, devices: set[str]) -> dict[str, int]:
    return {
        link["ifname"]: link["mtu"]
        for link in json.loads(ip("-j", "link", "show", netns=netns))
        if link["ifname"] in devices
    }
