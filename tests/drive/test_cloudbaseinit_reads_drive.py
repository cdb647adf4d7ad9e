"""cloudbase-init reads our config drives: its ConfigDriveService over an extracted ISO or VFAT
drive finds the instance, the keys, the user-data, the network and the drive-only admin_pass.

Its ``load()`` finds drives through a Windows-only manager, so the test hands it the extracted
directory the way that manager would (``_metadata_path``); everything it reads from there is
its own code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from metaboot.drive import DriveOptions, write_drive_file
from metaboot.metadata import parse_spec
from tests.drive.checkers import mcopy_extract, osirrox_extract, require_tools
from tests.drive.specs import KEY1, USER_DATA, UUID, rich_spec
from tests.reference import run_cloudbaseinit

pytestmark = pytest.mark.cloudbaseinit

WHEN = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["iso", "vfat"])
def test_config_drive_service(tmp_path: Path, fmt: str) -> None:
    require_tools()
    options = DriveOptions(build_time=WHEN, format=fmt, admin_pass="Secr3t-Admin!")
    image = write_drive_file(parse_spec(rich_spec()), tmp_path / "disk.config", options)
    dest = tmp_path / "x"
    (mcopy_extract if fmt == "vfat" else osirrox_extract)(image, dest)
    got = run_cloudbaseinit(
        f"""
from cloudbaseinit.metadata.services import configdrive
svc = configdrive.ConfigDriveService()
svc._metadata_path = {str(dest)!r}
net = svc.get_network_details_v2()
result = {{
    "instance_id": svc.get_instance_id(),
    "host_name": svc.get_host_name(),
    "public_keys": svc.get_public_keys(),
    "user_data": svc.get_user_data(),
    "admin_password": svc.get_admin_password(),
    "net": plain(net),
}}
"""
    )
    assert got["instance_id"] == UUID
    assert got["host_name"] == "drive-1"
    assert KEY1 in got["public_keys"]
    assert got["user_data"] == USER_DATA
    assert got["admin_password"] == "Secr3t-Admin!"
    links = {link["mac_address"]: link for link in got["net"]["links"]}
    assert links["fa:16:3e:11:22:33"]["mtu"] == 1450
    addresses = {n["address_cidr"] for n in got["net"]["networks"] if n["address_cidr"]}
    assert "10.1.0.5/24" in addresses
