"""cloudbase-init, the Windows guest agent, as a second reference client of the service.

Its OpenStack HTTP service and its EC2 service run on Linux, and so does the step Windows
images depend on: the generated Administrator password encrypted with the instance's first
SSH key (RSA, PKCS#1 v1.5) and POSTed to ``/openstack/2013-04-04/password``, once. The child
process runs cloudbase-init from its own virtual environment (scripts/setup-system) with
tests/netguard loaded; its metadata URL is set to the service on loopback.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from metaboot.registry import Registry
from tests.reference import run_cloudbaseinit
from tests.service.harness import Running, instance

pytestmark = pytest.mark.cloudbaseinit

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "C0rrect-Horse-Battery-Staple!"
USER_DATA = "#ps1_sysnative\nWrite-Host 'hello from user-data'\n"


@pytest.fixture
def rsa_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "id_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "ops@example", "-f", key],
        check=True,
    )
    return key, (tmp_path / "id_rsa.pub").read_text().strip()


def _windows_vm(public_key: str) -> dict[str, Any]:
    return {
        "name": "win-1",
        "hostname": "win-1",
        "keys": [{"name": "ops", "type": "ssh", "data": public_key}],
        "meta": {"admin_username": "Admin"},
        "user_data": USER_DATA,
        "ports": [
            {
                "network_id": "net-win",
                "mac": "fa:16:3e:00:00:42",
                "fixed_ips": ["127.0.0.1"],
                "mtu": 1450,
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


def test_openstack_service_data_and_password_post_back(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    rsa_key: tuple[Path, str],
) -> None:
    key_file, public_key = rsa_key
    me = instance(**_windows_vm(public_key))
    registry.add(me)
    svc = start_service(db_url)
    result = run_cloudbaseinit(
        f"""
from cloudbaseinit.metadata.services import httpservice
from cloudbaseinit.plugins.common import setuserpassword
svc = httpservice.HttpService()
loaded = svc.load()
net = svc.get_network_details_v2()
result = {{
    "loaded": loaded,
    "instance_id": svc.get_instance_id(),
    "host_name": svc.get_host_name(),
    "public_keys": svc.get_public_keys(),
    "user_data": svc.get_user_data(),
    "admin_username": svc.get_admin_username(),
    "encryption_key": svc.get_user_pwd_encryption_key(),
    "can_post_password": svc.can_post_password,
    "set_before": svc.is_password_set,
    "net": plain(net),
}}
plugin = setuserpassword.SetUserPasswordPlugin()
result["first_post"] = plugin._set_metadata_password({PASSWORD!r}, svc)
result["set_after"] = svc.is_password_set
# A second agent run must not replace it: the service answers 409. (cloudbase-init 1.1.9
# means to return False on 409 but catches urllib's HTTPError while its requests-based
# transport raises requests' own, so the status is read off the exception here.)
import requests
try:
    result["second_post"] = svc.post_password(plugin._encrypt_password(
        svc.get_user_pwd_encryption_key(), "another-password"))
except requests.HTTPError as err:
    result["second_post"] = err.response.status_code
""",
        svc.url,
    )
    assert result["loaded"] is True
    assert result["instance_id"] == me.uuid
    assert result["host_name"] == "win-1"
    assert result["public_keys"] == [public_key]
    assert result["user_data"] == USER_DATA
    assert result["admin_username"] == "Admin"
    assert result["encryption_key"] == public_key
    assert result["can_post_password"] is True
    assert result["set_before"] is False
    assert result["first_post"] is True and result["set_after"] is True
    assert result["second_post"] == 409

    net = result["net"]
    [link] = net["links"]
    assert link["mac_address"] == "fa:16:3e:00:00:42" and link["mtu"] == 1450
    [network] = net["networks"]
    assert network["link"] == link["id"]
    assert network["address_cidr"] == "127.0.0.1/8"
    routes = {(r["network_cidr"], r["gateway"]) for r in network["routes"]}
    assert ("192.168.0.0/16", "127.0.0.253") in routes
    assert ("0.0.0.0/0", "127.0.0.254") in routes
    assert [s["addresses"] for s in net["services"]] == [["127.0.0.53"]]

    # The operator decrypts what cloudbase-init posted, with the key pair's private half.
    stored = registry.password_get(me.uuid)
    assert stored and PASSWORD not in stored
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "metaboot.cli"),
            *("instance", "password", me.uuid, "--private-key", str(key_file), "--db", db_url),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == PASSWORD + "\n"


def test_ec2_service(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    rsa_key: tuple[Path, str],
) -> None:
    _key_file, public_key = rsa_key
    me = instance(**_windows_vm(public_key))
    registry.add(me)
    svc = start_service(db_url)
    result = run_cloudbaseinit(
        """
from cloudbaseinit.metadata.services import ec2service
svc = ec2service.EC2Service()
result = {
    "loaded": svc.load(),
    "instance_id": svc.get_instance_id(),
    "host_name": svc.get_host_name(),
    "public_keys": svc.get_public_keys(),
    "user_data": svc.get_user_data(),
}
""",
        svc.url,
    )
    # The EC2 tree names the instance by nova's EC2 id (i-xxxxxxxx), not its uuid.
    with urllib.request.urlopen(svc.url + "/2009-04-04/meta-data/instance-id") as answer:
        ec2_id = answer.read().decode()
    assert re.fullmatch(r"i-[0-9a-f]{8}", ec2_id)
    assert result == {
        "loaded": True,
        "instance_id": ec2_id,
        "host_name": "win-1",
        "public_keys": [public_key],
        "user_data": USER_DATA,
    }
