"""NetworkManager keyfiles (RHEL 9 and later, Fedora, and RHEL 8 / CentOS Stream 8 too).

Connection UUIDs are derived from the interface name, so a re-render for the same interface
keeps its UUID and ``nmcli`` sees one connection, not a new one each boot.
"""

from __future__ import annotations

import uuid

from metaboot.guest.network.model import Interface, IPv6Mode, Network

NAME = "network-manager"
DIRECTORY = "/etc/NetworkManager/system-connections"
_NAMESPACE = uuid.UUID("5f1f3a0e-7d6c-4b0a-9d55-6d6574616274")


def connection_uuid(ifname: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"metaboot {ifname}"))


def _section(title: str, items: list[tuple[str, object]]) -> list[str]:
    return [f"[{title}]", *(f"{k}={v}" for k, v in items), ""]


def _list(values: object) -> str:
    assert isinstance(values, list | tuple)
    return "".join(f"{v};" for v in values)


def _ip_section(network: Network, iface: Interface, version: int) -> list[tuple[str, object]]:
    addresses = iface.family_addresses(version)
    routes = iface.family_routes(version)
    if version == 4:
        method = "auto" if iface.dhcp4 else ("manual" if addresses else "disabled")
    elif iface.ipv6 is not IPv6Mode.NONE:
        method = "auto"
    else:
        method = "manual" if addresses else "ignore"
    items: list[tuple[str, object]] = [("method", method)]
    if version == 6 and method != "ignore":
        items.append(("addr-gen-mode", "eui64"))
    for index, address in enumerate(addresses, start=1):
        items.append((f"address{index}", address.with_prefixlen))
    gateway = next((r for r in routes if r.is_default and r.metric is None and r.gateway), None)
    if gateway is not None:
        items.append(("gateway", gateway.gateway))
    index = 0
    for route in routes:
        if route is gateway:
            continue
        index += 1
        value = route.destination.with_prefixlen
        if route.gateway is not None or route.metric is not None:
            value += f",{route.gateway or ('::' if version == 6 else '0.0.0.0')}"
        if route.metric is not None:
            value += f",{route.metric}"
        items.append((f"route{index}", value))
        if route.gateway is not None and not any(route.gateway in a.network for a in addresses):
            items.append((f"route{index}_options", "onlink=true"))
    if method in ("auto", "manual"):
        dns = [d for d in dict.fromkeys((*iface.dns, *network.dns)) if d.version == version]
        if dns:
            items.append(("dns", _list([str(d) for d in dns])))
        search = list(dict.fromkeys((*iface.search, *network.search)))
        ipv4_on = iface.dhcp4 or bool(iface.family_addresses(4))
        if search and (version == 4 or not ipv4_on):
            items.append(("dns-search", _list(search)))
        # One family failing (no DHCPv6 answer) must not tear down the other.
        items.append(("may-fail", "true"))
    return items


def _keyfile(network: Network, iface: Interface) -> str:
    kind = {"physical": "ethernet", "bond": "bond", "vlan": "vlan"}[iface.kind]
    conn: list[tuple[str, object]] = [
        ("id", f"metaboot {iface.ifname}"),
        ("uuid", connection_uuid(iface.ifname)),
        ("type", kind),
        ("interface-name", iface.ifname),
        ("autoconnect", "true"),
    ]
    bond = network.bond_of(iface.key)
    if bond is not None:
        conn += [("master", bond.ifname), ("slave-type", "bond")]
    lines = ["# Written by metaboot from the instance's network data; rewritten per instance.", ""]
    lines += _section("connection", conn)
    ethernet: list[tuple[str, object]] = []
    if iface.kind == "physical" and iface.mac:
        ethernet.append(("mac-address", iface.mac.upper()))
    elif iface.mac:
        ethernet.append(("cloned-mac-address", iface.mac.upper()))
    if iface.mtu:
        ethernet.append(("mtu", iface.mtu))
    if ethernet:
        lines += _section("ethernet", ethernet)
    if iface.bond is not None:
        lines += _section("bond", [("mode", iface.bond.mode), *iface.bond.options])
    if iface.vlan is not None:
        parent = network.by_key()[iface.vlan.link].ifname
        lines += _section("vlan", [("id", iface.vlan.vid), ("parent", parent)])
    if bond is None:
        lines += _section("ipv4", _ip_section(network, iface, 4))
        lines += _section("ipv6", _ip_section(network, iface, 6))
    return "\n".join(lines)


def render(network: Network) -> dict[str, bytes]:
    return {
        f"{DIRECTORY}/metaboot-{i.ifname}.nmconnection": _keyfile(network, i).encode()
        for i in network.interfaces
    }
