"""Instance specs for drive tests: one rich enough to touch every drive file."""

from __future__ import annotations

from typing import Any

UUID = "6f1c7d2a-0b9e-4c8d-a1e2-93b4c5d6e7f8"
KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDriveKeyOne carol@example"
KEY2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDriveKeyTwo dave@example"
USER_DATA = "#cloud-config\nhostname: drive-1\nruncmd:\n  - [echo, hello]\n"


def rich_spec() -> dict[str, Any]:
    return {
        "uuid": UUID,
        "name": "Drive Test 1",
        "hostname": "drive-1",
        "project_id": "proj-7",
        "availability_zone": "zone-b",
        "flavor": "m1.tiny",
        "image_id": "7e0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "keys": [{"name": "carol", "data": KEY1}, {"name": "dave", "data": KEY2}],
        "meta": {"role": "db"},
        "user_data": USER_DATA,
        "vendor_data": {"site": "dc2"},
        "files": [
            {"path": "/etc/motd", "content": "welcome\n"},
            {"path": "/etc/app/config.ini", "content": "[app]\nmode=prod\n"},
        ],
        "ports": [
            {
                "id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "network_id": "net-a",
                "mac": "fa:16:3e:11:22:33",
                "fixed_ips": ["10.1.0.5", "2001:db8:1::5"],
                "mtu": 1450,
                "subnets": [
                    {
                        "cidr": "10.1.0.0/24",
                        "gateway": "10.1.0.1",
                        "dns": ["10.1.0.2"],
                        "routes": [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.254"}],
                    },
                    {
                        "cidr": "2001:db8:1::/64",
                        "gateway": "2001:db8:1::1",
                        "dns": ["2001:db8::53"],
                    },
                ],
            },
            {
                "id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e",
                "network_id": "net-b",
                "mac": "fa:16:3e:44:55:66",
                "fixed_ips": ["172.16.0.9"],
                "subnets": [{"cidr": "172.16.0.0/24", "dhcp": True}],
            },
        ],
    }


def bond_vlan_network_data() -> dict[str, Any]:
    """A verbatim network_data.json with a bond over two NICs and a VLAN on the bond."""
    return {
        "links": [
            {"id": "nic0", "type": "phy", "ethernet_mac_address": "FA:16:3E:00:00:01", "mtu": 9000},
            {"id": "nic1", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:02", "mtu": 9000},
            {
                "id": "bond0",
                "type": "bond",
                "bond_links": ["nic0", "nic1"],
                "bond_mode": "802.3ad",
                "bond_xmit_hash_policy": "layer3+4",
                "bond_miimon": 100,
                "ethernet_mac_address": "fa:16:3e:00:00:01",
                "mtu": 9000,
            },
            {
                "id": "vlan42",
                "type": "vlan",
                "vlan_link": "bond0",
                "vlan_id": 42,
                "vlan_mac_address": "fa:16:3e:00:00:01",
            },
        ],
        "networks": [
            {
                "id": "n0",
                "type": "ipv4",
                "link": "vlan42",
                "ip_address": "192.0.2.10",
                "netmask": "255.255.255.0",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}],
                "network_id": "x",
            },
            {"id": "n1", "type": "ipv6_dhcpv6-stateful", "link": "bond0", "network_id": "y"},
        ],
        "services": [{"type": "dns", "address": "192.0.2.53"}],
    }
