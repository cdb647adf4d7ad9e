"""The proxy inside real tenant networks (network namespaces), stamping for a stand-in upstream
that echoes what arrived: what exactly reaches the service from each path — qdhcp and qrouter,
IPv4 and link-local IPv6 — whatever the VM forges."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import EchoUpstream
from tests.proxy.netns import VM_IPV4, VM_IPV6, TenantNetwork, Topology

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoUpstream]:
    upstream = EchoUpstream(f"unix:{tmp_path_factory.mktemp('echo')}/upstream.sock")
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
def stamped(topology: Topology, echo: EchoUpstream) -> Iterator[Topology]:
    for net in topology.networks:
        net.start_proxy(echo.address, "--client-timeout", "2", "--retry-after", "2")
    try:
        yield topology
    finally:
        for net in topology.networks:
            net.stop_proxy()


FORGERIES = [
    "-H", "X-Forwarded-For: 10.0.0.6",
    "-H", "Forwarded: for=10.0.0.6",
    "-H", "X-Neutron-Network-ID: net-other",
    "-H", "X-Neutron-Router-ID: router-other",
    "-H", "X-Instance-ID: 00000000-0000-0000-0000-000000000000",
    "-H", "X-Instance-ID-Signature: 0000",
    "-H", "X-Tenant-ID: other",
    "-H", "X_Forwarded_For: 10.0.0.7",
]  # fmt: skip


def identity_of(net: TenantNetwork) -> tuple[str, str]:
    if net.router_id is not None:
        return ("x-neutron-router-id", net.router_id)
    return ("x-neutron-network-id", net.network_id)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("label", ["A", "B"])
def test_each_path_stamps_the_vm_address_and_its_network(
    stamped: Topology, label: str, family: int
) -> None:
    net = stamped.a if label == "A" else stamped.b
    status, _, body = net.curl("/openstack/latest/meta_data.json", family=family)
    assert status == 200
    headers = [(k.lower(), v) for k, v in json.loads(body)["headers"]]
    source = VM_IPV4 if family == 4 else VM_IPV6
    assert [h for h in headers if h[0].startswith("x-")] == [
        ("x-forwarded-for", source),
        identity_of(net),
    ]
    # Forged identity never survives, and the forwarding marks it as client-proxied.
    status, _, body = net.curl("/latest/meta-data/", *FORGERIES, family=family)
    headers = [(k.lower(), v) for k, v in json.loads(body)["headers"]]
    assert [h for h in headers if h[0].startswith(("x-", "forwarded"))] == [
        ("x-forwarded-for", source),
        identity_of(net),
        ("x-metaboot-client-forwarded", "1"),
    ]


def test_router_port_is_only_reachable_through_the_redirect(stamped: Topology) -> None:
    assert stamped.b.curl("/", timeout=3)[0] == 200
    direct = subprocess.run(
        [*stamped.b.vm.exec_prefix(), "curl", "-s", "--max-time", "3", "http://10.0.0.1:9697/"],
        capture_output=True,
        timeout=20,
    )
    assert direct.returncode == 7  # connection refused: the reject rule, not the proxy


def test_host_children_stay_guarded_while_vm_namespaces_are_not(stamped: Topology) -> None:
    probe = (
        "import json, socket\n"
        "try:\n"
        "    socket.create_connection(('169.254.169.254', 80), timeout=3).close(); r = 'ok'\n"
        "except PermissionError: r = 'refused'\n"
        "print(json.dumps(r))\n"
    )
    host = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    assert json.loads(host.stdout) == "refused"
    assert stamped.a.python(probe) == "ok"


LORIS = """
import json, socket, time
s = socket.create_connection(("169.254.169.254", 80), timeout=10)
s.sendall(b"GET / HTTP/1.1\\r\\n")
start = time.monotonic()
outcome = "held"
s.settimeout(0.2)
while time.monotonic() - start < 8:
    try:
        s.sendall(b"X-Drip: 1\\r\\n")  # a header line every 0.2 s, never the end
        data = s.recv(100)
        outcome = data[:12].decode() if data else "closed"
        break
    except TimeoutError:
        continue
    except OSError as err:
        outcome = type(err).__name__
        break
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - start}))
"""


def test_slow_loris_in_one_vm_does_not_block_the_other_or_itself(stamped: Topology) -> None:
    result: dict[str, object] = {}
    loris = threading.Thread(target=lambda: result.update(stamped.a.python(LORIS, timeout=30)))
    loris.start()
    try:
        time.sleep(0.5)
        for net in stamped.networks:  # both networks, the loris's own included, are served
            started = time.monotonic()
            assert net.curl("/latest/meta-data/")[0] == 200
            assert time.monotonic() - started < 1.5
    finally:
        loris.join(30)
    assert result["outcome"] == "HTTP/1.1 408", result
    assert isinstance(result["seconds"], float) and result["seconds"] < 5


def test_upstream_down_gives_503_and_recovery(stamped: Topology, echo: EchoUpstream) -> None:
    echo.stop()
    try:
        for net in stamped.networks:
            status, headers, _ = net.curl("/openstack")
            assert status == 503
            assert headers["retry-after"] == "2"
    finally:
        echo.start()
    deadline = time.monotonic() + 10
    while stamped.a.curl("/openstack")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert stamped.b.curl("/openstack")[0] == 200


def test_access_log_names_the_network_and_source(
    topology: Topology, echo: EchoUpstream, tmp_path: Path
) -> None:
    net = topology.a
    net.stop_proxy()
    try:
        proxy = net.start_proxy(echo.address, log=tmp_path / "a.log")
        assert net.curl("/latest/meta-data/instance-id")[0] == 200
        proxy.stop()
        [record] = proxy.access_log()
        assert record["network_id"] == net.network_id
        assert record["source"] == VM_IPV4
        assert record["path"] == "/latest/meta-data/instance-id"
    finally:
        net.stop_proxy()
