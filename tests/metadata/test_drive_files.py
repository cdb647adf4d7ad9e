"""The config-drive file set: nova's layout, the service's bytes."""

from __future__ import annotations

import json
import os
from typing import Any

from metaboot.metadata import build_tree, parse_spec

ALL = [
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "2025-04-04",
    "latest",
]


def zero(n: int) -> bytes:
    return b"\0" * n


def test_layout(spec: dict[str, Any]) -> None:
    files = build_tree(parse_spec(spec)).drive_files(zero)
    expected = {
        "openstack/content/0000",
        "ec2/2009-04-04/meta-data.json",
        "ec2/2009-04-04/user-data",
        "ec2/latest/meta-data.json",
        "ec2/latest/user-data",
    }
    for version in ALL:
        expected |= {f"openstack/{version}/meta_data.json", f"openstack/{version}/user_data"}
        if version >= "2013-10-17":
            expected.add(f"openstack/{version}/vendor_data.json")
        if version >= "2015-10-15":
            expected.add(f"openstack/{version}/network_data.json")
        if version >= "2016-10-06":
            expected.add(f"openstack/{version}/vendor_data2.json")
    assert set(files) == expected  # no password file, every version, future ones too


def test_same_bytes_as_the_service_except_the_seed(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    files = tree.drive_files(zero)
    for path, body in files.items():
        if path.startswith("ec2/") and path.endswith("meta-data.json"):
            continue
        doc = tree.lookup("/" + path)
        assert doc is not None, path
        assert doc.render(zero) == body, path


def test_admin_pass_only_on_the_drive(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    files = tree.drive_files(os.urandom, admin_pass="s3cret")
    doc = json.loads(files["openstack/latest/meta_data.json"])
    assert doc["admin_pass"] == "s3cret"
    assert list(doc)[:4] == ["uuid", "meta", "files", "admin_pass"]
    served = tree.lookup("/openstack/latest/meta_data.json")
    assert served is not None and b"admin_pass" not in served.render(os.urandom)


def test_ec2_meta_data_json(spec: dict[str, Any]) -> None:
    files = build_tree(parse_spec(spec)).drive_files(zero)
    meta = json.loads(files["ec2/latest/meta-data.json"])
    assert meta["public-keys"] == {"0": {"openssh-key": spec["keys"][0]["data"]}}
    assert meta["placement"] == {"availability-zone": "zone-a"}
    assert meta["local-ipv4"] == "10.0.0.5"
