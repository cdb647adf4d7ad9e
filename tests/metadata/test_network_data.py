"""network_data.json derived from ports the way nova derives it from neutron."""

from __future__ import annotations

import json
import os
from typing import Any

from metaboot.metadata import build_tree, parse_spec
from tests.metadata.samples import UUID


def network(spec: dict[str, Any]) -> Any:
    doc = build_tree(parse_spec(spec)).lookup("/openstack/latest/network_data.json")
    assert doc is not None and doc.content_type == "text/plain"  # nova sets no JSON type here
    return json.loads(doc.render(os.urandom))


def test_static_dual_stack(spec: dict[str, Any]) -> None:
    assert network(spec) == {
        "links": [
            {
                "id": "tapcd9f6d46-4a",
                "vif_id": "cd9f6d46-4a3a-43ab-a466-994af9db96fc",
                "type": "phy",
                "mtu": 1450,
                "ethernet_mac_address": "fa:16:3e:00:00:01",
            }
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "tapcd9f6d46-4a",
                "ip_address": "10.0.0.5",
                "netmask": "255.255.255.0",
                "routes": [
                    {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                    {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"},
                ],
                "network_id": "net-a",
                "services": [{"type": "dns", "address": "10.0.0.2"}],
            },
            {
                "id": "network1",
                "type": "ipv6_slaac",
                "link": "tapcd9f6d46-4a",
                "ip_address": "2001:db8::5",
                "netmask": "ffff:ffff:ffff:ffff::",
                "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}],
                "network_id": "net-a",
                "services": [
                    {"type": "dns", "address": "2001:db8::2"},
                    {"type": "dns", "address": "10.0.0.2"},
                ],
            },
        ],
        "services": [
            {"type": "dns", "address": "10.0.0.2"},
            {"type": "dns", "address": "2001:db8::2"},
        ],
    }


def test_dhcp_subnet_has_no_address_and_no_mtu() -> None:
    doc = network(
        {
            "uuid": UUID,
            "ports": [
                {
                    "network_id": "n1",
                    "mac": "fa:16:3e:aa:bb:cc",
                    "devname": "tapcd9f6d46-4a",
                    "type": "bridge",
                    "mtu": 1500,
                    "fixed_ips": ["10.1.0.4"],
                    "subnets": [{"cidr": "10.1.0.0/24", "dhcp": True, "dns": ["8.8.8.8"]}],
                },
                {"network_id": "n2", "mac": "fa:16:3e:aa:bb:cd", "type": "vhostuser"},
            ],
        }
    )
    # nova's documented example, shape for shape.
    assert doc["links"][0]["id"] == "tapcd9f6d46-4a"
    assert doc["links"][0]["type"] == "bridge"
    assert doc["links"][0]["mtu"] is None
    assert len(doc["links"]) == 1  # a port without subnets has no link
    assert doc["networks"] == [
        {"id": "network0", "type": "ipv4_dhcp", "link": "tapcd9f6d46-4a", "network_id": "n1"}
    ]
    assert doc["services"] == [{"type": "dns", "address": "8.8.8.8"}]


def test_no_ports_is_an_empty_document() -> None:
    assert network({"uuid": UUID}) == {}


def test_verbatim_network_data_wins(spec: dict[str, Any]) -> None:
    given = {
        "links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "fa:16:3e:01:02:03"}],
        "networks": [],
        "services": [],
    }
    spec["network_data"] = given
    assert network(spec) == given


def test_only_first_subnet_per_family_with_an_address() -> None:
    doc = network(
        {
            "uuid": UUID,
            "ports": [
                {
                    "network_id": "n",
                    "mac": "fa:16:3e:00:00:0a",
                    "fixed_ips": ["10.0.1.9"],
                    "subnets": [{"cidr": "10.0.0.0/24"}, {"cidr": "10.0.1.0/24"}],
                },
            ],
        }
    )
    assert doc["networks"] == []  # the first IPv4 subnet holds none of the port's addresses
    assert len(doc["links"]) == 1
