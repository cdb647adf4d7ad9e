"""network_data.json → cloud-init network config version 1, for a NoCloud seed.

cloud-init reads a config drive's network_data.json itself, naming each NIC after the system
interface with its MAC. A NoCloud seed carries ``network-config`` instead, written before the
guest exists, so the names here are chosen: ``eth0``, ``eth1``… in link order for physical
links (cloud-init renames the NIC with that MAC to match), ``bond0``… for bonds and
``<parent>.<vlan id>`` for VLANs. Everything else follows the meaning cloud-init gives the same
network_data.json, so a guest ends up with the same addresses, routes and nameservers whichever
it reads. Fields cloud-init would ignore are left out; the guest-side engineer owns the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from metaboot.errors import NetworkConfigError

# network_data.json network type -> v1 subnet type
_SUBNET_TYPES = {
    "ipv4": "static",
    "static": "static",
    "ipv6": "static6",
    "static6": "static6",
    "ipv4_dhcp": "dhcp4",
    "ipv6_dhcp": "dhcp6",
    "ipv6_slaac": "ipv6_slaac",
    "ipv6_dhcpv6-stateless": "ipv6_dhcpv6-stateless",
    "ipv6_dhcpv6-stateful": "ipv6_dhcpv6-stateful",
}
_STATIC = ("static", "static6")


def _subnet(network: Mapping[str, Any], where: str) -> tuple[dict[str, Any], bool | None]:
    """One v1 subnet, and what it means for the interface's accept-ra (None: no opinion)."""
    kind = network.get("type")
    subnet_type = _SUBNET_TYPES.get(kind) if isinstance(kind, str) else None
    if subnet_type is None:
        raise NetworkConfigError(f"network_data.json {where}: unknown network type {kind!r}")
    subnet: dict[str, Any] = {"type": subnet_type}
    if subnet_type in _STATIC:
        address = network.get("ip_address")
        if not isinstance(address, str):
            raise NetworkConfigError(
                f"network_data.json {where}: static network without ip_address"
            )
        subnet["address"] = address
    if isinstance(network.get("netmask"), str):
        subnet["netmask"] = network["netmask"]
    routes = [
        {"network": r["network"], "netmask": r["netmask"], "gateway": r["gateway"]}
        for r in network.get("routes") or ()
        if isinstance(r, Mapping) and {"network", "netmask", "gateway"} <= set(r)
    ]
    if routes:
        subnet["routes"] = routes
    accept_ra: bool | None = None
    if subnet_type == "static6":
        accept_ra = False
    elif kind in ("ipv6_dhcp", "ipv6_dhcpv6-stateful"):
        accept_ra = True
    return subnet, accept_ra


def network_config_v1(network_data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The v1 network config for ``network_data`` (None when it describes no link)."""
    links: Sequence[Any] = network_data.get("links") or ()
    networks: Sequence[Any] = network_data.get("networks") or ()
    services: Sequence[Any] = network_data.get("services") or ()
    if not links:
        return None
    names: dict[str, str] = {}
    physical = bonds = 0
    for i, link in enumerate(links):
        if not isinstance(link, Mapping) or not isinstance(link.get("id"), str):
            raise NetworkConfigError(f"network_data.json links[{i}]: must have a string id")
        if link.get("type") == "bond":
            names[link["id"]] = f"bond{bonds}"
            bonds += 1
        elif link.get("type") != "vlan":
            names[link["id"]] = link.get("name") or f"eth{physical}"
            physical += 1
    for link in links:  # VLANs last: their names build on their parent's
        if link.get("type") == "vlan":
            parent = names.get(link.get("vlan_link", ""))
            if parent is None:
                raise NetworkConfigError(
                    f"network_data.json link {link['id']!r}: vlan_link names no known link"
                )
            names[link["id"]] = f"{parent}.{link.get('vlan_id')}"

    config: list[dict[str, Any]] = []
    for i, link in enumerate(links):
        entry: dict[str, Any] = {"name": names[link["id"]]}
        kind = link.get("type")
        mac = link.get("ethernet_mac_address")
        if kind == "vlan":
            entry |= {
                "type": "vlan",
                "vlan_link": names[link["vlan_link"]],
                "vlan_id": link.get("vlan_id"),
            }
            mac = link.get("vlan_mac_address") or mac
        elif kind == "bond":
            members = [names.get(member) for member in link.get("bond_links") or ()]
            if None in members:
                raise NetworkConfigError(
                    f"network_data.json link {link['id']!r}: bond_links names an unknown link"
                )
            params = {k: v for k, v in link.items() if k.startswith("bond") and k != "bond_links"}
            entry |= {"type": "bond", "bond_interfaces": members, "params": params}
        else:
            entry["type"] = "physical"
            if not isinstance(mac, str):
                raise NetworkConfigError(
                    f"network_data.json links[{i}]: a physical link needs ethernet_mac_address"
                )
        if isinstance(mac, str):
            entry["mac_address"] = mac.lower()
        if isinstance(link.get("mtu"), int):
            entry["mtu"] = link["mtu"]
        subnets = []
        for j, network in enumerate(networks):
            if isinstance(network, Mapping) and network.get("link") == link["id"]:
                subnet, accept_ra = _subnet(network, f"networks[{j}]")
                subnets.append(subnet)
                if accept_ra is not None:
                    entry["accept-ra"] = accept_ra
        entry["subnets"] = subnets
        config.append(entry)
    nameservers = [
        s["address"]
        for s in services
        if isinstance(s, Mapping) and s.get("type") == "dns" and isinstance(s.get("address"), str)
    ]
    if nameservers:
        config.append({"type": "nameserver", "address": nameservers})
    return {"version": 1, "config": config}
