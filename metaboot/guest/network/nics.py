"""The machine's NICs (read from ``/sys/class/net`` through a Root) and binding the model to them.

Binding is where a template image goes wrong with other agents: we never trust a name from
the document for a physical NIC when a MAC is given; the NIC that has the MAC *now* is the
one configured. When nothing matches, :func:`fallback` keeps the VM reachable with DHCP.
"""

from __future__ import annotations

import re

from metaboot.guest.network.model import (
    IFNAMSIZ,
    Interface,
    IPv6Mode,
    Network,
    Problems,
    normalise_mac,
    prune,
)
from metaboot.guest.records import dataclass, replace
from metaboot.guest.system import Root

SYS_NET = "/sys/class/net"


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    carrier: bool = False


def read_nics(root: Root) -> list[Nic]:
    """Physical NICs of the target: not loopback, a real MAC, and (where any NIC has one) a
    ``device`` link, which bonds, VLANs, bridges and veths lack."""
    candidates: list[tuple[Nic, bool]] = []
    for name in root.listdir(SYS_NET):
        if name == "lo":
            continue
        base = f"{SYS_NET}/{name}"
        try:
            mac = normalise_mac(root.read_text(f"{base}/address", default="").strip())
        except ValueError:
            continue
        if mac == "00:00:00:00:00:00":
            continue
        if root.exists(f"{base}/bonding") or root.exists(f"{base}/bridge"):
            continue
        try:
            carrier = root.read_text(f"{base}/carrier", default="0").strip() == "1"
        except OSError:
            # The kernel answers EINVAL for the carrier of an interface that is down, which
            # is every NIC in the local stage, before the network starts.
            carrier = False
        has_device = root.exists(f"{base}/device")
        candidates.append((Nic(name, mac, carrier), has_device))
    if any(has_device for _, has_device in candidates):
        candidates = [c for c in candidates if c[1]]
    return [nic for nic, _ in candidates]


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def first_nic(nics: list[Nic]) -> Nic | None:
    """The NIC the fallback configures: one with carrier first, then in natural name order."""
    if not nics:
        return None
    return sorted(nics, key=lambda n: (not n.carrier, _natural(n.name)))[0]


def bind(network: Network, nics: list[Nic], problems: Problems) -> Network:
    """Give every interface its kernel name; physical ones by MAC (else by name)."""
    by_mac = {n.mac: n for n in nics}
    by_name = {n.name: n for n in nics}
    used: set[str] = set()
    bound: list[Interface] = []
    for iface in network.interfaces:
        if iface.kind != "physical":
            bound.append(iface)
            continue
        where = f"interface {iface.key!r}"
        nic = by_mac.get(iface.mac) if iface.mac else by_name.get(iface.name or "")
        if nic is None:
            wanted = f"MAC {iface.mac}" if iface.mac else f"name {iface.name!r}"
            problems.add(where, f"no NIC of this machine has {wanted}; not configured")
            continue
        if nic.name in used:
            problems.add(where, f"NIC {nic.name} is already configured by another entry; skipped")
            continue
        used.add(nic.name)
        bound.append(replace(iface, name=nic.name, mac=nic.mac))
    pruned = prune(Network(tuple(bound), network.dns, network.search), problems, "binding")
    return _name_vlans(pruned)


def _name_vlans(network: Network) -> Network:
    """A VLAN without a name of its own is called ``<parent>.<id>`` (``vlan<id>`` if too long)."""
    named = {i.key: i for i in network.interfaces}
    changed = True
    while changed:
        changed = False
        for key, iface in named.items():
            if iface.vlan is None or iface.name is not None:
                continue
            parent = named[iface.vlan.link]
            if parent.name is None:
                continue
            name = f"{parent.name}.{iface.vlan.vid}"
            if len(name) > IFNAMSIZ:
                name = f"vlan{iface.vlan.vid}"
            named[key] = replace(iface, name=name)
            changed = True
    return replace(network, interfaces=tuple(named[i.key] for i in network.interfaces))


def fallback(nics: list[Nic]) -> Network:
    """DHCPv4 and router advertisements on the first NIC: reachable on any ordinary network."""
    nic = first_nic(nics)
    if nic is None:
        return Network()
    iface = Interface(
        key=nic.name,
        kind="physical",
        mac=nic.mac,
        name=nic.name,
        dhcp4=True,
        ipv6=IPv6Mode.SLAAC,
    )
    return Network((iface,))
