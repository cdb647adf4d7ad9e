"""The rendered static configuration, applied in a network namespace the test creates, yields
the addresses, routes and MTUs the network_data asked for (read back with ``ip -j``).

Two appliers: the ``ip`` commands derived from the model, and the real systemd-networkd
reading the rendered ``.network`` files (run inside the namespace with a private mount
namespace, so it sees only our files and touches nothing outside)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.network import renderers
from metaboot.guest.network.iproute import ip_commands
from metaboot.guest.network.model import Problems
from metaboot.guest.network.nics import Nic, bind
from metaboot.guest.network.openstack import parse_network_data
from tests.guest.network.netcases import CASES, NICS
from tests.guest.network.netnamespace import (
    NETWORKD_SCRIPT,
    addresses,
    ip,
    mtus,
    namespace,
    routes,
)

pytestmark = pytest.mark.netns

DEVICES = set(NICS)
# Expected from the documents in netcases, written out by hand (not derived by our code).
EXPECTED: dict[str, dict[str, Any]] = {
    "dual_stack": {
        "addresses": {"ens3": {"192.0.2.10/24", "2001:db8:10::10/64"}},
        "routes": {("0.0.0.0/0", "192.0.2.1", "ens3"), ("::/0", "2001:db8:10::1", "ens3")},
        "mtu": {"ens3": 1500},
    },
    "several_nics": {
        "addresses": {"ens3": {"198.51.100.20/24"}, "ens4": {"10.20.0.5/16"}},
        "routes": {("0.0.0.0/0", "198.51.100.1", "ens3")},
        "mtu": {},
    },
    "mtu_routes": {
        "addresses": {"ens3": {"203.0.113.7/25"}, "ens4": {"10.99.0.7/24"}},
        "routes": {
            ("0.0.0.0/0", "203.0.113.1", "ens3"),
            ("10.30.0.0/16", "203.0.113.126", "ens3"),
            ("192.168.77.9/32", "203.0.113.126", "ens3"),
            ("10.98.0.0/16", "10.99.0.1", "ens4"),
        },
        "mtu": {"ens3": 1450, "ens4": 9000},
    },
}


def bound(case: str):  # type: ignore[no-untyped-def]
    model, problems = parse_network_data(CASES[case])
    assert problems == []
    binding = Problems()
    network = bind(model, [Nic(n, m) for n, m in NICS.items()], binding)
    assert binding.messages == []
    return network


def check(netns: str, case: str) -> None:
    expected = EXPECTED[case]
    found = addresses(netns, DEVICES)
    for device in DEVICES:
        assert found[device] == expected["addresses"].get(device, set()), device
    assert routes(netns, DEVICES) == expected["routes"]
    found_mtu = mtus(netns, DEVICES)
    for device, mtu in expected["mtu"].items():
        assert found_mtu[device] == mtu


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_ip_commands_yield_the_configuration(case: str) -> None:
    with namespace(NICS) as netns:
        for argv in ip_commands(bound(case), nodad=True):
            subprocess.run(["ip", "-n", netns, *argv[1:]], check=True, capture_output=True)
        check(netns, case)


def run_networkd(netns: str, config_dir: Path, case: str, deadline: float = 30.0) -> str:
    """Start networkd on ``config_dir`` inside ``netns`` until the expected state appears or
    the deadline passes; return its log."""
    script = config_dir.parent / "run-networkd.sh"
    script.write_text(NETWORKD_SCRIPT)
    env = {
        "SYSTEMD_LOG_TARGET": "console",
        "SYSTEMD_LOG_LEVEL": "info",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    log = config_dir.parent / "networkd.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
             "sh", str(script), str(config_dir)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            end = time.monotonic() + deadline
            while time.monotonic() < end and proc.poll() is None:
                try:
                    check(netns, case)
                    break
                except AssertionError:
                    time.sleep(0.2)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return log.read_text()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_systemd_networkd_applies_rendered_files(case: str, tmp_path: Path) -> None:
    if not Path("/usr/lib/systemd/systemd-networkd").exists():
        pytest.fail("systemd-networkd is missing (package systemd)")
    config_dir = tmp_path / "network"
    config_dir.mkdir()
    for path, data in renderers.render("networkd", bound(case)).items():
        (config_dir / Path(path).name).write_bytes(data)
    with namespace(NICS) as netns:
        log = run_networkd(netns, config_dir, case)
        assert "Unknown key" not in log and "Failed to parse" not in log, log
        assert "Invalid" not in log, log
        check(netns, case)


def test_namespace_is_removed() -> None:
    with namespace(NICS) as netns:
        assert netns in ip("netns", "list")
    assert netns not in ip("netns", "list")
