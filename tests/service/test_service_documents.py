"""The service answers nova's paths for the instance asking, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from metaboot.registry import Registry
from tests.service.harness import Running, instance


def test_openstack_and_ec2_documents_for_the_instance_asking(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.1",), user_data="#cloud-config\nhostname: me\n")
    registry.add(me)
    svc = start_service(db_url)

    status, headers, body = svc.request("GET", "/openstack/latest/meta_data.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    meta = json.loads(body)
    assert meta["uuid"] == me.uuid
    assert meta["hostname"] == me.hostname  # no .novalocal
    assert meta["keys"][0]["data"] == me.keys[0].data
    assert len(base64.b64decode(meta["random_seed"])) == 512
    # random_seed is fresh on every read; everything else is the same
    again = json.loads(svc.get("/openstack/latest/meta_data.json")[1])
    assert again["random_seed"] != meta["random_seed"]
    assert {k: v for k, v in again.items() if k != "random_seed"} == {
        k: v for k, v in meta.items() if k != "random_seed"
    }

    assert svc.get("/openstack/latest/user_data") == (200, b"#cloud-config\nhostname: me\n")
    assert svc.get("/2009-04-04/meta-data/hostname") == (200, me.hostname.encode())
    assert svc.get("/2009-04-04/meta-data/local-ipv4") == (200, b"127.0.0.1")
    assert svc.get("/2009-04-04/meta-data/public-keys/") == (200, b"0=k1")
    status, listing = svc.get("/openstack/")
    assert status == 200 and listing.endswith(b"\nlatest")
    # trailing slashes and double slashes are irrelevant, as in nova
    assert svc.get("//openstack//latest/user_data/")[0] == 200
    # unknown paths and versions are 404
    assert svc.get("/openstack/1999-01-01/meta_data.json")[0] == 404
    assert svc.get("/nothing/here")[0] == 404
    # HEAD gives the headers alone
    status, headers, body = svc.request("HEAD", "/2009-04-04/meta-data/hostname")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(me.hostname))
    # other methods do not read documents
    status, headers, _ = svc.request("DELETE", "/openstack/latest/meta_data.json")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_no_user_data_is_404(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    registry.add(instance(user_data=None))
    svc = start_service(db_url)
    assert svc.get("/openstack/latest/user_data")[0] == 404
    assert svc.get("/latest/user-data")[0] == 404
    assert b"user_data" not in svc.get("/openstack/latest")[1]


def test_unknown_address_is_404(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    registry.add(instance(ips=("127.0.0.1",)))
    svc = start_service(db_url)
    assert svc.get("/openstack/latest/meta_data.json", source="127.0.0.9")[0] == 404


def test_ipv6_and_ipv4_mapped_clients_are_identified(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    v6 = instance(ips=("::1",), network="net-6")
    registry.add(v6)
    svc = start_service(db_url, v6=True)
    status, body = svc.get("/openstack/latest/meta_data.json", v6=True)
    assert status == 200 and json.loads(body)["uuid"] == v6.uuid


def test_dhcp_domain_is_configurable(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance()
    registry.add(me)
    svc = start_service(db_url, dhcp_domain="example.internal")
    assert svc.get("/latest/meta-data/hostname") == (
        200,
        f"{me.hostname}.example.internal".encode(),
    )
