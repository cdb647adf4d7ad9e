"""Parsing network_data.json and NoCloud v1/v2 into the model."""

from __future__ import annotations

import pytest

from metaboot.guest.addresses import Interface, Network, ip_address
from metaboot.guest.network.model import (
    IPv6Mode,
    Route,
    parse_interface_address,
    parse_route_destination,
)
from metaboot.guest.network.nocloud import parse_network_config
from metaboot.guest.network.openstack import parse_network_data
from tests.guest.network.netcases import CASES, MAC


def net(text: str) -> Network:
    return parse_route_destination(text)


def ip_interface(text: str) -> Interface:
    return parse_interface_address(text)


def test_every_network_type_maps_to_its_mode() -> None:
    links = [{"id": f"l{i}", "type": "phy", "ethernet_mac_address": MAC[i]} for i in range(1, 7)]
    kinds = ["ipv4_dhcp", "ipv6_dhcp", "ipv6_slaac", "ipv6_dhcpv6-stateful",
             "ipv6_dhcpv6-stateless", "ipv6"]  # fmt: skip
    networks = [{"id": f"n{i}", "link": f"l{i}", "type": k, "network_id": "x"}
                for i, k in enumerate(kinds, start=1)]  # fmt: skip
    networks[-1].update(ip_address="2001:db8::9", netmask="ffff:ffff:ffff:ff00::")
    model, problems = parse_network_data({"links": links, "networks": networks, "services": []})
    assert problems == []
    by = model.by_key()
    assert by["l1"].dhcp4 and by["l1"].ipv6 is IPv6Mode.NONE
    assert by["l2"].ipv6 is IPv6Mode.STATEFUL  # legacy ipv6_dhcp: DHCPv6 and RA, as cloud-init
    assert by["l3"].ipv6 is IPv6Mode.SLAAC
    assert by["l4"].ipv6 is IPv6Mode.STATEFUL
    assert by["l5"].ipv6 is IPv6Mode.STATELESS
    assert by["l6"].addresses == (ip_interface("2001:db8::9/56"),)
    assert by["l6"].accept_ra is False


def test_nova_example() -> None:
    model, problems = parse_network_data(CASES["nova_example"])
    assert problems == []
    (iface,) = model.interfaces
    assert (iface.key, iface.kind, iface.mac, iface.mtu, iface.dhcp4) == (
        "tapcd9f6d46-4a", "physical", MAC[1], None, True)  # fmt: skip
    assert model.dns == (ip_address("8.8.8.8"),)


def test_bond_and_vlan() -> None:
    model, problems = parse_network_data(CASES["bond_vlan"])
    assert problems == []
    bond = model.by_key()["bond0"]
    assert bond.name == "bond0" and bond.bond is not None
    assert bond.bond.mode == "802.3ad"
    assert bond.bond.members == ("tap00000002-aa", "tap00000003-aa")
    assert dict(bond.bond.options) == {"miimon": "100", "xmit_hash_policy": "layer3+4"}
    vlan = model.by_key()["vlan100"]
    assert vlan.vlan is not None and (vlan.vlan.vid, vlan.vlan.link) == (100, "bond0")
    assert vlan.routes == (Route(net("0.0.0.0/0"), ip_address("172.16.100.1")),)


def test_routes_and_per_network_dns() -> None:
    model, _ = parse_network_data(CASES["mtu_routes"])
    first = model.interfaces[0]
    assert first.mtu == 1450
    assert [str(r.destination) for r in first.routes] == [
        "0.0.0.0/0", "10.30.0.0/16", "192.168.77.9/32"]  # fmt: skip
    assert [str(d) for d in first.dns] == ["203.0.113.53"]


@pytest.mark.parametrize(
    ("address", "netmask", "expected"),
    [
        ("10.0.0.5", "255.255.255.0", "10.0.0.5/24"),
        ("10.0.0.5", "24", "10.0.0.5/24"),
        ("10.0.0.5", 24, "10.0.0.5/24"),
        ("10.0.0.5/23", None, "10.0.0.5/23"),
        ("10.0.0.5", None, "10.0.0.5/32"),
        ("2001:db8::1", "ffff:ffff:ffff:ffff::", "2001:db8::1/64"),
        ("2001:db8::1", "/48", "2001:db8::1/48"),
    ],
)
def test_netmask_forms(address: str, netmask: object, expected: str) -> None:
    assert str(parse_interface_address(address, netmask)) == expected


@pytest.mark.parametrize(
    ("netmask", "why"),
    [
        ("255.0.255.0", "not contiguous"),
        ("255.255.255.256", "is not an address"),
        ("33", "out of range"),
        ("ffff::", "not an IPv4 netmask"),
    ],
)
def test_bad_netmasks_say_why(netmask: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_interface_address("10.0.0.5", netmask)


def test_bad_entries_are_reported_by_position_and_id() -> None:
    data = {
        "links": [
            {"id": "a", "type": "phy", "ethernet_mac_address": "FA-16-3E-00-00-01"},  # ok
            {"id": "b", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00"},
            {"id": "c", "type": "vlan", "vlan_id": 0, "vlan_link": "a", "vlan_mac_address": MAC[3]},
            {"id": "a", "type": "phy", "ethernet_mac_address": MAC[4]},
            {"id": "m", "type": "phy", "ethernet_mac_address": MAC[5], "mtu": 20},
        ],
        "networks": [
            {"id": "n0", "link": "a", "type": "ipv4", "ip_address": "10.1.1.1", "netmask": "x"},
            {"id": "n1", "link": "a", "type": "ipv5"},
            {"id": "n2", "link": "a", "type": "ipv4_dhcp",
             "routes": [{"network": "10.2.0.0", "netmask": "255.255.0.0", "gateway": "2001::1"}]},
        ],
        "services": [{"type": "dns", "address": "not-an-ip"}],
    }  # fmt: skip
    model, problems = parse_network_data(data)
    text = "\n".join(problems)
    assert "links[1] (id 'b'): ethernet_mac_address: 'fa:16:3e:00:00' is not a MAC" in text
    assert "links[2] (id 'c'): vlan_id 0 is not a VLAN id" in text
    assert "links[3] (id 'a'): duplicate id 'a'" in text
    assert "links[4] (id 'm'): mtu 20 is not a number from 68 to 65535" in text
    assert "networks[0] (id 'n0'): netmask 'x' is not an address or a prefix length" in text
    assert "networks[1] (id 'n1'): unknown network type 'ipv5'" in text
    assert "networks[2] (id 'n2') routes[0]: gateway 2001::1 is not IPv4" in text
    assert "services[0]: 'not-an-ip' does not appear to be an IPv4 or IPv6 address" in text
    assert [i.key for i in model.interfaces] == ["a", "m"]
    assert model.by_key()["a"].mac == MAC[1] and model.by_key()["a"].dhcp4


def test_vlan_on_a_skipped_parent_is_dropped_with_a_message() -> None:
    data = {
        "links": [
            {"id": "p", "type": "phy", "ethernet_mac_address": "nonsense"},
            {"id": "v", "type": "vlan", "vlan_id": 5, "vlan_link": "p"},
        ],
        "networks": [],
    }
    model, problems = parse_network_data(data)
    assert model.interfaces == ()
    assert any("vlan 'v': parent 'p' does not exist" in p for p in problems)


def test_v1() -> None:
    doc = {
        "version": 1,
        "config": [
            {"type": "physical", "name": "eth0", "mac_address": MAC[1], "mtu": 1400,
             "subnets": [{"type": "static", "address": "10.0.0.5", "netmask": "255.255.255.0",
                          "gateway": "10.0.0.1", "dns_nameservers": ["10.0.0.2"],
                          "dns_search": ["example.org"],
                          "routes": [{"network": "10.9.0.0", "netmask": "255.255.0.0",
                                      "gateway": "10.0.0.254"}]},
                         {"type": "static6", "address": "2001:db8::5/64"},
                         {"type": "ipv6_dhcpv6-stateless"}]},
            {"type": "physical", "name": "eth1", "mac_address": MAC[2]},
            {"type": "physical", "name": "eth2", "mac_address": MAC[3]},
            {"type": "bond", "name": "bond0", "bond_interfaces": ["eth1", "eth2"],
             "params": {"bond-mode": "active-backup", "bond-miimon": 100, "bond-primary": "eth1"},
             "subnets": [{"type": "dhcp4"}]},
            {"type": "vlan", "name": "bond0.7", "vlan_link": "bond0", "vlan_id": 7,
             "subnets": [{"type": "ipv6_slaac"}]},
            {"type": "nameserver", "address": ["192.0.2.53"], "search": ["corp"]},
            {"type": "route", "destination": "10.50.0.0/16", "gateway": "10.0.0.253"},
            {"type": "bridge", "name": "br0"},
        ],
    }  # fmt: skip
    model, problems = parse_network_config(doc)
    assert problems == [
        "network-config config[7] (name 'br0'): unknown or unsupported type 'bridge'; skipped"
    ]
    eth0 = model.by_key()["eth0"]
    assert [str(a) for a in eth0.addresses] == ["10.0.0.5/24", "2001:db8::5/64"]
    assert eth0.ipv6 is IPv6Mode.STATELESS and eth0.mtu == 1400
    assert [str(r.destination) for r in eth0.routes] == ["0.0.0.0/0", "10.9.0.0/16", "10.50.0.0/16"]
    assert eth0.search == ("example.org",)
    bond = model.by_key()["bond0"]
    assert bond.bond is not None and bond.bond.mode == "active-backup"
    assert dict(bond.bond.options) == {"miimon": "100", "primary": "eth1"}
    assert bond.dhcp4
    assert model.by_key()["bond0.7"].ipv6 is IPv6Mode.SLAAC
    assert [str(d) for d in model.dns] == ["192.0.2.53"] and model.search == ("corp",)


def test_v2() -> None:
    doc = {"network": {
        "version": 2,
        "ethernets": {
            "nic0": {"match": {"macaddress": MAC[1].upper()}, "set-name": "lan0",
                     "addresses": ["192.0.2.4/24", "2001:db8::4/64"], "gateway4": "192.0.2.1",
                     "gateway6": "2001:db8::1", "mtu": 9000,
                     "nameservers": {"addresses": ["192.0.2.53"], "search": ["lab"]},
                     "routes": [{"to": "10.0.0.0/8", "via": "192.0.2.254", "metric": 50}]},
            "e1": {"match": {"macaddress": MAC[2]}}, "e2": {"match": {"macaddress": MAC[3]}},
            "byname": {"dhcp4": True, "dhcp6": True},
        },
        "bonds": {"bond0": {"interfaces": ["e1", "e2"],
                            "parameters": {"mode": "balance-alb", "mii-monitor-interval": 100}}},
        "vlans": {"vl9": {"id": 9, "link": "bond0", "accept-ra": True}},
    }}  # fmt: skip
    model, problems = parse_network_config(doc)
    assert problems == []
    nic0 = model.by_key()["nic0"]
    assert nic0.mac == MAC[1] and nic0.name is None  # bound by MAC, not by set-name
    assert nic0.mtu == 9000 and [str(d) for d in nic0.dns] == ["192.0.2.53"]
    assert Route(net("10.0.0.0/8"), ip_address("192.0.2.254"), 50) in nic0.routes
    assert Route(net("::/0"), ip_address("2001:db8::1")) in nic0.routes
    byname = model.by_key()["byname"]
    assert byname.name == "byname" and byname.dhcp4 and byname.ipv6 is IPv6Mode.STATEFUL
    bond = model.by_key()["bond0"]
    assert bond.bond is not None and bond.bond.mode == "balance-alb"
    assert dict(bond.bond.options) == {"miimon": "100"}
    vlan = model.by_key()["vl9"]
    assert vlan.vlan is not None and vlan.vlan.vid == 9 and vlan.ipv6 is IPv6Mode.SLAAC


@pytest.mark.parametrize("doc", [None, 5, {"version": 3}, {"version": 1, "config": "x"},
                                 {"version": 2, "ethernets": ["eth0"]}])  # fmt: skip
def test_nocloud_garbage_is_reported(doc: object) -> None:
    model, problems = parse_network_config(doc)
    assert problems and model.interfaces == ()
