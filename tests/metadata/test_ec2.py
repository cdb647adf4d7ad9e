"""The EC2 format: versions, keys per version and nova's listing rules."""

from __future__ import annotations

import os
from typing import Any

import pytest

from metaboot.metadata import build_tree, parse_spec
from tests.metadata.samples import KEY1


def get(tree: Any, path: str) -> bytes:
    doc = tree.lookup(path)
    assert doc is not None, f"{path} is 404"
    return doc.render(os.urandom)


def test_root_listing(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    assert get(tree, "/") == (
        b"1.0\n2007-01-19\n2007-03-01\n2007-08-29\n2007-10-10\n2007-12-15\n2008-02-01\n"
        b"2008-09-01\n2009-04-04\nlatest"
    )
    assert get(tree, "/ec2") == get(tree, "/")


def test_version_and_meta_data_listing(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    assert get(tree, "/2009-04-04/") == b"meta-data/\nuser-data"
    assert get(tree, "/2009-04-04/meta-data/").split(b"\n") == [
        b"ami-id",
        b"ami-launch-index",
        b"ami-manifest-path",
        b"block-device-mapping/",
        b"hostname",
        b"instance-action",
        b"instance-id",
        b"instance-type",
        b"local-hostname",
        b"local-ipv4",
        b"placement/",
        b"public-hostname",
        b"public-ipv4",
        b"public-keys/",
        b"reservation-id",
        b"security-groups",
    ]
    assert get(tree, "/1.0/meta-data/").split(b"\n") == [
        b"ami-id",
        b"ami-launch-index",
        b"ami-manifest-path",
        b"hostname",
        b"instance-id",
        b"local-ipv4",
        b"public-keys/",
        b"reservation-id",
        b"security-groups",
    ]
    assert get(tree, "/ec2/latest/meta-data") == get(tree, "/2009-04-04/meta-data")


def test_leaves(spec: dict[str, Any]) -> None:
    instance = parse_spec(spec)
    tree = build_tree(instance)
    assert get(tree, "/latest/meta-data/public-keys/") == b"0=alice"
    assert get(tree, "/latest/meta-data/public-keys/0/") == b"openssh-key"
    assert get(tree, "/latest/meta-data/public-keys/0/openssh-key") == KEY1.encode()
    assert get(tree, "/latest/meta-data/block-device-mapping/") == b"ami\nephemeral0\nroot\nswap"
    assert get(tree, "/latest/meta-data/block-device-mapping/root") == b"/dev/sda1"
    assert get(tree, "/latest/meta-data/placement/") == b"availability-zone"
    assert get(tree, "/latest/meta-data/placement/availability-zone") == b"zone-a"
    assert get(tree, "/latest/meta-data/security-groups") == b"default\nweb"
    assert get(tree, "/latest/meta-data/local-ipv4") == b"10.0.0.5"
    assert get(tree, "/latest/meta-data/public-ipv4") == b"203.0.113.7"
    assert get(tree, "/latest/meta-data/ami-launch-index") == b"0"
    assert get(tree, "/latest/meta-data/instance-action") == b"none"
    assert get(tree, "/latest/meta-data/instance-type") == b"m1.small"
    assert get(tree, "/latest/meta-data/instance-id") == instance.ec2_instance_id.encode()
    assert get(tree, "/latest/meta-data/instance-id").startswith(b"i-")
    assert len(get(tree, "/latest/meta-data/ami-id")) == len("ami-") + 8
    assert get(tree, "/latest/user-data") == b"#cloud-config\nhostname: web-1\n"


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        ("1.0", "hostname", "local-hostname"),
        ("2007-01-19", "public-ipv4", "instance-type"),
        ("2007-08-29", "instance-type", "block-device-mapping"),
        ("2007-12-15", "block-device-mapping", "placement"),
        ("2008-02-01", "placement", "instance-action"),
        ("2008-09-01", "instance-action", "nothing-here"),
    ],
)
def test_keys_arrive_with_their_version(
    spec: dict[str, Any], version: str, present: str, absent: str
) -> None:
    listing = get(build_tree(parse_spec(spec)), f"/{version}/meta-data/").split(b"\n")
    assert present.encode() in listing or f"{present}/".encode() in listing
    assert absent.encode() not in listing and f"{absent}/".encode() not in listing


def test_block_device_mapping_with_root_device(spec: dict[str, Any]) -> None:
    spec["root_device_name"] = "/dev/vda"
    spec["block_device_mapping"] = {"ephemeral0": "/dev/vdb", "ebs0": "/dev/vdc"}
    tree = build_tree(parse_spec(spec))
    assert get(tree, "/latest/meta-data/block-device-mapping/") == b"ami\nebs0\nephemeral0\nroot"
    assert get(tree, "/latest/meta-data/block-device-mapping/ami") == b"vda"


def test_no_keys_no_public_keys(spec: dict[str, Any]) -> None:
    spec["keys"] = []
    tree = build_tree(parse_spec(spec))
    assert b"public-keys/" not in get(tree, "/latest/meta-data/")
    assert tree.lookup("/latest/meta-data/public-keys/") is None
