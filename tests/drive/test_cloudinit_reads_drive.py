"""Debian's cloud-init reads our drives: ConfigDrive from an extracted ISO or VFAT drive,
NoCloud from an extracted seed, and finds the same instance, keys, user-data and network."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from metaboot.drive import DriveOptions, write_drive_file
from metaboot.metadata import parse_spec
from tests import reference
from tests.drive.checkers import mcopy_extract, osirrox_extract, require_tools
from tests.drive.specs import KEY1, USER_DATA, UUID, bond_vlan_network_data, rich_spec

pytestmark = pytest.mark.cloudinit

WHEN = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)
MACS = {"fa:16:3e:11:22:33": "eth0", "fa:16:3e:44:55:66": "eth1"}

# Interfaces, routes and nameservers as cloud-init's network_state sees a v1 config. The
# "ipv4"/"ipv6" subnet flags are annotations convert_net_json adds for itself; they are dropped
# so the comparison is of what gets configured.
_NETWORK_STATE = """
from cloudinit.net import network_state
def state(config):
    ns = network_state.parse_net_config_data(config)
    ifaces = {}
    for iface in ns.iter_interfaces():
        iface = dict(iface)
        iface["subnets"] = [
            {k: v for k, v in s.items() if k not in ("ipv4", "ipv6")} for s in iface["subnets"]
        ]
        ifaces[iface["name"]] = iface
    return {"interfaces": ifaces, "dns": ns.dns_nameservers, "routes": list(ns.iter_routes())}
"""


@pytest.fixture(scope="module", autouse=True)
def _reference() -> None:
    assert reference.available(), "Debian's cloud-init is missing: run scripts/setup-system"
    require_tools()


def _config_drive(extracted: Path) -> Any:
    return reference.run_cloudinit(
        _NETWORK_STATE
        + f"""
from cloudinit import sources
from cloudinit.sources import DataSourceConfigDrive
from cloudinit.sources.helpers import openstack
# read_config_drive is what DataSourceConfigDrive reads with; the datasource itself is not run,
# because on a new instance-id it writes injected files to this machine's /.
res = DataSourceConfigDrive.read_config_drive({str(extracted)!r})
net = openstack.convert_net_json(res["networkdata"], known_macs={MACS!r})
md = res["metadata"]
result = {{
    "instance-id": md["instance-id"],
    "local-hostname": md["local-hostname"],
    "public-keys": sources.normalize_pubkey_data(md.get("public_keys")),
    "admin_pass": md.get("admin_pass"),
    "userdata": res["userdata"],
    "files": res["files"],
    "ec2": res["ec2-metadata"],
    "network": state(net),
}}
"""
    )


def _nocloud(cloud_dir: Path) -> Any:
    return reference.run_cloudinit(
        _NETWORK_STATE
        + f"""
from cloudinit import helpers
from cloudinit.sources import DataSourceNoCloud
paths = helpers.Paths({{"cloud_dir": {str(cloud_dir)!r}}})
# fs_label None: read the seed directory only, never probe this machine's block devices
sys_cfg = {{"datasource": {{"NoCloud": {{"fs_label": None}}}}}}
ds = DataSourceNoCloud.DataSourceNoCloud(sys_cfg, None, paths)
assert ds._get_data(), "NoCloud found no seed"
result = {{
    "instance-id": ds.get_instance_id(),
    "local-hostname": ds.get_hostname().hostname,
    "public-keys": ds.get_public_ssh_keys(),
    "userdata": ds.userdata_raw,
    "network": state(ds.network_config),
}}
"""
    )


@pytest.fixture(scope="module")
def expected_network(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """cloud-init's reading of the drive's network_data.json (names from the MACs)."""
    root = tmp_path_factory.mktemp("net")
    image = write_drive_file(parse_spec(rich_spec()), root / "d.iso", DriveOptions(build_time=WHEN))
    osirrox_extract(image, root / "x")
    return _config_drive(root / "x")["network"]


@pytest.mark.parametrize("fmt", ["iso", "vfat"])
def test_config_drive_reader(tmp_path: Path, fmt: str, expected_network: Any) -> None:
    options = DriveOptions(build_time=WHEN, format=fmt, admin_pass="Secr3t!")
    image = write_drive_file(parse_spec(rich_spec()), tmp_path / "disk.config", options)
    dest = tmp_path / "x"
    (mcopy_extract if fmt == "vfat" else osirrox_extract)(image, dest)
    got = reference.unbytes(_config_drive(dest))
    assert got["instance-id"] == UUID
    assert got["local-hostname"] == "drive-1"
    assert got["public-keys"] == [KEY1]  # nova's public_keys: the first keypair only
    assert got["admin_pass"] == "Secr3t!"
    assert got["userdata"] == USER_DATA.encode()
    assert got["files"] == {"/etc/motd": b"welcome\n", "/etc/app/config.ini": b"[app]\nmode=prod\n"}
    assert got["ec2"]["instance-id"].startswith("i-")
    net = got["network"]
    assert net == expected_network
    eth0 = net["interfaces"]["eth0"]
    assert eth0["mac_address"] == "fa:16:3e:11:22:33" and eth0["mtu"] == 1450
    assert [s["type"] for s in eth0["subnets"]] == ["static", "static6"]
    assert eth0["subnets"][0]["address"] == "10.1.0.5"
    assert net["interfaces"]["eth1"]["subnets"][0]["type"] == "dhcp4"
    assert net["dns"] == ["10.1.0.2", "2001:db8::53"]


@pytest.mark.parametrize("filesystem", ["iso", "vfat"])
def test_nocloud_reader_gets_the_same(
    tmp_path: Path, filesystem: str, expected_network: Any
) -> None:
    options = DriveOptions(
        build_time=WHEN, format="nocloud", nocloud_filesystem=filesystem, size=1 << 20
    )
    image = write_drive_file(parse_spec(rich_spec()), tmp_path / "seed.img", options)
    seed = tmp_path / "cloud" / "seed" / "nocloud"
    (mcopy_extract if filesystem == "vfat" else osirrox_extract)(image, seed)
    got = reference.unbytes(_nocloud(tmp_path / "cloud"))
    assert got["instance-id"] == UUID
    assert got["local-hostname"] == "drive-1"
    assert got["public-keys"] == [KEY1]  # as cloud-init's ConfigDrive reading gives it
    assert got["userdata"] == USER_DATA.encode()
    assert got["network"] == expected_network


def test_bond_and_vlan_network_data_reads_the_same(tmp_path: Path) -> None:
    """A verbatim network_data.json with a bond and a VLAN: the seed's v1 config and
    cloud-init's own conversion of the drive's JSON configure the same interfaces."""
    spec = {"uuid": UUID, "name": "bonded", "network_data": bond_vlan_network_data()}
    instance = parse_spec(spec)
    drive = write_drive_file(instance, tmp_path / "d.iso", DriveOptions(build_time=WHEN))
    osirrox_extract(drive, tmp_path / "cd")
    seed = write_drive_file(
        instance, tmp_path / "s.iso", DriveOptions(build_time=WHEN, format="nocloud")
    )
    osirrox_extract(seed, tmp_path / "cloud" / "seed" / "nocloud")
    names = {"fa:16:3e:00:00:01": "eth0", "fa:16:3e:00:00:02": "eth1"}
    from_drive = reference.run_cloudinit(
        _NETWORK_STATE
        + f"""
from cloudinit.sources import DataSourceConfigDrive
from cloudinit.sources.helpers import openstack
res = DataSourceConfigDrive.read_config_drive({str(tmp_path / "cd")!r})
result = state(openstack.convert_net_json(res["networkdata"], known_macs={names!r}))
"""
    )
    from_seed = _nocloud(tmp_path / "cloud")["network"]
    assert from_seed == from_drive
    assert set(from_seed["interfaces"]) == {"eth0", "eth1", "bond0", "bond0.42"}
    assert from_seed["interfaces"]["bond0"]["bond_mode"] == "802.3ad"
    assert from_seed["interfaces"]["bond0.42"]["subnets"][0]["address"] == "192.0.2.10"
