"""End to end: VMs in two tenant networks with the SAME addresses reach the real metadata service
(``metaboot serve`` on a UNIX socket) through the qdhcp-style and the qrouter-style proxy.

Each VM namespace holds three "VMs" of its network: .5/::5 (tokens optional), .6/::6 (tokens
required), .7/::7 (metadata endpoint disabled). Every instance has secrets of its own (hostname,
metadata, user-data, key comment, password); every answer a VM gets is checked against the
OTHER network's secrets.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from metaboot.metadata.instance import parse_spec
from metaboot.registry import Registry
from tests import reference
from tests.proxy.metadata_service import ServiceProcess
from tests.proxy.netns import VM_IPV4, VM_IPV6, TenantNetwork, Topology

pytestmark = pytest.mark.netns

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"
SHARED_SECRET = secrets.token_hex(16)
BASE_CONFIG = (
    f'[rate_limit]\nrequests = 0\n\n[identify]\ndirect = false\nshared_secret = "{SHARED_SECRET}"\n'
)
PASSWORD_PATH = "/openstack/2013-04-04/password"


@dataclass
class Tenant:
    """One network's instances and the secrets only its VMs may ever see."""

    net: TenantNetwork
    uuids: dict[int, str]  # host part (5, 6, 7) -> instance uuid
    secrets: list[str]
    password: str

    def source(self, host: int, family: int) -> str:
        return f"10.0.0.{host}" if family == 4 else f"fe80::{host}"


def _spec(tenant_label: str, network_id: str, host: int, marker: str) -> dict[str, Any]:
    policy = {6: {"http_tokens": "required"}, 7: {"http_endpoint": "disabled"}}.get(host, {})
    return {
        "uuid": str(__import__("uuid").uuid4()),
        "name": f"vm-{tenant_label}{host}-{marker}",
        "hostname": f"host-{tenant_label}{host}-{marker}",
        "project_id": f"project-{tenant_label}-{marker}",
        "keys": [
            {
                "name": f"key-{tenant_label}",
                "type": "ssh",
                "data": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{marker} keycomment-{marker}",
            }
        ],
        "meta": {"secret": f"meta-{marker}"},
        "user_data": f"#cloud-config\n# userdata-{marker}\n",
        "ports": [
            {
                "network_id": network_id,
                "mac": "fa:16:3e:00:%02x:%02x" % (ord(tenant_label), host),  # noqa: UP031
                "fixed_ips": [f"10.0.0.{host}/24", f"fe80::{host}/64"],
            }
        ],
        "metadata_options": policy,
    }


@dataclass
class Cloud:
    topology: Topology
    service: ServiceProcess
    tenants: dict[str, Tenant]

    def other(self, label: str) -> Tenant:
        return self.tenants["B" if label == "A" else "A"]


@pytest.fixture(scope="module")
def cloud(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    if not reference.available():
        pytest.fail("Debian's cloud-init is not unpacked: run scripts/setup-system")
    workdir = tmp_path_factory.mktemp("e2e")
    db_url = f"sqlite:///{workdir / 'registry.db'}"
    tenants: dict[str, Tenant] = {}
    with Registry.open(db_url) as registry:
        for net in topology.networks:
            uuids, marks = {}, []
            for host in (5, 6, 7):
                marker = f"{net.label.lower()}{host}-{secrets.token_hex(6)}"
                instance = parse_spec(_spec(net.label, net.network_id, host, marker))
                registry.add(instance)
                uuids[host] = instance.uuid
                marks += [instance.uuid, marker]
            if net.router_id is not None:
                registry.add_router(net.router_id, [net.network_id])
            password = f"password-{net.label.lower()}-{secrets.token_hex(8)}"
            tenants[net.label] = Tenant(net, uuids, [*marks, password], password)
    service = ServiceProcess(db_url, workdir, BASE_CONFIG)
    service.start()
    try:
        for net in topology.networks:
            net.start_proxy(
                service.upstream,
                "--client-timeout", "3", "--upstream-timeout", "3", "--connect-timeout", "1",
                "--retry-after", "2", log=workdir / f"access-{net.label}.log",
            )  # fmt: skip
        yield Cloud(topology, service, tenants)
    finally:
        for net in topology.networks:
            net.stop_proxy()
        service.stop()


def leaks(cloud: Cloud, label: str, bodies: list[str]) -> list[str]:
    """Every secret of the other network found in what a VM of network ``label`` received."""
    foreign = cloud.other(label).secrets
    return [s for body in bodies for s in foreign if s in body]


# -- isolation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("label", ["A", "B"])
def test_curl_reads_its_own_instance_and_nothing_else(
    cloud: Cloud, label: str, family: int
) -> None:
    tenant = cloud.tenants[label]
    net = tenant.net
    status, _, body = net.curl("/openstack/latest/meta_data.json", family=family)
    assert status == 200, body
    meta = json.loads(body)
    assert meta["uuid"] == tenant.uuids[5]
    bodies = [body.decode()]
    for path in (
        "/latest/meta-data/instance-id",
        "/latest/meta-data/hostname",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/user-data",
        "/openstack/latest/user_data",
        "/openstack/latest/network_data.json",
    ):
        status, _, body = net.curl(path, family=family)
        assert status == 200, (path, body)
        bodies.append(body.decode())
    assert tenant.secrets[1] in bodies[-2]  # this VM's own user-data marker
    assert leaks(cloud, label, bodies) == []


@pytest.mark.cloudinit
@pytest.mark.parametrize("label", ["A", "B"])
def test_cloud_init_reads_its_own_instance_through_the_proxy(cloud: Cloud, label: str) -> None:
    """Debian's cloud-init, inside the VM namespace, at its real default address."""
    tenant = cloud.tenants[label]
    snippet = """
from cloudinit.sources.helpers import openstack, ec2
reader = openstack.MetadataReader("http://169.254.169.254")
data = reader.read_v2()
result = {
    "uuid": data["metadata"]["uuid"],
    "hostname": data["metadata"]["hostname"],
    "userdata": data["userdata"],
    "ec2_instance_id": data["ec2-metadata"]["instance-id"],
    "keys": data["metadata"]["public_keys"],
}
"""
    code = reference._PRELUDE + snippet + reference._EPILOGUE
    out = tenant.net.vm.run(
        "env", f"PYTHONPATH={reference.CLOUDINIT_PATH}", reference.DEBIAN_PYTHON, "-c", code,
        timeout=120,
    )  # fmt: skip
    result = reference.unbytes(json.loads(out.rsplit("@@RESULT@@", 1)[1]))
    assert result["uuid"] == tenant.uuids[5]
    assert result["hostname"].startswith(f"host-{label}5-")
    assert tenant.secrets[1].encode() in result["userdata"]
    assert leaks(cloud, label, [json.dumps(reference.unbytes(result), default=repr)]) == []


AGENT_SNIPPET = """
import dataclasses, json, logging, sys, tempfile
from metaboot.guest.sources import ec2, openstack
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.system import Root
source = {"OpenStack": openstack, "Ec2": ec2}[sys.argv[1]]
settings = {"metadata_urls": [sys.argv[2]], "max_wait": 10, "timeout": 5, "crawl_ec2": True}
with tempfile.TemporaryDirectory() as root:
    ctx = SourceContext(root=Root(root), settings=settings, log=logging.getLogger("agent"))
    data = source.read(ctx)
out = dataclasses.asdict(data)
out["user_data"] = (data.user_data or b"").decode("utf-8", "replace")
print(json.dumps(out, default=repr))
"""


@pytest.mark.parametrize("source", ["OpenStack", "Ec2"])
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("label", ["A", "B"])
def test_agent_reads_its_own_instance_through_the_proxy(
    cloud: Cloud, label: str, family: int, source: str
) -> None:
    """metaboot's own agent (its HTTP sources), inside the VM, at the metadata address."""
    tenant = cloud.tenants[label]
    url = (
        "http://169.254.169.254" if family == 4 else f"http://[fe80::a9fe:a9fe%{tenant.net.vm_if}]"
    )
    out = tenant.net.vm.run(sys.executable, "-c", AGENT_SNIPPET, source, url, timeout=120)
    data = json.loads(out)
    expected = tenant.uuids[5] if source == "OpenStack" else _ec2_id(cloud, tenant, 5)
    assert data["instance_id"] == expected
    assert tenant.secrets[1] in data["user_data"]
    assert leaks(cloud, label, [out]) == []


@pytest.mark.parametrize("label", ["A", "B"])
def test_password_is_set_once_and_stays_in_its_instance(cloud: Cloud, label: str) -> None:
    tenant = cloud.tenants[label]
    first, second, read = tenant.net.client(
        [
            {"method": "POST", "path": PASSWORD_PATH, "body": tenant.password},
            {"method": "POST", "path": PASSWORD_PATH, "body": "another-" + tenant.password},
            {"method": "GET", "path": PASSWORD_PATH},
        ]
    )
    assert (first["status"], second["status"]) == (200, 409)
    assert read["status"] == 200 and read["body"] == tenant.password
    assert cloud.other(label).password not in read["body"]


# -- spoofing ----------------------------------------------------------------------------------
def _forgeries(
    rng: random.Random, victim: Tenant, stolen_token: str, expired: str
) -> list[dict[str, Any]]:
    """Randomised requests that claim the victim's identity every way a guest could try."""
    victim_uuid = victim.uuids[5]
    claims = [
        ("X-Forwarded-For", lambda: rng.choice(["10.0.0.5", "10.0.0.9", "127.0.0.1", "fe80::5"])),
        ("X-Forwarded-For", lambda: f"10.0.0.{rng.randint(1, 254)}, 10.0.0.5"),
        ("Forwarded", lambda: f"for={rng.choice(['10.0.0.5', '[fe80::5]'])}"),
        ("X-Neutron-Network-ID", lambda: victim.net.network_id),
        ("X-Neutron-Router-ID", lambda: victim.net.router_id or "router-x"),
        ("X-OVN-Network-ID", lambda: victim.net.network_id),
        ("X-Instance-ID", lambda: victim_uuid),
        ("X-Tenant-ID", lambda: f"project-{victim.net.label}"),
        (
            "X-Instance-ID-Signature",
            lambda: rng.choice(
                [
                    secrets.token_hex(32),
                    __import__("hmac").new(b"guess", victim_uuid.encode(), "sha256").hexdigest(),
                ]
            ),
        ),
        (TOKEN, lambda: rng.choice([stolen_token, expired, stolen_token[:-1] + "A"])),
        ("X-Metaboot-Client-Forwarded", lambda: "0"),
    ]
    paths = [
        "/openstack/latest/meta_data.json",
        "/openstack/latest/user_data",
        "/openstack/latest/vendor_data2.json",
        "/openstack/latest/network_data.json",
        PASSWORD_PATH,
        "/latest/meta-data/instance-id",
        "/latest/meta-data/hostname",
        "/latest/meta-data/public-keys/0/openssh-key",
        "/latest/user-data",
        "/2009-04-04/meta-data/",
        f"http://169.254.169.254/openstack/latest/meta_data.json?id={victim_uuid}",
    ]
    requests = []
    for _ in range(1500):
        headers = []
        for name, make in rng.sample(claims, rng.randint(1, 5)):
            spelled = "".join(c.upper() if rng.random() < 0.3 else c.lower() for c in name)
            if rng.random() < 0.2:
                spelled = spelled.replace("-", "_")
            headers.append([spelled, make()])
            if rng.random() < 0.1:
                headers.append([spelled, make()])  # duplicated
        method = "PUT" if rng.random() < 0.05 else "GET"
        path = "/latest/api/token" if method == "PUT" else rng.choice(paths)
        if method == "PUT":
            headers.append([TTL, "60"])
        requests.append({"method": method, "path": path, "headers": headers,
                         "family": rng.choice([4, 6])})  # fmt: skip
    return requests


def test_thousands_of_forged_requests_leak_nothing(cloud: Cloud) -> None:
    rng = random.Random(secrets.randbits(32))
    tokens = {}
    for label, tenant in cloud.tenants.items():
        fresh, short = tenant.net.client(
            [
                {"method": "PUT", "path": "/latest/api/token", "headers": [[TTL, "300"]]},
                {"method": "PUT", "path": "/latest/api/token", "headers": [[TTL, "1"]]},
            ]
        )
        tokens[label] = (fresh["body"], short["body"])
    time.sleep(1.5)  # the short tokens expire
    for label, tenant in cloud.tenants.items():
        victim = cloud.other(label)
        stolen, _ = tokens[victim.net.label]
        _, expired = tokens[label]
        requests = _forgeries(rng, victim, stolen, expired)
        results = tenant.net.client(requests)
        assert len(results) == len(requests)
        assert leaks(cloud, label, [r.get("body", "") for r in results]) == []
        statuses = [r["status"] for r in results]
        assert 0 not in statuses, [r for r in results if r["status"] == 0][:3]
        for request, result in zip(requests, results, strict=True):
            names = {n.lower().replace("_", "-") for n, _ in request["headers"]}
            if request["method"] == "PUT":
                # a token PUT that passed through a proxy on the VM side is refused
                if {"x-forwarded-for", "forwarded"} & names:
                    assert result["status"] == 403, (request, result)
                else:
                    assert result["status"] in (200, 401), (request, result)
            elif TOKEN.lower() in {n.lower() for n, _ in request["headers"]}:
                # a stolen, expired or mangled token is refused, never honoured (spelled with
                # underscores it is no token header at all, and the request is simply v1)
                assert result["status"] == 401, (request, result)
        # Whatever identity was claimed, what came back is this VM's own.
        own = [r["body"] for r, q in zip(results, requests, strict=True)
               if r["status"] == 200 and q["path"].endswith("meta_data.json")]  # fmt: skip
        assert own, "no forged request reached the documents at all"
        assert all(json.loads(body)["uuid"] == tenant.uuids[5] for body in own)


# -- tokens --------------------------------------------------------------------------------------
def _token_requests(family: int, source: str) -> list[dict[str, Any]]:
    put = {"method": "PUT", "path": "/latest/api/token", "family": family, "source": source}
    return [
        {**put, "headers": [[TTL, "21600"]]},
        {**put, "headers": [[TTL, "1"]]},
        {**put, "headers": [[TTL, "0"]]},
        {**put, "headers": [[TTL, "21601"]]},
        {**put, "headers": []},
        {**put, "method": "GET", "headers": [[TTL, "60"]]},
        {**put, "method": "POST", "headers": [[TTL, "60"]]},
        {**put, "path": "/2021-03-23/api/token", "headers": [[TTL, "60"]]},
        {**put, "headers": [[TTL, "60"], ["X-Forwarded-For", "10.0.0.5"]]},
        {**put, "headers": [[TTL, "60"], ["Forwarded", "for=10.0.0.5"]]},
    ]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("label", ["A", "B"])
def test_token_semantics_through_the_proxy(cloud: Cloud, label: str, family: int) -> None:
    tenant, other = cloud.tenants[label], cloud.other(label)
    me = tenant.source(5, family)
    replies = tenant.net.client(_token_requests(family, me))
    assert [r["status"] for r in replies] == [200, 200, 400, 400, 400, 405, 405, 403, 403, 403]
    assert replies[5]["headers"]["allow"] == "OPTIONS, PUT"
    token, short = replies[0]["body"], replies[1]["body"]
    assert len(token) >= 32 and token != short
    read = {"path": "/latest/meta-data/instance-id", "family": family, "source": me}
    [ok] = tenant.net.client([{**read, "headers": [[TOKEN, token]]}])
    assert ok["status"] == 200 and ok["body"] == _ec2_id(cloud, tenant, 5)
    # the same token from the other network's VM at the very same address: refused
    [theirs] = other.net.client([{**read, "headers": [[TOKEN, token]]}])
    assert theirs["status"] == 401 and leaks(cloud, other.net.label, [theirs["body"]]) == []
    # the token of this network's other VM (bound to another instance): refused
    [neighbour] = tenant.net.client(
        [{**read, "source": tenant.source(6, family), "headers": [[TOKEN, token]]}]
    )
    assert neighbour["status"] == 401
    time.sleep(1.5)
    [expired] = tenant.net.client([{**read, "headers": [[TOKEN, short]]}])
    assert expired["status"] == 401


def _ec2_id(cloud: Cloud, tenant: Tenant, host: int) -> str:
    with Registry.open(cloud.service.db_url) as registry:
        return registry.get(tenant.uuids[host]).ec2_instance_id


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("label", ["A", "B"])
def test_required_tokens_and_disabled_endpoint(cloud: Cloud, label: str, family: int) -> None:
    tenant = cloud.tenants[label]
    strict, off = tenant.source(6, family), tenant.source(7, family)
    paths = ["/latest/meta-data/instance-id", "/openstack/latest/meta_data.json", "/openstack"]
    replies = tenant.net.client(
        [{"path": p, "family": family, "source": strict} for p in paths]
        + [
            {
                "method": "PUT",
                "path": "/latest/api/token",
                "headers": [[TTL, "60"]],
                "family": family,
                "source": strict,
            }
        ]
    )
    assert [r["status"] for r in replies] == [401, 401, 401, 200]
    token = replies[-1]["body"]
    replies = tenant.net.client(
        [
            {"path": p, "family": family, "source": strict, "headers": [[TOKEN, token]]}
            for p in paths
        ]
    )
    assert [r["status"] for r in replies] == [200, 200, 200]
    assert json.loads(replies[1]["body"])["uuid"] == tenant.uuids[6]
    replies = tenant.net.client(
        [{"path": p, "family": family, "source": off} for p in paths]
        + [
            {
                "method": "PUT",
                "path": "/latest/api/token",
                "headers": [[TTL, "60"]],
                "family": family,
                "source": off,
            }
        ]
    )
    assert [r["status"] for r in replies] == [403, 403, 403, 403]
    assert leaks(cloud, label, [r["body"] for r in replies]) == []


# -- rate limits and faults (these restart the service under the proxies) -----------------------
@pytest.fixture
def restore_service(cloud: Cloud) -> Iterator[ServiceProcess]:
    try:
        yield cloud.service
    finally:
        if cloud.service.proc is not None:
            cloud.service.resume()  # harmless when it was not paused
        cloud.service.stop()
        cloud.service.start(BASE_CONFIG)


@pytest.mark.parametrize("family", [4, 6])
def test_rate_limits_per_instance(
    cloud: Cloud, restore_service: ServiceProcess, family: int
) -> None:
    restore_service.stop()
    restore_service.start(BASE_CONFIG.replace("requests = 0", "requests = 4\nwindow_seconds = 60"))
    a, b = cloud.tenants["A"], cloud.tenants["B"]
    burst = [{"path": "/latest/meta-data/instance-id", "family": family}] * 6
    replies = a.net.client(burst)
    assert [r["status"] for r in replies] == [200, 200, 200, 200, 429, 429]
    assert 1 <= int(replies[4]["headers"]["retry-after"]) <= 60
    # Network B's VM has the same address but is another instance, with its own budget.
    assert [r["status"] for r in b.net.client(burst)] == [200, 200, 200, 200, 429, 429]


def test_service_stopped_mid_load_gives_503_then_recovers(
    cloud: Cloud, restore_service: ServiceProcess
) -> None:
    import threading

    outcomes: dict[str, list[dict[str, Any]]] = {}

    def load(label: str) -> None:
        outcomes[label] = cloud.tenants[label].net.load(
            path="/openstack/latest/meta_data.json",
            expect=cloud.tenants[label].uuids[5],
            duration=7,
            interval=0.05,
            timeout=8,
        )

    threads = [threading.Thread(target=load, args=(label,)) for label in cloud.tenants]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    restore_service.kill()
    time.sleep(2.0)
    restore_service.start(BASE_CONFIG)
    for thread in threads:
        thread.join(60)
    for label, records in outcomes.items():
        statuses = [r["status"] for r in records]
        assert set(statuses) <= {200, 503}, records
        outage = [r for r in records if r["status"] == 503]
        assert outage, f"{label}: the outage was never seen"
        assert all(r["retry_after"] == "2" for r in outage)
        assert all(r["ok_body"] for r in records if r["status"] == 200)
        assert records[-1]["status"] == 200 and records[-1]["ok_body"], records[-5:]
        assert max(r["seconds"] for r in records) < 3.0  # nothing waits past the timeouts


def test_hung_service_gives_504_within_the_timeout(
    cloud: Cloud, restore_service: ServiceProcess
) -> None:
    restore_service.pause()
    started = time.monotonic()
    status, headers, _ = cloud.tenants["A"].net.curl("/latest/meta-data/instance-id")
    waited = time.monotonic() - started
    restore_service.resume()
    assert status == 504 and headers["retry-after"] == "2"
    assert 2.5 < waited < 6
    assert cloud.tenants["A"].net.curl("/latest/meta-data/instance-id")[0] == 200


def test_access_logs_hold_no_secrets(cloud: Cloud) -> None:
    for label, tenant in cloud.tenants.items():
        text = (cloud.service.workdir / f"access-{label}.log").read_text()
        records = [json.loads(line) for line in text.splitlines()]
        assert records, "nothing logged"
        key = "router_id" if tenant.net.router_id else "network_id"
        assert {r[key] for r in records} == {tenant.net.router_id or tenant.net.network_id}
        assert {r["source"] for r in records} <= {VM_IPV4, VM_IPV6, "10.0.0.6", "10.0.0.7",
                                                  "fe80::6", "fe80::7"}  # fmt: skip
        own_ids = set(tenant.uuids.values())  # the log names the instance it served
        for secret in tenant.secrets:
            if secret not in own_ids:
                assert secret not in text
        for secret in cloud.other(label).secrets:
            assert secret not in text
        # Each answer names the instance the service answered for, and only this network's:
        # a source maps to the same instance in every record, forged or not.
        served = [r for r in records if r["status"] == 200]
        assert served and all(r["instance"] in tenant.uuids.values() for r in served)
        by_source: dict[str, set[str]] = {}
        for record in records:
            if record["instance"] is not None:
                by_source.setdefault(record["source"], set()).add(record["instance"])
        for source, seen in by_source.items():
            host = int(source.rsplit(".", 1)[-1] if "." in source else source.rsplit(":", 1)[-1])
            assert seen == {tenant.uuids[host]}, source
