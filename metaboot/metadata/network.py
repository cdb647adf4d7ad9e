"""network_data.json from an instance's ports, derived the way nova derives it from neutron.

One link per port that has a subnet; one network entry for the port's first IPv4 subnet and one
for its first IPv6 subnet that hold one of its fixed addresses; DNS servers collected into the
top-level ``services`` without duplicates. Key order follows nova's, so the JSON bytes match.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from metaboot.metadata.instance import Instance, Port, Subnet

_LEGACY_EXPOSED_VIF_TYPES = ("bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif")


def network_data(instance: Instance) -> dict[str, Any]:
    """The instance's network_data.json document (verbatim when the spec gave one)."""
    if instance.network_data is not None:
        return dict(instance.network_data)
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    if not instance.ports:
        return {}
    net_num = -1
    for ifc_num, port in enumerate(instance.ports):
        if not port.subnets:
            continue
        first = {v: next((s for s in port.subnets if s.version == v), None) for v in (4, 6)}
        link = _link(port, ifc_num)
        links.append(link)
        for version in (4, 6):
            subnet = first[version]
            if subnet is None:
                continue
            ips = _ips_in(port, subnet)
            if not ips:
                continue
            net_num += 1
            networks.append(_network(port, subnet, ips[0], version, net_num, link["id"]))
            for dns in _dns(subnet):
                if dns not in services:
                    services.append(dns)
    return {"links": links, "networks": networks, "services": services}


def _link(port: Port, ifc_num: int) -> dict[str, Any]:
    link_id = port.devname or (f"tap{port.id[:11]}" if port.id else f"interface{ifc_num}")
    return {
        "id": link_id,
        "vif_id": port.id,
        "type": port.vif_type if port.vif_type in _LEGACY_EXPOSED_VIF_TYPES else "phy",
        # With DHCP the MTU reaches the guest through DHCP, so nova leaves it out.
        "mtu": None if any(s.dhcp for s in port.subnets) else port.mtu,
        "ethernet_mac_address": port.mac,
    }


def _ips_in(port: Port, subnet: Subnet) -> list[str]:
    net = ipaddress.ip_network(subnet.cidr)
    return [ip for ip in port.fixed_ips if ipaddress.ip_address(ip) in net]


def _network(
    port: Port, subnet: Subnet, ip: str, version: int, net_num: int, link_id: str
) -> dict[str, Any]:
    suffix = ""
    if subnet.ipv6_mode is not None:
        suffix = f"_{subnet.ipv6_mode}"
    elif subnet.dhcp:
        return {
            "id": f"network{net_num}",
            "type": f"ipv{version}_dhcp",
            "link": link_id,
            "network_id": port.network_id,
        }
    net = ipaddress.ip_network(subnet.cidr)
    routes: list[dict[str, str]] = []
    if subnet.gateway:
        any_net = "0.0.0.0" if version == 4 else "::"
        routes.append({"network": any_net, "netmask": any_net, "gateway": subnet.gateway})
    for route in subnet.routes:
        dest = ipaddress.ip_network(route.destination)
        routes.append(
            {
                "network": str(dest.network_address),
                "netmask": str(dest.netmask),
                "gateway": route.nexthop,
            }
        )
    return {
        "id": f"network{net_num}",
        "type": f"ipv{version}{suffix}",
        "link": link_id,
        "ip_address": ip,
        "netmask": str(net.netmask),
        "routes": routes,
        "network_id": port.network_id,
        "services": _dns(subnet),
    }


def _dns(subnet: Subnet) -> list[dict[str, str]]:
    return [{"type": "dns", "address": address} for address in subnet.dns]
