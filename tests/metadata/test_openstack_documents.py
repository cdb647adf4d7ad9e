"""The OpenStack format: files and keys per version, nova's encoding, random_seed per read."""

from __future__ import annotations

import base64
import json
import os
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaboot.metadata import MetadataSettings, build_tree, parse_spec
from metaboot.metadata.tree import Document
from tests.metadata.samples import KEY1, KEY2, UUID

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
]

# Keys meta_data.json has in each version, in order (spec has meta, files and keys).
BASE_KEYS = [
    "uuid",
    "meta",
    "files",
    "public_keys",
    "keys",
    "hostname",
    "name",
    "launch_index",
    "availability_zone",
]


def expected_keys(version: str) -> list[str]:
    keys = list(BASE_KEYS)
    if version >= "2013-04-04":
        keys.append("random_seed")
    if version >= "2015-10-15":
        keys.append("project_id")
    if version >= "2016-06-30":
        keys.append("devices")
    if version >= "2020-10-14":
        keys.append("dedicated_cpus")
    return keys


def get(tree: Any, path: str) -> bytes:
    doc = tree.lookup(path)
    assert doc is not None, f"{path} is 404"
    assert isinstance(doc, Document)
    return doc.render(os.urandom)


@pytest.mark.parametrize("version", [*ALL, "latest"])
def test_meta_data_keys_per_version(spec: dict[str, Any], version: str) -> None:
    tree = build_tree(parse_spec(spec))
    body = get(tree, f"/openstack/{version}/meta_data.json")
    doc = json.loads(body)
    concrete = ALL[-1] if version == "latest" else version
    assert list(doc) == expected_keys(concrete)
    assert doc["uuid"] == UUID
    assert doc["hostname"] == "web-1.example.internal"  # no suffix, dots kept
    assert doc["public_keys"] == {"alice": KEY1}  # first keypair only, as nova
    assert doc["keys"] == [
        {"name": "alice", "type": "ssh", "data": KEY1},
        {"name": "bob", "type": "ssh", "data": KEY2},
    ]
    assert doc["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    assert tree.lookup(f"/openstack/{version}/meta_data.json").content_type == "application/json"
    # nova's encoding: json.dumps defaults, in this key order.
    if "random_seed" in doc:
        assert len(base64.b64decode(doc["random_seed"])) == 512
    assert body == json.dumps(doc).encode()


def test_devices_per_version(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))

    def devices(version: str) -> list[dict[str, Any]]:
        return json.loads(get(tree, f"/openstack/{version}/meta_data.json"))["devices"]

    nic_newton = {
        "type": "nic",
        "mac": "fa:16:3e:00:00:01",
        "bus": "pci",
        "address": "0000:00:02.0",
        "tags": ["frontend"],
    }
    disk = {
        "type": "disk",
        "serial": "disk-vol-1",
        "path": "/dev/sda",
        "bus": "ide",
        "address": "0:0",
        "tags": ["database"],
    }
    assert devices("2016-06-30") == [nic_newton, disk]
    assert devices("2017-02-22")[0] == {"vlan": 100, **nic_newton}
    assert list(devices("2018-08-27")[0]) == [
        "vlan",
        "vf_trusted",
        "type",
        "mac",
        "bus",
        "address",
        "tags",
    ]
    assert devices("2020-10-14")[0]["vf_trusted"] is False
    share = {
        "type": "share",
        "share_id": "share-1",
        "tag": "data",
        "bus": "none",
        "address": "none",
    }
    assert devices("2025-04-04")[2] == share
    assert len(devices("2020-10-14")) == 2
    assert json.loads(get(tree, "/openstack/2020-10-14/meta_data.json"))["dedicated_cpus"] == [1, 3]


def test_random_seed_is_fresh_on_every_read(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    seeds = {
        json.loads(get(tree, "/openstack/latest/meta_data.json"))["random_seed"] for _ in range(5)
    }
    assert len(seeds) == 5
    assert "random_seed" not in json.loads(get(tree, "/openstack/2012-08-10/meta_data.json"))


@settings(max_examples=200, deadline=None)
@given(
    meta=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=4),
    project=st.text(max_size=30),
    name=st.text(max_size=30),
)
def test_seed_splice_keeps_valid_json_for_any_content(
    meta: dict[str, str], project: str, name: str
) -> None:
    instance = parse_spec(
        {"uuid": UUID, "hostname": "h", "name": name, "meta": meta, "project_id": project}
    )
    for version in ("2013-04-04", "2015-10-15", "latest"):
        body = get(build_tree(instance), f"/openstack/{version}/meta_data.json")
        doc = json.loads(body)
        assert doc.get("meta", {}) == meta
        assert doc["name"] == name
        assert body == json.dumps(doc).encode()


def test_hostname_suffix_only_when_configured(spec: dict[str, Any]) -> None:
    instance = parse_spec(spec)
    tree = build_tree(instance, MetadataSettings(dhcp_domain="novalocal"))
    assert json.loads(get(tree, "/openstack/latest/meta_data.json"))["hostname"] == (
        "web-1.example.internal.novalocal"
    )
    assert get(tree, "/latest/meta-data/hostname") == b"web-1.example.internal.novalocal"


def test_openstack_listing_hides_future_versions_but_serves_them(spec: dict[str, Any]) -> None:
    instance = parse_spec(spec)
    tree = build_tree(instance, MetadataSettings(today=date(2021, 1, 1)))
    listing = get(tree, "/openstack").decode()
    assert listing.split("\n") == [*ALL[:-1], "latest"]
    assert not listing.endswith("\n")
    assert tree.lookup("/openstack/2025-04-04/meta_data.json") is not None
    assert get(build_tree(instance, MetadataSettings(today=date(2026, 11, 27))), "/openstack/") == (
        "\n".join([*ALL, "latest"]).encode()
    )


def test_version_listings(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    assert get(tree, "/openstack/2012-08-10") == b"meta_data.json\nuser_data"
    assert get(tree, "/openstack/2013-04-04/") == b"meta_data.json\nuser_data\npassword"
    assert get(tree, "/openstack/latest").split(b"\n") == [
        b"meta_data.json",
        b"user_data",
        b"password",
        b"vendor_data.json",
        b"network_data.json",
        b"vendor_data2.json",
    ]


def test_files_absent_from_older_versions_are_404(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    assert tree.lookup("/openstack/2012-08-10/vendor_data.json") is None
    assert tree.lookup("/openstack/2013-10-17/network_data.json") is None
    assert tree.lookup("/openstack/2016-06-30/vendor_data2.json") is None
    assert tree.lookup("/openstack/2012-08-10/password") is None
    assert tree.is_password_path("/openstack/2012-08-10/password") is None
    assert tree.is_password_path("/openstack/latest/password/") == "2025-04-04"
    assert tree.lookup("/openstack/latest/password") is None  # the service answers it


def test_no_user_data_means_404_and_unlisted(spec: dict[str, Any]) -> None:
    spec.pop("user_data")
    tree = build_tree(parse_spec(spec))
    assert tree.lookup("/openstack/latest/user_data") is None
    assert b"user_data" not in get(tree, "/openstack/latest")
    assert tree.lookup("/2009-04-04/user-data") is None
    assert get(tree, "/2009-04-04/") == b"meta-data/"


@pytest.mark.parametrize(
    "path",
    [
        "/openstack/2011-01-01/meta_data.json",
        "/openstack/latest/nothing",
        "/openstack/content",
        "/openstack/content/0001",
        "/openstack/content/0000/x",
        "/2010-01-01/meta-data/",
        "/latest/meta-data/nothing",
        "/latest/meta-data/public-keys/0/_name",
        "/latest/meta-data/hostname/x",
    ],
)
def test_unknown_paths_are_404(spec: dict[str, Any], path: str) -> None:
    assert build_tree(parse_spec(spec)).lookup(path) is None


def test_user_data_content_and_vendor_data(spec: dict[str, Any]) -> None:
    tree = build_tree(
        parse_spec(spec),
        MetadataSettings(static_vendor_data={"site": "default", "ntp": "pool"}),
        {"testing": {"value1": 1}, "static": {"ignored": True}},
    )
    assert get(tree, "/openstack/latest/user_data") == b"#cloud-config\nhostname: web-1\n"
    assert tree.lookup("/openstack/latest/user_data").content_type == "text/plain"
    assert get(tree, "/openstack/content/0000") == b"hello\n"
    assert get(tree, "/openstack/latest/vendor_data.json") == (b'{"site": "dc1", "ntp": "pool"}')
    assert get(tree, "/openstack/latest/vendor_data2.json") == (
        b'{"static": {"site": "dc1", "ntp": "pool"}, "testing": {"value1": 1}}'
    )
    off = build_tree(parse_spec(spec), MetadataSettings(static_vendor_data=None))
    assert off.lookup("/openstack/latest/vendor_data.json") is None
    assert b"vendor_data.json" in get(off, "/openstack/latest")  # nova still lists it
    assert get(off, "/openstack/latest/vendor_data2.json") == b"{}"


def test_trailing_slashes_and_dots_are_irrelevant(spec: dict[str, Any]) -> None:
    tree = build_tree(parse_spec(spec))
    assert get(tree, "/openstack/latest/meta_data.json/")[:9] == b'{"uuid": '
    assert get(tree, "//openstack//latest/./vendor_data.json") == get(
        tree, "/openstack/latest/vendor_data.json"
    )
