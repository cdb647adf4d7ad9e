"""The sources against real transports: drive directories, HTTP on loopback, seeds."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from metaboot.errors import SourceError
from metaboot.guest.sources import configdrive, ec2, nocloud, openstack
from metaboot.guest.sources.detect import SourceContext, find
from metaboot.guest.sources.openstack_tree import pick_version
from metaboot.guest.system import Root
from tests.guest.helpers import (
    KEY,
    UUID,
    ServerState,
    dead_url,
    make_root,
    metadata_server,
    spec,
    tree,
    write_drive_dir,
)

LOG = logging.getLogger("test")


def ctx(root: Root, settings: dict[str, Any], **kw: Any) -> SourceContext:
    return SourceContext(root=root, settings=settings, log=LOG, **kw)


def drive_settings() -> dict[str, Any]:
    return {"dirs": ["/config-drive"], "labels": ["config-2", "CONFIG-2"]}


# ---- version choice -------------------------------------------------------------------------


def test_newest_known_version_else_latest() -> None:
    assert pick_version(["2012-08-10", "2018-08-27", "latest"]) == "2018-08-27"
    assert pick_version(["2012-08-10", "2020-10-14", "2099-01-01", "latest"]) == "2020-10-14"
    assert pick_version(["2099-01-01", "latest"]) == "latest"


# ---- config drive ---------------------------------------------------------------------------


def test_config_drive_directory(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    docs = tree(spec(vendor_data=None), vendor={"cloud-init": "#cloud-config\ntimezone: UTC\n"})
    write_drive_dir(root, "/config-drive", docs)
    data = configdrive.read(ctx(root, drive_settings()))
    assert data is not None
    assert data.source == "ConfigDrive"
    assert data.instance_id == UUID
    assert data.local_hostname == "agent-test"
    assert data.public_keys == [KEY]
    assert data.availability_zone == "zone-a"
    assert data.user_data == b"#cloud-config\nhostname: from-user-data\n"
    assert data.vendor_data == {"cloud-init": "#cloud-config\ntimezone: UTC\n"}
    assert data.network_data is not None and data.network_data["links"][0]["ethernet_mac_address"]
    assert data.ec2_metadata is not None and data.ec2_metadata["instance-id"].startswith("i-")
    assert data.metadata["meta"] == {"role": "test"}
    assert data.subplatform == "seed-dir (/config-drive)"
    assert data.service_url is None


def test_config_drive_found_by_label_link(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_drive_dir(root, "/media/drive", tree())
    root.makedirs("/dev/disk/by-label")
    (root.path("/dev/disk/by-label") / "config-2").symlink_to("../../../media/drive")
    data = configdrive.read(ctx(root, {"dirs": [], "labels": ["config-2"]}))
    assert data is not None and data.instance_id == UUID
    assert data.subplatform == "config-disk (/media/drive)"


def test_config_drive_absent_and_broken(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert configdrive.read(ctx(root, drive_settings())) is None
    for version in ("2018-08-27", "latest"):
        root.write_file(f"/config-drive/openstack/{version}/meta_data.json", "{not json")
    with pytest.raises(SourceError, match=r"openstack/2018-08-27/meta_data.json: not valid JSON"):
        configdrive.read(ctx(root, drive_settings()))
    root.write_file("/config-drive/openstack/2018-08-27/meta_data.json", json.dumps({"name": "x"}))
    with pytest.raises(SourceError, match="no 'uuid'"):
        configdrive.read(ctx(root, drive_settings()))


def test_config_drive_optional_documents_broken_are_warnings(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_drive_dir(root, "/config-drive", tree())
    root.write_file("/config-drive/openstack/2025-04-04/network_data.json", "[broken")
    context = ctx(root, drive_settings())
    data = configdrive.read(context)
    assert data is not None and data.network_data is None
    assert context.warnings == [
        "openstack/2025-04-04/network_data.json: not valid JSON "
        "(Expecting value: line 1 column 2 (char 1)); ignored"
    ]


def test_config_drive_falls_back_to_latest(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.write_file(
        "/config-drive/openstack/2099-01-01/meta_data.json", json.dumps({"uuid": "new"})
    )
    root.write_file(
        "/config-drive/openstack/latest/meta_data.json", json.dumps({"uuid": "latest-id"})
    )
    data = configdrive.read(ctx(root, drive_settings()))
    assert data is not None and data.instance_id == "latest-id"


# ---- OpenStack over HTTP ----------------------------------------------------------------------


def test_openstack_http_reads_newest_version(tmp_path: Path) -> None:
    state = ServerState(tree(vendor={"v": 1}))
    with metadata_server(state) as (url, _):
        data = openstack.read(ctx(make_root(tmp_path), {"metadata_urls": [url], "max_wait": 2}))
    assert data is not None
    assert data.instance_id == UUID and data.public_keys == [KEY]
    assert data.service_url == url and data.subplatform == f"metadata ({url})"
    assert data.vendor_data == {"v": 1}
    paths = [p for _, p, _ in state.log]
    assert paths[0] == "/openstack"
    assert "/openstack/2025-04-04/meta_data.json" in paths
    # No EC2 crawl unless asked.
    assert not [p for p in paths if not p.startswith("/openstack")]


def test_openstack_http_crawls_ec2_when_asked(tmp_path: Path) -> None:
    state = ServerState(tree())
    with metadata_server(state) as (url, _):
        settings = {"metadata_urls": [url], "max_wait": 2, "crawl_ec2": True}
        data = openstack.read(ctx(make_root(tmp_path), settings))
    assert data is not None and data.ec2_metadata is not None
    assert data.ec2_metadata["placement"] == {"availability-zone": "zone-a"}
    assert data.ec2_metadata["public-keys"]["0"]["openssh-key"] == KEY


def test_openstack_http_waits_through_503_with_retry_after(tmp_path: Path) -> None:
    slept: list[float] = []
    state = ServerState(tree(), fail_first=3, retry_after=1)
    with metadata_server(state) as (url, _):
        context = ctx(
            make_root(tmp_path),
            {"metadata_urls": [url], "max_wait": 30, "retries": 5},
            sleep=slept.append,
        )
        data = openstack.read(context)
    assert data is not None and data.instance_id == UUID
    assert len([1 for m, p, _ in state.log if p == "/openstack"]) == 4
    assert slept == [1.0, 1.0, 1.0]  # as the service asked, not our own backoff


def test_openstack_http_first_url_dead_second_answers(tmp_path: Path) -> None:
    with metadata_server(ServerState(tree())) as (url, _):
        settings = {"metadata_urls": [dead_url(), url], "max_wait": 5}
        data = openstack.read(ctx(make_root(tmp_path), settings))
    assert data is not None and data.service_url == url


def test_openstack_http_nothing_there_gives_up_within_max_wait(tmp_path: Path) -> None:
    start = time.monotonic()
    data = openstack.read(
        ctx(make_root(tmp_path), {"metadata_urls": [dead_url()], "max_wait": 0.5})
    )
    assert data is None
    assert time.monotonic() - start < 5


def test_openstack_http_not_openstack_is_absent(tmp_path: Path) -> None:
    state = ServerState(tree(), extra={"/openstack": (404, b"no")})
    with metadata_server(state) as (url, _):
        assert (
            openstack.read(ctx(make_root(tmp_path), {"metadata_urls": [url], "max_wait": 5}))
            is None
        )
    assert len(state.log) == 1  # a definite "no" is not retried


def test_iface_placeholder_uses_the_roots_first_nic(tmp_path: Path) -> None:
    from metaboot.guest.sources.service import candidate_urls

    root = make_root(tmp_path)
    urls = candidate_urls(ctx(root, {"metadata_urls": ["http://[fe80::a9fe:a9fe%IFACE]"]}))
    assert urls == ["http://[fe80::a9fe:a9fe%eth0]"]
    empty = Root(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    assert candidate_urls(
        ctx(empty, {"metadata_urls": ["http://[fe80::1%IFACE]", "http://x"]})
    ) == ["http://x"]


# ---- EC2 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens", ["optional", "required", "none"])
def test_ec2_token_first_then_crawl(tmp_path: Path, tokens: str) -> None:
    state = ServerState(tree(), tokens=tokens)
    with metadata_server(state) as (url, _):
        data = ec2.read(ctx(make_root(tmp_path), {"metadata_urls": [url], "max_wait": 2}))
    assert data is not None
    assert data.source == "Ec2" and data.instance_id.startswith("i-")
    assert data.local_hostname == "agent-test"
    assert data.public_keys == [KEY]
    assert data.availability_zone == "zone-a"
    assert data.user_data == b"#cloud-config\nhostname: from-user-data\n"
    assert state.log[0][:2] == ("PUT", "/latest/api/token")
    gets = [h for m, _, h in state.log if m == "GET"]
    with_token = [h for h in gets if "X-aws-ec2-metadata-token" in h]
    assert len(with_token) == (len(gets) if tokens != "none" else 0)
    assert all(p.startswith(("/2009-04-04/", "/latest/api/token")) for _, p, _ in state.log)


def test_ec2_refused_token_is_an_error(tmp_path: Path) -> None:
    state = ServerState(tree(), extra={"/latest/api/token": (403, b"disabled")})
    with metadata_server(state) as (url, _), pytest.raises(SourceError, match="HTTP 403"):
        ec2.read(ctx(make_root(tmp_path), {"metadata_urls": [url], "max_wait": 2}))


# ---- NoCloud ----------------------------------------------------------------------------------


def test_nocloud_seed_directory(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    seed = "/var/lib/metaboot/seed/nocloud"
    root.write_file(f"{seed}/meta-data", "instance-id: iid-local01\nlocal-hostname: seeded\n")
    root.write_file(f"{seed}/user-data", "#cloud-config\nruncmd: [date]\n")
    root.write_file(f"{seed}/vendor-data", "#cloud-config\ntimezone: UTC\n")
    root.write_file(f"{seed}/network-config", "version: 2\nethernets: {eth0: {dhcp4: true}}\n")
    data = nocloud.read(ctx(root, {"dirs": [seed], "labels": []}))
    assert data is not None
    assert (data.instance_id, data.local_hostname, data.platform) == (
        "iid-local01",
        "seeded",
        "nocloud",
    )
    assert data.user_data == b"#cloud-config\nruncmd: [date]\n"
    assert data.vendor_data == b"#cloud-config\ntimezone: UTC\n"
    assert data.network_config == {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}


def test_nocloud_broken_meta_data(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.write_file("/seed/meta-data", "instance-id: [unclosed\n")
    with pytest.raises(SourceError, match="invalid YAML at line 2"):
        nocloud.read(ctx(root, {"dirs": ["/seed"], "labels": []}))
    root.write_file("/seed/meta-data", "local-hostname: x\n")
    with pytest.raises(SourceError, match="no instance-id"):
        nocloud.read(ctx(root, {"dirs": ["/seed"], "labels": []}))


def test_nocloud_inline_in_agent_config(tmp_path: Path) -> None:
    settings = {"meta-data": {"instance-id": "inline-1"}, "user-data": "#cloud-config\n{}\n"}
    data = nocloud.read(ctx(make_root(tmp_path), settings))
    assert data is not None and data.instance_id == "inline-1"


# ---- detection ----------------------------------------------------------------------------------


def test_first_source_that_finds_wins_and_broken_ones_are_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.write_file("/config-drive/openstack/latest/meta_data.json", "{}")
    write_drive_dir(root, "/var/lib/metaboot/seed/nocloud-unused", tree())
    root.write_file("/nc/meta-data", "instance-id: nc-1\n")
    settings = {
        "ConfigDrive": drive_settings(),
        "NoCloud": {"dirs": ["/nc"], "labels": []},
        "OpenStack": {"metadata_urls": [dead_url()], "max_wait": 0},
    }

    def make(name: str) -> SourceContext:
        return ctx(root, settings.get(name, {}))

    data, attempts, _ = find(["Bogus", "OpenStack", "ConfigDrive", "NoCloud", "Ec2"], make, LOG)
    assert data is not None and data.instance_id == "nc-1"
    assert [(a.source, a.outcome) for a in attempts] == [
        ("Bogus", "unknown"),
        ("OpenStack", "absent"),
        ("ConfigDrive", "error"),
        ("NoCloud", "found"),
    ]
    assert "no 'uuid'" in attempts[2].detail
