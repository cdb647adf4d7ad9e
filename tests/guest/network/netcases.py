"""The case set: network_data.json documents as nova (and Ironic, for bonds) write them, with
the MACs of the NICs the guest has."""

from __future__ import annotations

from typing import Any

MAC = {i: f"fa:16:3e:00:00:{i:02x}" for i in range(1, 8)}
# NIC name -> MAC, as the guest's /sys/class/net has them.
NICS = {"ens3": MAC[1], "ens4": MAC[2], "ens5": MAC[3]}


def _link(i: int, *, mtu: int | None = None, kind: str = "ovs") -> dict[str, Any]:
    return {
        "ethernet_mac_address": MAC[i],
        "id": f"tap0000000{i}-aa",
        "mtu": mtu,
        "type": kind,
        "vif_id": f"1d2b6f5c-0000-4000-8000-00000000000{i}",
    }


def _net(n: int, link: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"network{n}",
        "link": f"tap0000000{link}-aa",
        "network_id": f"4f1e9c2a-0000-4000-8000-00000000000{n}",
        "type": kind,
        **extra,
    }


def _default(gw: str) -> dict[str, str]:
    if ":" in gw:
        return {"network": "::", "netmask": "::", "gateway": gw}
    return {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": gw}


def _dns(*addresses: str) -> list[dict[str, str]]:
    return [{"type": "dns", "address": a} for a in addresses]


CASES: dict[str, dict[str, Any]] = {
    # nova doc/source/user/metadata.rst, verbatim apart from the MAC.
    "nova_example": {
        "links": [
            {
                "ethernet_mac_address": MAC[1],
                "id": "tapcd9f6d46-4a",
                "mtu": None,
                "type": "bridge",
                "vif_id": "cd9f6d46-4a3a-43ab-a466-994af9db96fc",
            }
        ],
        "networks": [
            {
                "id": "network0",
                "link": "tapcd9f6d46-4a",
                "network_id": "99e88329-f20d-4741-9593-25bf07847b16",
                "type": "ipv4_dhcp",
            }
        ],
        "services": _dns("8.8.8.8"),
    },
    "dual_stack": {
        "links": [_link(1, mtu=1500)],
        "networks": [
            _net(
                0,
                1,
                "ipv4",
                ip_address="192.0.2.10",
                netmask="255.255.255.0",
                routes=[_default("192.0.2.1")],
                services=_dns("192.0.2.53"),
            ),
            _net(
                1,
                1,
                "ipv6",
                ip_address="2001:db8:10::10",
                netmask="ffff:ffff:ffff:ffff::",
                routes=[_default("2001:db8:10::1")],
                services=_dns("2001:db8:10::53"),
            ),
        ],
        "services": _dns("192.0.2.53", "2001:db8:10::53"),
    },
    "several_nics": {
        "links": [_link(1), _link(2), _link(3)],
        "networks": [
            _net(
                0,
                1,
                "ipv4",
                ip_address="198.51.100.20",
                netmask="255.255.255.0",
                routes=[_default("198.51.100.1")],
                services=_dns("198.51.100.2"),
            ),
            _net(1, 2, "ipv4", ip_address="10.20.0.5", netmask="255.255.0.0", routes=[]),
            _net(2, 3, "ipv4_dhcp"),
        ],
        "services": _dns("198.51.100.2"),
    },
    "bond_vlan": {
        "links": [
            _link(1, kind="phy"),
            _link(2, kind="phy"),
            _link(3, kind="phy"),
            {
                "id": "bond0",
                "type": "bond",
                "ethernet_mac_address": MAC[4],
                "bond_mode": "802.3ad",
                "bond_links": ["tap00000002-aa", "tap00000003-aa"],
                "bond_miimon": 100,
                "bond_xmit_hash_policy": "layer3+4",
            },
            {
                "id": "vlan100",
                "type": "vlan",
                "vlan_id": 100,
                "vlan_link": "bond0",
                "vlan_mac_address": MAC[4],
            },
        ],
        "networks": [
            _net(0, 1, "ipv4_dhcp"),
            {
                "id": "network1",
                "link": "vlan100",
                "network_id": "n-vlan",
                "type": "ipv4",
                "ip_address": "172.16.100.5",
                "netmask": "255.255.255.0",
                "routes": [_default("172.16.100.1")],
                "services": _dns("172.16.100.2"),
            },
        ],
        "services": _dns("172.16.100.2"),
    },
    "ipv6_slaac": {
        "links": [_link(1), _link(2)],
        "networks": [
            _net(0, 1, "ipv4_dhcp"),
            _net(1, 1, "ipv6_slaac"),
            _net(2, 2, "ipv6_dhcpv6-stateless"),
        ],
        "services": _dns("2001:db8::53"),
    },
    "dhcp_only": {
        "links": [_link(1), _link(2)],
        "networks": [_net(0, 1, "ipv4_dhcp"), _net(1, 2, "ipv4_dhcp"), _net(2, 2, "ipv6_dhcp")],
        "services": [],
    },
    "mtu_routes": {
        "links": [_link(1, mtu=1450), _link(2, mtu=9000)],
        "networks": [
            _net(
                0,
                1,
                "ipv4",
                ip_address="203.0.113.7",
                netmask="255.255.255.128",
                routes=[
                    _default("203.0.113.1"),
                    {"network": "10.30.0.0", "netmask": "255.255.0.0", "gateway": "203.0.113.126"},
                    {
                        "network": "192.168.77.9",
                        "netmask": "255.255.255.255",
                        "gateway": "203.0.113.126",
                    },
                ],
                services=_dns("203.0.113.53"),
            ),
            _net(
                1,
                2,
                "ipv4",
                ip_address="10.99.0.7",
                netmask="255.255.255.0",
                routes=[{"network": "10.98.0.0", "netmask": "255.255.0.0", "gateway": "10.99.0.1"}],
            ),
        ],
        "services": _dns("203.0.113.53"),
    },
}
