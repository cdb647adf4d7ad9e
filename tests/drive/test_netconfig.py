"""network_data.json → v1: names, link kinds, and errors that name the culprit."""

from __future__ import annotations

from typing import Any

import pytest

from metaboot.drive.netconfig import network_config_v1
from metaboot.errors import NetworkConfigError
from tests.drive.specs import bond_vlan_network_data


def test_empty_or_linkless_data_gives_no_config() -> None:
    assert network_config_v1({}) is None
    assert network_config_v1({"links": [], "networks": [], "services": []}) is None


def test_bond_and_vlan_names_follow_their_parents() -> None:
    config = network_config_v1(bond_vlan_network_data())
    assert config is not None and config["version"] == 1
    by_name = {entry.get("name"): entry for entry in config["config"]}
    assert by_name["eth0"]["mac_address"] == "fa:16:3e:00:00:01"  # lower-cased
    assert by_name["bond0"]["bond_interfaces"] == ["eth0", "eth1"]
    assert by_name["bond0"]["params"] == {
        "bond_mode": "802.3ad",
        "bond_xmit_hash_policy": "layer3+4",
        "bond_miimon": 100,
    }
    assert by_name["bond0"]["accept-ra"] is True
    vlan = by_name["bond0.42"]
    assert (vlan["type"], vlan["vlan_link"], vlan["vlan_id"]) == ("vlan", "bond0", 42)
    assert vlan["subnets"] == [
        {
            "type": "static",
            "address": "192.0.2.10",
            "netmask": "255.255.255.0",
            "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}],
        }
    ]
    assert config["config"][-1] == {"type": "nameserver", "address": ["192.0.2.53"]}


def _one_link(**network: Any) -> dict[str, Any]:
    return {
        "links": [{"id": "tap0", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:09"}],
        "networks": [{"id": "n", "link": "tap0", **network}],
    }


@pytest.mark.parametrize(
    ("kind", "v1"),
    [
        ("ipv4_dhcp", "dhcp4"),
        ("ipv6_dhcp", "dhcp6"),
        ("ipv6_slaac", "ipv6_slaac"),
        ("ipv6_dhcpv6-stateless", "ipv6_dhcpv6-stateless"),
    ],
)
def test_dynamic_network_types(kind: str, v1: str) -> None:
    config = network_config_v1(_one_link(type=kind))
    assert config is not None
    assert config["config"][0]["subnets"] == [{"type": v1}]
    assert config["config"][0]["type"] == "physical"  # ovs, tap, phy… are NICs to the guest


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_one_link(type="ipv5"), "networks\\[0\\]: unknown network type 'ipv5'"),
        (_one_link(type="ipv4"), "static network without ip_address"),
        ({"links": [{"type": "phy"}]}, "links\\[0\\]: must have a string id"),
        ({"links": [{"id": "a", "type": "phy"}]}, "needs ethernet_mac_address"),
        (
            {"links": [{"id": "v", "type": "vlan", "vlan_link": "nope", "vlan_id": 1}]},
            "vlan_link names no known link",
        ),
        (
            {"links": [{"id": "b", "type": "bond", "bond_links": ["x"]}]},
            "bond_links names an unknown link",
        ),
    ],
)
def test_bad_network_data_names_the_problem(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(NetworkConfigError, match=problem):
        network_config_v1(data)
