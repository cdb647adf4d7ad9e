from __future__ import annotations

from typing import Any

import pytest

from tests.metadata.samples import KEY1, KEY2, UUID


@pytest.fixture
def spec() -> dict[str, Any]:
    """A rich spec touching every field; tests copy and adjust it."""
    return {
        "uuid": UUID,
        "name": "Web Server 1",
        "hostname": "web-1.example.internal",
        "project_id": "proj-42",
        "availability_zone": "zone-a",
        "launch_index": 0,
        "flavor": "m1.small",
        "image_id": "1f5c0b2e-7a3d-4a5b-8c9d-0e1f2a3b4c5d",
        "keys": [
            {"name": "alice", "type": "ssh", "data": KEY1},
            {"name": "bob", "data": KEY2},
        ],
        "meta": {"role": "web", "tier": "front"},
        "user_data": "#cloud-config\nhostname: web-1\n",
        "vendor_data": {"site": "dc1"},
        "security_groups": ["default", "web"],
        "devices": [
            {
                "type": "nic",
                "bus": "pci",
                "address": "0000:00:02.0",
                "mac": "fa:16:3e:00:00:01",
                "tags": ["frontend"],
                "vlan": 100,
            },
            {
                "type": "disk",
                "bus": "ide",
                "address": "0:0",
                "serial": "disk-vol-1",
                "path": "/dev/sda",
                "tags": ["database"],
            },
            {"type": "share", "share_id": "share-1", "tag": "data"},
        ],
        "files": [{"path": "/etc/motd", "content": "hello\n"}],
        "ports": [
            {
                "id": "cd9f6d46-4a3a-43ab-a466-994af9db96fc",
                "network_id": "net-a",
                "mac": "FA:16:3E:00:00:01",
                "fixed_ips": ["10.0.0.5", "2001:db8::5"],
                "floating_ip": "203.0.113.7",
                "mtu": 1450,
                "subnets": [
                    {
                        "cidr": "10.0.0.0/24",
                        "gateway": "10.0.0.1",
                        "dns": ["10.0.0.2"],
                        "routes": [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}],
                    },
                    {
                        "cidr": "2001:db8::/64",
                        "gateway": "2001:db8::1",
                        "ipv6_mode": "slaac",
                        "dns": ["2001:db8::2", "10.0.0.2"],
                    },
                ],
            }
        ],
        "dedicated_cpus": [3, 1],
    }
