"""systemd-networkd: one ``.network`` per interface, one ``.netdev`` per bond or VLAN."""

from __future__ import annotations

from metaboot.guest.network import bonding
from metaboot.guest.network.model import Interface, IPv6Mode, Network

NAME = "networkd"
DIRECTORY = "/etc/systemd/network"


def _section(title: str, items: list[tuple[str, object]]) -> list[str]:
    lines = [f"[{title}]"]
    lines.extend(f"{key}={value}" for key, value in items)
    return [*lines, ""]


def _dhcp(iface: Interface) -> str:
    v6 = iface.ipv6 is IPv6Mode.STATEFUL
    if iface.dhcp4 and v6:
        return "yes"
    if iface.dhcp4:
        return "ipv4"
    return "ipv6" if v6 else "no"


def _network_file(network: Network, iface: Interface) -> str:
    lines = ["# Written by metaboot from the instance's network data; rewritten per instance.", ""]
    match: list[tuple[str, object]] = []
    bond = network.bond_of(iface.key)
    if iface.kind == "physical" and iface.mac and bond is None:
        match.append(("MACAddress", iface.mac))
    match.append(("Name", iface.ifname))
    lines += _section("Match", match)
    if iface.mtu:
        lines += _section("Link", [("MTUBytes", iface.mtu)])
    net: list[tuple[str, object]] = []
    if bond is not None:
        net.append(("Bond", bond.ifname))
        if dict(bond.bond.options if bond.bond else ()).get("primary") == iface.ifname:
            net.append(("PrimarySlave", "yes"))
        net += [("DHCP", "no"), ("LinkLocalAddressing", "no"), ("IPv6AcceptRA", "no")]
    else:
        net.append(("DHCP", _dhcp(iface)))
        net.append(("IPv6AcceptRA", "yes" if iface.accept_ra else "no"))
        if iface.has_l3:
            dns = tuple(dict.fromkeys((*iface.dns, *network.dns)))
            net += [("DNS", d) for d in dns]
            search = tuple(dict.fromkeys((*iface.search, *network.search)))
            if search:
                net.append(("Domains", " ".join(search)))
        else:
            net.append(("LinkLocalAddressing", "no"))
    for vlan in network.vlans_on(iface.key):
        net.append(("VLAN", vlan.ifname))
    lines += _section("Network", net)
    for address in iface.addresses:
        lines += _section("Address", [("Address", address.with_prefixlen)])
    for route in iface.routes:
        items: list[tuple[str, object]] = [("Destination", route.destination.with_prefixlen)]
        if route.gateway is not None:
            items.append(("Gateway", route.gateway))
            if not any(route.gateway in a.network for a in iface.addresses):
                items.append(("GatewayOnLink", "yes"))
        if route.metric is not None:
            items.append(("Metric", route.metric))
        lines += _section("Route", items)
    if iface.dhcp4 and iface.mtu is None:
        lines += _section("DHCPv4", [("UseMTU", "yes")])
    return "\n".join(lines)


def _netdev_file(iface: Interface) -> str:
    lines = ["# Written by metaboot from the instance's network data; rewritten per instance.", ""]
    head: list[tuple[str, object]] = [("Name", iface.ifname)]
    head.append(("Kind", "bond" if iface.bond is not None else "vlan"))
    if iface.mac:
        head.append(("MACAddress", iface.mac))
    if iface.mtu:
        head.append(("MTUBytes", iface.mtu))
    lines += _section("NetDev", head)
    if iface.bond is not None:
        items: list[tuple[str, object]] = [("Mode", iface.bond.mode)]
        for kernel, value in iface.bond.options:
            option = bonding.BY_KERNEL[kernel]
            if option.networkd is None:
                continue
            if option.milliseconds:
                value = f"{value}ms"
            elif kernel == "arp_ip_target":
                value = value.replace(",", " ")
            items.append((option.networkd, value))
        lines += _section("Bond", items)
    elif iface.vlan is not None:
        lines += _section("VLAN", [("Id", iface.vlan.vid)])
    return "\n".join(lines)


def render(network: Network) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for iface in network.interfaces:
        stem = f"{DIRECTORY}/10-metaboot-{iface.ifname}"
        if iface.kind != "physical":
            files[f"{stem}.netdev"] = _netdev_file(iface).encode()
        files[f"{stem}.network"] = _network_file(network, iface).encode()
    return files
