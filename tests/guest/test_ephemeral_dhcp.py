"""The local stage's ephemeral DHCP lease, for real: a "VM" namespace whose NIC is a veth to a
"network" namespace where dnsmasq serves DHCP and the metadata server answers on
169.254.169.254. Both namespaces are this test's own and are deleted afterwards; nothing is
sent from the machine's own namespace.

The agent's local stage (its own process, inside the VM namespace) must lease an address,
read the instance from the service, render the port's static address, give the lease back,
and leave the NIC exactly as it found it — and, with no DHCP server, give up in bounded time
and carry on with the DHCP fallback as before.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metaboot.guest.system import Root
from tests.guest.helpers import REPO_ROOT, UUID, agent_config, make_root, spec, status

pytestmark = pytest.mark.netns

MAC = "fa:16:3e:11:22:33"  # the port's MAC in helpers.spec(): the rendered config binds to it
NIC = "ens3"
SERVER_IP = "10.77.0.1"
METADATA_IP = "169.254.169.254"


def ip(*args: str, netns: str | None = None) -> str:
    argv = ["ip", *(("-n", netns) if netns else ()), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def namespace_env() -> dict[str, str]:
    """For processes inside the test's namespaces: tests/netguard left out on purpose (the
    link-local address there is the test's own; see tests/guest/test_netns.py)."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT))


@dataclass
class Net:
    vm: str  # the namespace the agent runs in
    net: str  # the namespace of the DHCP server and the metadata service
    workdir: Path


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    suffix = secrets.token_hex(3)
    vm, netns = f"mbvm-{suffix}", f"mbnet-{suffix}"
    ip("netns", "add", vm)
    try:
        ip("netns", "add", netns)
        try:
            ip("link", "set", "lo", "up", netns=netns)
            ip("link", "set", "lo", "up", netns=vm)
            ip("link", "add", NIC, "address", MAC, "type", "veth", "peer", "name", "srv0",
               netns=vm)  # fmt: skip
            ip("link", "set", "srv0", "netns", netns, netns=vm)
            ip("addr", "add", f"{SERVER_IP}/24", "dev", "srv0", netns=netns)
            ip("addr", "add", f"{METADATA_IP}/32", "dev", "srv0", netns=netns)
            ip("link", "set", "srv0", "up", netns=netns)
            yield Net(vm, netns, tmp_path)
        finally:
            subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
    finally:
        subprocess.run(["ip", "netns", "del", vm], check=False, capture_output=True)


@pytest.fixture
def metadata(net: Net) -> Iterator[Net]:
    """The instance's documents served on 169.254.169.254:80 in the network namespace."""
    spec_file = net.workdir / "spec.json"
    spec_file.write_text(json.dumps(spec(user_data="#cloud-config\n{}\n")))
    server = subprocess.Popen(
        ["ip", "netns", "exec", net.net, sys.executable, "-m", "tests.guest.serve_tree",
         str(spec_file), f"{METADATA_IP}:80"],
        stdout=subprocess.PIPE, text=True, env=namespace_env(), cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield net
    finally:
        server.terminate()
        server.wait(10)


def start_dnsmasq(net: Net, *options: str) -> subprocess.Popen[bytes]:
    log = net.workdir / "dnsmasq.log"
    argv = [
        "ip", "netns", "exec", net.net, "dnsmasq", "--keep-in-foreground",
        "--conf-file=/dev/null", "--port=0", "--user=root", "--interface=srv0",
        "--bind-interfaces", "--dhcp-authoritative", "--log-dhcp",
        f"--log-facility={log}", f"--dhcp-leasefile={net.workdir / 'leases'}",
        f"--pid-file={net.workdir / 'dnsmasq.pid'}",
        "--dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,2m", *options,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while "DHCP, IP range" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(f"dnsmasq did not start: {err.decode()}")
        time.sleep(0.05)
    return proc


@pytest.fixture
def dhcp_server(request: pytest.FixtureRequest, net: Net) -> Iterator[Path]:
    options: tuple[str, ...] = getattr(request, "param", ())
    proc = start_dnsmasq(net, *options)
    try:
        yield net.workdir / "dnsmasq.log"
    finally:
        proc.terminate()
        proc.wait(10)


def vm_root(base: Path, **ephemeral: object) -> Root:
    """The tree the agent configures: the VM namespace's NIC, as its /sys would show it."""
    root = make_root(base)
    root.remove("/sys/class/net/eth0/address")
    root.remove("/sys/class/net/eth0/operstate")
    root.remove("/sys/class/net/eth0/carrier")
    root.write_file(f"/sys/class/net/{NIC}/address", f"{MAC}\n")
    agent_config(
        root,
        {
            "datasource_list": ["ConfigDrive", "OpenStack"],
            "datasource": {"OpenStack": {"max_wait": 5, "timeout": 2}},
            # A root that is not the live system: the lease must be asked for explicitly.
            "ephemeral_dhcp": {"enabled": True, "timeout": 5, **ephemeral},
        },
        "20-test.yaml",
    )
    return root


def local_stage(net: Net, root: Root) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "metaboot.cli", "init", "--root", str(root.base)]
    return subprocess.run(
        ["ip", "netns", "exec", net.vm, *argv, "--stage", "local"],
        capture_output=True, text=True, env=namespace_env(), timeout=120, check=False,
    )  # fmt: skip


def nic_state(netns: str) -> tuple[bool, list[str], list[dict[str, object]]]:
    """(administratively up, IPv4 addresses, IPv4 routes) of the VM's NIC."""
    (link,) = json.loads(ip("-j", "addr", "show", "dev", NIC, netns=netns))
    up = "UP" in link["flags"]
    inet = [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == "inet"]
    routes = json.loads(ip("-j", "-4", "route", "show", "table", "all", netns=netns))
    return up, inet, [r for r in routes if r.get("dev") == NIC]


def event(record: dict[str, object], name: str) -> dict[str, object]:
    stages = record["stages"]
    assert isinstance(stages, dict)
    for entry in stages["local"]["events"]:
        if entry["name"] == name:
            return dict(entry)
    raise AssertionError(f"no {name} event in {stages['local']['events']}")


def rendered(root: Root) -> str:
    return root.read_text(f"/etc/systemd/network/10-metaboot-{NIC}.network")


@pytest.mark.parametrize(
    ("dhcp_server", "initially_up"),
    [
        pytest.param((), False, id="router-option-link-down"),
        pytest.param((), True, id="router-option-link-up"),
        # No router at all: the metadata address is reachable only through option 121.
        pytest.param(
            ("--dhcp-option=3", f"--dhcp-option=121,{METADATA_IP}/32,{SERVER_IP}"),
            False,
            id="classless-route-only",
        ),
    ],
    indirect=["dhcp_server"],
)
def test_local_stage_reads_the_service_over_a_lease_and_cleans_up(
    metadata: Net, dhcp_server: Path, initially_up: bool, tmp_path: Path
) -> None:
    net = metadata
    if initially_up:
        ip("link", "set", NIC, "up", netns=net.vm)
    root = vm_root(tmp_path / "root")
    result = local_stage(net, root)
    assert result.returncode == 0, result.stdout + result.stderr

    record = status(root)
    # Found in the local stage, from the service, over the lease.
    assert record["instance_id"] == UUID and record["source"] == "OpenStack"
    assert record["subplatform"] == f"metadata (http://{METADATA_IP})"
    lease = event(record, "ephemeral-dhcp")
    assert str(lease["detail"]).startswith("leased: 10.77.0.")
    assert f"on {NIC} from {SERVER_IP}" in str(lease["detail"])
    assert record["ephemeral_dhcp"]["problems"] == []
    # The port's static address is what the OS network will start with.
    network = rendered(root)
    assert "Address=10.0.0.5/24" in network and f"MACAddress={MAC}" in network
    assert "DHCP=no" in network
    # The server saw the whole exchange, and got the address back.
    log = dhcp_server.read_text()
    assert "DHCPACK(srv0) 10.77.0." in log and MAC in log
    assert "DHCPRELEASE(srv0) 10.77.0." in log
    # The NIC is as it was: no IPv4 address, no route, up only if it was up.
    up, inet, routes = nic_state(net.vm)
    assert (up, inet, routes) == (initially_up, [], [])


def test_no_dhcp_server_costs_the_timeout_and_no_more(net: Net, tmp_path: Path) -> None:
    root = vm_root(tmp_path / "root", timeout=2)
    started = time.monotonic()
    result = local_stage(net, root)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr

    record = status(root)
    assert record.get("source") is None  # nothing found: the network stage asks later
    lease = event(record, "ephemeral-dhcp")
    assert str(lease["detail"]).startswith("no lease: no DHCPOFFER on ens3")
    assert 2.0 <= float(lease["duration"]) < 4.0, lease  # type: ignore[arg-type]
    assert elapsed < 30, elapsed  # a whole agent process, start-up included
    # As before the lease existed: the first NIC gets the DHCP fallback.
    assert "DHCP=ipv4" in rendered(root)
    assert nic_state(net.vm) == (False, [], [])
    # OpenStack is not marked as tried: the network stage still asks it.
    assert "OpenStack" not in record.get("tried", [])


def test_lease_but_no_service_waits_max_wait_then_falls_back(
    net: Net, dhcp_server: Path, tmp_path: Path
) -> None:
    root = vm_root(tmp_path / "root", max_wait=1)
    result = local_stage(net, root)
    assert result.returncode == 0, result.stdout + result.stderr
    record = status(root)
    assert record.get("source") is None
    search = event(record, "search-OpenStack")
    assert str(search["detail"]) == "over the ephemeral lease: absent"
    assert float(search["duration"]) < 3.0, search  # type: ignore[arg-type]
    assert "DHCP=ipv4" in rendered(root)
    assert nic_state(net.vm) == (False, [], [])
    assert "DHCPRELEASE(srv0)" in dhcp_server.read_text()


def test_not_on_another_root_unless_asked(net: Net, dhcp_server: Path, tmp_path: Path) -> None:
    """``auto`` (the default) leases only when the agent configures the live system: run
    against an image tree, the agent must not touch the network it runs on."""
    root = vm_root(tmp_path / "root", enabled="auto")
    result = local_stage(net, root)
    assert result.returncode == 0, result.stdout + result.stderr
    events = [e["name"] for e in status(root)["stages"]["local"]["events"]]
    assert "ephemeral-dhcp" not in events
    assert "DHCPDISCOVER" not in dhcp_server.read_text()
