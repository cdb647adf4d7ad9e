"""Who is asking: every instance reads only its own data, and spoofing never works."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from collections.abc import Callable

import pytest

from metaboot.registry import Registry
from metaboot.service.identify import sign_instance_id
from tests.service.harness import Running, instance

SECRET = b"s3cret-shared-with-the-proxy"


def _uuid_of(body: bytes) -> str:
    return str(json.loads(body)["uuid"])


def test_link_local_ipv6_source_resolves_by_its_mac(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """A guest asking fe80::a9fe:a9fe comes from its EUI-64 link-local address; the same MAC on
    another network is another instance."""
    a = instance(ips=("10.0.0.5",), network="net-a")
    b = instance(ips=("10.0.0.5",), network="net-b")
    registry.add(a)
    registry.add(b)
    svc = start_service(db_url)
    for inst, net in ((a, "net-a"), (b, "net-b")):
        mac = inst.ports[0].mac
        octets = [int(x, 16) for x in mac.split(":")]
        link_local = ipaddress.IPv6Address(
            bytes([0xFE, 0x80, 0, 0, 0, 0, 0, 0, octets[0] ^ 2, octets[1], octets[2], 0xFF, 0xFE,
                   octets[3], octets[4], octets[5]])
        )  # fmt: skip
        status, body = svc.get(
            "/openstack/latest/meta_data.json",
            unix=True,
            headers={"X-Neutron-Network-ID": net, "X-Forwarded-For": str(link_local)},
        )
        assert status == 200 and _uuid_of(body) == inst.uuid
    status, _ = svc.get(
        "/openstack/latest/meta_data.json",
        unix=True,
        headers={"X-Neutron-Network-ID": "net-a", "X-Forwarded-For": "fe80::1"},
    )
    assert status == 404


def test_same_address_on_two_networks_resolves_by_network(
    registry: Registry,
    db_url: str,
    start_service: Callable[..., Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = instance(ips=("10.0.0.5",), network="net-a")
    b = instance(ips=("10.0.0.5",), network="net-b")
    registry.add(a)
    registry.add(b)
    svc = start_service(db_url)
    path = "/openstack/latest/meta_data.json"
    for inst, net in ((a, "net-a"), (b, "net-b")):
        status, body = svc.get(
            path,
            unix=True,
            headers={"X-Neutron-Network-ID": net, "X-Forwarded-For": "10.0.0.5"},
        )
        assert status == 200 and _uuid_of(body) == inst.uuid
        status, body = svc.get(
            "/latest/user-data",
            unix=True,
            headers={"X-Neutron-Network-ID": net, "X-Forwarded-For": "10.0.0.5"},
        )
        assert body == inst.user_data
    # the address alone is ambiguous: 404, never a guess and never a 500, and a log line
    with caplog.at_level(logging.WARNING, logger="metaboot.service"):
        status, _ = svc.get(path, unix=True, headers={"X-Forwarded-For": "10.0.0.5"})
    assert status == 404
    assert any(
        "10.0.0.5" in r.getMessage() and "2 instances" in r.getMessage() for r in caplog.records
    )
    # a network that does not hold the address
    status, _ = svc.get(
        path, unix=True, headers={"X-Neutron-Network-ID": "net-c", "X-Forwarded-For": "10.0.0.5"}
    )
    assert status == 404


def test_router_header_resolves_through_the_routers_networks(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    a = instance(ips=("10.0.0.5",), network="net-a")
    b = instance(ips=("10.0.0.5",), network="net-b")
    registry.add(a)
    registry.add(b)
    registry.add_router("router-1", ["net-b"])
    svc = start_service(db_url)
    status, body = svc.get(
        "/openstack/latest/meta_data.json",
        unix=True,
        headers={"X-Neutron-Router-ID": "router-1", "X-Forwarded-For": "10.0.0.5"},
    )
    assert status == 200 and _uuid_of(body) == b.uuid
    status, _ = svc.get(
        "/openstack/latest/meta_data.json",
        unix=True,
        headers={"X-Neutron-Router-ID": "router-9", "X-Forwarded-For": "10.0.0.5"},
    )
    assert status == 404


def test_network_headers_only_from_trusted_proxies(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    victim = instance(ips=("10.0.0.5",), network="net-a")
    attacker = instance(ips=("127.0.0.2",), network="net-x")
    registry.add(victim)
    registry.add(attacker)
    svc = start_service(db_url, trusted_proxies=(ipaddress.ip_network("127.0.0.3/32"),))
    forged = {"X-Neutron-Network-ID": "net-a", "X-Forwarded-For": "10.0.0.5"}
    # from an untrusted TCP peer (the attacker's own address): refused
    status, body = svc.get("/openstack/latest/meta_data.json", source="127.0.0.2", headers=forged)
    assert status == 403 and victim.uuid.encode() not in body
    status, _ = svc.get(
        "/openstack/latest/meta_data.json",
        source="127.0.0.2",
        headers={"X-Neutron-Router-ID": "r", "X-Forwarded-For": "10.0.0.5"},
    )
    assert status == 403
    # from a trusted TCP proxy: honoured
    status, body = svc.get("/openstack/latest/meta_data.json", source="127.0.0.3", headers=forged)
    assert status == 200 and _uuid_of(body) == victim.uuid
    # both headers at once: 400, even from a trusted peer
    both = {**forged, "X-Neutron-Router-ID": "r"}
    assert svc.get("/openstack/latest/meta_data.json", unix=True, headers=both)[0] == 400
    # a network header without X-Forwarded-For: 400
    assert (
        svc.get(
            "/openstack/latest/meta_data.json",
            unix=True,
            headers={"X-Neutron-Network-ID": "net-a"},
        )[0]
        == 400
    )


def test_forwarded_for_only_from_trusted_proxies(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    victim = instance(ips=("127.0.0.5",), network="n")
    attacker = instance(ips=("127.0.0.2",), network="n")
    registry.add(victim)
    registry.add(attacker)
    svc = start_service(db_url, trusted_proxies=(ipaddress.ip_network("127.0.0.3/32"),))
    path = "/openstack/latest/meta_data.json"
    for header in ("X-Forwarded-For", "Forwarded"):
        value = "127.0.0.5" if header == "X-Forwarded-For" else "for=127.0.0.5"
        status, body = svc.get(path, source="127.0.0.2", headers={header: value})
        assert status == 403 and victim.uuid.encode() not in body
    # a trusted proxy's X-Forwarded-For counts; the right-most entry is the one it wrote
    status, body = svc.get(
        path, source="127.0.0.3", headers={"X-Forwarded-For": "127.0.0.2, 127.0.0.5"}
    )
    assert status == 200 and _uuid_of(body) == victim.uuid
    status, body = svc.get(
        path, source="127.0.0.3", headers={"X-Forwarded-For": "127.0.0.5, 127.0.0.2"}
    )
    assert status == 200 and _uuid_of(body) == attacker.uuid
    # without forwarding headers, the attacker gets only its own data
    status, body = svc.get(path, source="127.0.0.2")
    assert status == 200 and _uuid_of(body) == attacker.uuid


def test_signed_mode(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("10.1.0.5",), project_id="tenant-1")
    other = instance(ips=("10.1.0.6",), project_id="tenant-2")
    registry.add(me)
    registry.add(other)
    svc = start_service(db_url, shared_secret=SECRET)
    path = "/openstack/latest/meta_data.json"
    good = {
        "X-Instance-ID": me.uuid,
        "X-Tenant-ID": "tenant-1",
        "X-Instance-ID-Signature": sign_instance_id(SECRET, me.uuid),
    }
    status, body = svc.get(path, headers=good)
    assert status == 200 and _uuid_of(body) == me.uuid
    for missing in ("X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature"):
        headers = {k: v for k, v in good.items() if k != missing}
        status, body = svc.get(path, headers=headers)
        assert status == 400 and missing.encode() in body
    # a forged signature, an unsigned id, a signature made with the wrong secret
    for signature in ("0" * 64, "", sign_instance_id(b"guess", me.uuid)):
        status, _ = svc.get(path, headers={**good, "X-Instance-ID-Signature": signature})
        assert status == 403
    # another tenant's id with a valid signature (a leaked signature): 404
    status, body = svc.get(path, headers={**good, "X-Tenant-ID": "tenant-2"})
    assert status == 404 and me.uuid.encode() not in body
    # a correctly signed id of an unknown instance: 404
    ghost = "0b0b0b0b-0000-4000-8000-000000000000"
    status, _ = svc.get(
        path,
        headers={
            "X-Instance-ID": ghost,
            "X-Tenant-ID": "tenant-1",
            "X-Instance-ID-Signature": sign_instance_id(SECRET, ghost),
        },
    )
    assert status == 404


def test_signed_headers_refused_when_signed_mode_is_off(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.1",))
    registry.add(me)
    svc = start_service(db_url)
    status, _ = svc.get(
        "/openstack/latest/meta_data.json",
        headers={
            "X-Instance-ID": me.uuid,
            "X-Tenant-ID": me.project_id,
            "X-Instance-ID-Signature": sign_instance_id(b"", me.uuid),
        },
    )
    assert status == 403


def test_randomised_forgeries_never_leak(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """An attacker on 127.0.0.2 tries forged headers of every kind; it only ever gets its own
    data or a 400/403/404, never the victims'."""
    attacker = instance(ips=("127.0.0.2",), network="net-x", project_id="p-att")
    victims = [
        instance(ips=("127.0.0.5",), network="net-a", project_id="p-1"),
        instance(ips=("10.0.0.5",), network="net-a", project_id="p-1"),
        instance(ips=("10.0.0.5",), network="net-b", project_id="p-2"),
    ]
    for inst in (attacker, *victims):
        registry.add(inst)
    registry.add_router("router-a", ["net-a"])
    svc = start_service(db_url, shared_secret=SECRET)
    rng = random.Random(20261127)
    victim_ids = [v.uuid.encode() for v in victims]
    victim_users = [v.user_data for v in victims]
    leaks = 0
    statuses: dict[int, int] = {}
    paths = ["/openstack/latest/meta_data.json", "/latest/user-data", "/latest/meta-data/"]
    listing = svc.get("/latest/meta-data/", source="127.0.0.2")[1]
    for _ in range(300):
        headers: dict[str, str] = {}
        target = rng.choice(victims)
        for name in rng.sample(
            ["xff", "fwd", "net", "router", "iid", "tenant", "sig"], rng.randint(1, 4)
        ):
            if name == "xff":
                headers["X-Forwarded-For"] = rng.choice(["10.0.0.5", "127.0.0.5", "::1", "x"])
            elif name == "fwd":
                headers["Forwarded"] = "for=10.0.0.5"
            elif name == "net":
                headers["X-Neutron-Network-ID"] = rng.choice(["net-a", "net-b"])
            elif name == "router":
                headers["X-Neutron-Router-ID"] = "router-a"
            elif name == "iid":
                headers["X-Instance-ID"] = target.uuid
            elif name == "tenant":
                headers["X-Tenant-ID"] = target.project_id
            else:
                headers["X-Instance-ID-Signature"] = rng.choice(
                    ["0" * 64, sign_instance_id(b"wrong", target.uuid), "z"]
                )
        path = rng.choice(paths)
        status, body = svc.get(path, source="127.0.0.2", headers=headers)
        statuses[status] = statuses.get(status, 0) + 1
        if any(v in body for v in victim_ids) or any(u and u in body for u in victim_users):
            leaks += 1
        assert status in (200, 400, 403, 404), status
        if status == 200:  # then only ever the attacker's own documents
            if path.endswith(".json"):
                assert _uuid_of(body) == attacker.uuid
            elif path.endswith("user-data"):
                assert body == attacker.user_data
            else:
                assert body == listing
    assert leaks == 0
    assert statuses.get(403, 0) > 0 and statuses.get(400, 0) > 0
