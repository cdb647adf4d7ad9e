"""Debian's cloud-init reads the rendered documents (as a drive directory) unchanged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from metaboot.metadata import build_tree, parse_spec
from tests.metadata.samples import KEY1, KEY2, UUID
from tests.reference import available, run_cloudinit, unbytes

pytestmark = pytest.mark.cloudinit


def test_config_drive_reader_gets_everything(spec: dict[str, Any], tmp_path: Path) -> None:
    assert available(), "Debian's cloud-init is missing: run scripts/setup-system"
    for path, body in build_tree(parse_spec(spec)).drive_files(os.urandom).items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    result = unbytes(
        run_cloudinit(
            f"""
from cloudinit.sources.helpers import openstack
r = openstack.ConfigDriveReader({str(tmp_path)!r}).read_v2()
md = r["metadata"]
net = openstack.convert_net_json(r["networkdata"], known_macs={{"fa:16:3e:00:00:01": "eth0"}})
result = {{
    "version": r["version"], "instance_id": md["instance-id"], "hostname": md["local-hostname"],
    "keys": md["public_keys"], "userdata": r["userdata"], "files": r["files"],
    "ec2_id": r["ec2-metadata"]["instance-id"], "net": net,
}}
"""
        )
    )
    assert result["version"] == 2
    assert result["instance_id"] == UUID
    assert result["hostname"] == "web-1.example.internal"
    assert result["keys"] == {"alice": KEY1}
    assert KEY2  # the second key is in `keys`, which cloud-init does not read
    assert result["userdata"] == b"#cloud-config\nhostname: web-1\n"
    assert result["files"] == {"/etc/motd": b"hello\n"}
    assert result["ec2_id"].startswith("i-")
    config = result["net"]["config"]
    phys = next(c for c in config if c["type"] == "physical")
    assert phys["name"] == "eth0" and phys["mtu"] == 1450
    statics = {s["type"]: s for s in phys["subnets"]}
    assert statics["static"]["address"] == "10.0.0.5"
    assert statics["static"]["routes"] == [
        {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
        {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.254"},
    ]
    assert "ipv6_slaac" in statics  # cloud-init lets SLAAC pick the address
    nameservers = [c["address"] for c in config if c["type"] == "nameserver"]
    assert nameservers == ["10.0.0.2", "2001:db8::2"]
