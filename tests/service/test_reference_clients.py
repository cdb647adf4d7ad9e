"""Debian's cloud-init, the reference client, reads the running service over loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from metaboot.registry import Registry
from tests.reference import available, run_cloudinit, unbytes
from tests.service.harness import Running, instance

pytestmark = pytest.mark.cloudinit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNsb3VkaW5pdC1yZWZlcmVuY2U alice@example"
USER_DATA = "#cloud-config\nhostname: ref-1\nruncmd: [echo hi]\n"


def _reference_instance() -> dict[str, object]:
    return {
        "name": "Reference VM",
        "hostname": "ref-1",
        "availability_zone": "zone-a",
        "keys": [{"name": "alice", "type": "ssh", "data": KEY}],
        "meta": {"role": "ref"},
        "user_data": USER_DATA,
        "security_groups": ["default", "web"],
        "flavor": "m1.tiny",
        "ports": [
            {
                "network_id": "net-ref",
                "mac": "fa:16:3e:00:00:07",
                "fixed_ips": ["127.0.0.1"],
                "mtu": 1400,
                "subnets": [
                    {
                        "cidr": "127.0.0.0/8",
                        "gateway": "127.0.0.254",
                        "dns": ["127.0.0.53"],
                        "routes": [{"destination": "192.168.0.0/16", "nexthop": "127.0.0.253"}],
                    }
                ],
            }
        ],
    }


def test_cloudinit_openstack_and_ec2_readers(
    registry: Registry, db_url: str, start_service: Callable[..., Running], tmp_path: Path
) -> None:
    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    me = instance(**_reference_instance())  # type: ignore[arg-type]
    registry.add(me)
    static = tmp_path / "vendor.json"
    static.write_text(json.dumps({"cloud-init": "#cloud-config\nruncmd: [vendor]\n"}))
    svc = start_service(db_url, static_vendor_data=json.loads(static.read_text()))
    base = svc.url
    result = unbytes(
        run_cloudinit(
            f"""
from cloudinit.sources.helpers import ec2, openstack
point_ec2_at({base!r})
r = openstack.MetadataReader({base!r}).read_v2()
md = r["metadata"]
net = openstack.convert_net_json(r["networkdata"], known_macs={{"fa:16:3e:00:00:07": "eth0"}})
e = ec2.get_instance_metadata(metadata_address={base!r})
u = ec2.get_instance_userdata(metadata_address={base!r})
result = {{
    "version": r["version"], "instance_id": md["instance-id"], "hostname": md["local-hostname"],
    "keys": md["public_keys"], "userdata": r["userdata"], "vendordata": r["vendordata"],
    "ec2_from_os": r["ec2-metadata"], "net": net, "ec2": dict(e), "ec2_userdata": u,
    "az": md["availability_zone"], "meta": md["meta"],
}}
"""
        )
    )
    assert result["version"] == 2
    assert result["instance_id"] == me.uuid
    assert result["hostname"] == "ref-1"
    assert result["keys"] == {"alice": KEY}
    assert result["userdata"] == USER_DATA.encode()
    assert result["vendordata"] == {"cloud-init": "#cloud-config\nruncmd: [vendor]\n"}
    assert result["az"] == "zone-a" and result["meta"] == {"role": "ref"}
    # network config, as cloud-init turns network_data.json into its own model
    config = result["net"]["config"]
    phys = next(c for c in config if c["type"] == "physical")
    assert phys["name"] == "eth0" and phys["mtu"] == 1400
    subnet = phys["subnets"][0]
    assert subnet["type"] == "static" and subnet["address"] == "127.0.0.1"
    assert subnet["routes"] == [
        {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "127.0.0.254"},
        {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "127.0.0.253"},
    ]
    assert [c["address"] for c in config if c["type"] == "nameserver"] == ["127.0.0.53"]
    # EC2 fields, through both readers
    for ec2 in (result["ec2"], result["ec2_from_os"]):
        assert ec2["instance-id"] == me.ec2_instance_id
        assert ec2["hostname"] == "ref-1"
        assert ec2["local-hostname"] == "ref-1"
        assert ec2["local-ipv4"] == "127.0.0.1"
        assert ec2["instance-type"] == "m1.tiny"
        assert ec2["placement"] == {"availability-zone": "zone-a"}
        assert ec2["public-keys"] == {"alice": KEY}
        assert ec2["security-groups"] == ["default", "web"]
        assert ec2["ami-launch-index"] == "0"
    assert result["ec2_userdata"] == USER_DATA.encode()
