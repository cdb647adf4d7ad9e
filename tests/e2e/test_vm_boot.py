"""Real VMs, end to end: {cloud-init, metaboot agent} × {metadata service, ISO drive, VFAT drive}.

Each scenario boots a cached Debian 12 image in QEMU (TCG here), from our service through our
proxy or from our config drive, and must come up configured — hostname, the default user's
key, a chpasswd password, write_files, runcmd, the static address from network_data.json —
report success, and power itself off. Each is checked from the serial console and from the
powered-off disk.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.e2e_fleet import Fleet
from tests.e2e.e2e_scenarios import (
    ALL,
    BAD_CONFIG,
    PORT_IP,
    Scenario,
    check_common,
    check_live_static,
    check_login_with_key,
    network_files,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]


def _params(scenarios: list[Scenario]) -> list[object]:
    return [pytest.param(s, id=s.id) for s in scenarios]


CLOUD_INIT = _params([s for s in ALL if s.agent == "cloud-init"])
METABOOT = _params([s for s in ALL if s.agent == "metaboot"])
CLOUDINIT_SOURCE = {
    "service": "DataSourceOpenStack",
    "iso": "DataSourceConfigDrive",
    "vfat": "DataSourceConfigDrive",
}


def _check_static_network(files: dict[str, str]) -> None:
    rendered = "\n".join(files.values())
    assert PORT_IP in rendered, f"{PORT_IP} is in no network configuration file: {sorted(files)}"


def _check_isolated(fleet: Fleet, console: str) -> None:
    """The guest could not reach the host through slirp (restrict=on): only the guestfwd."""
    assert "e2e-egress: blocked" in console, "the guest's egress probe did not report"
    assert fleet.canary.hits == 0, "a guest reached the host's loopback through slirp"


def _check_service_was_used(fleet: Fleet, scenario: Scenario) -> None:
    """The guest read its metadata through our proxy, identified by its own network."""
    log = fleet.workdir / scenario.id / "proxy-access.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    paths = {entry.get("path") for entry in lines}
    assert any(str(p).startswith("/openstack") for p in paths), paths
    assert all(int(entry.get("status", 0)) < 500 for entry in lines), lines


@pytest.mark.parametrize("scenario", CLOUD_INIT)
def test_cloud_init_configures_the_vm(scenario: Scenario, fleet: Fleet, public_key: str) -> None:
    result = fleet.result(scenario)
    try:
        check_common(result, scenario, public_key)
        _check_isolated(fleet, result.console)
        disk, console = result.disk, result.console
        source = CLOUDINIT_SOURCE[scenario.transport]
        # cloud-init's own verdict, on the disk and on the console.
        outcome = json.loads(disk.read_text("/var/lib/cloud/data/result.json"))["v1"]
        assert outcome["errors"] == [] and source in outcome["datasource"], outcome
        status = json.loads(disk.read_text("/var/lib/cloud/data/status.json"))["v1"]
        for stage in ("init-local", "init", "modules-config", "modules-final"):
            assert status[stage]["errors"] == [], (stage, status[stage])
            assert status[stage]["finished"], (stage, status[stage])
        assert re.search(rf"Cloud-init v\. \S+ finished at .* Datasource {source}", console)
        report = result.report("cloud-init status")
        assert report is not None and "status: done" in report, report
        # The static address came from network_data.json, rendered for ifupdown.
        rendered = disk.read_text("/etc/network/interfaces.d/50-cloud-init")
        assert f"address {PORT_IP}/24" in rendered, rendered
        if scenario.transport == "service":
            _check_service_was_used(fleet, scenario)
    except AssertionError:
        print(result.console[-6000:])
        raise


@pytest.mark.parametrize("scenario", METABOOT)
def test_metaboot_agent_configures_the_vm(
    scenario: Scenario, fleet: Fleet, public_key: str
) -> None:
    result = fleet.result(scenario)
    try:
        check_common(result, scenario, public_key)
        _check_isolated(fleet, result.console)
        disk = result.disk
        outcome = json.loads(disk.read_text("/var/lib/metaboot/data/result.json"))["v1"]
        assert outcome["errors"] == [] and outcome["recoverable_errors"] == [], outcome
        expected_source = "OpenStack" if scenario.transport == "service" else "ConfigDrive"
        assert expected_source in str(outcome["datasource"]), outcome
        report = result.report("metaboot status")
        assert report is not None and "exit=0" in report, report
        _check_static_network(network_files(disk))
        # Every host key type is there at power-off: RSA, if the ssh module left it to its
        # background job, was installed by the job (at the latest while the shutdown waited).
        keys = sorted(n for n in disk.listdir("/etc/ssh") if n.startswith("ssh_host_"))
        assert keys == [
            f"ssh_host_{t}_key{s}" for t in ("ecdsa", "ed25519", "rsa") for s in ("", ".pub")
        ], keys
        assert not disk.exists("/etc/ssh/.metaboot-hostkeys"), disk.listdir("/etc/ssh")
        # cloud-init is not in this image; nothing of it ran.
        assert not disk.exists("/var/lib/cloud/data/result.json")
        if scenario.transport == "service":
            _check_service_was_used(fleet, scenario)
            # Read in the local stage, over an ephemeral lease that is gone again.
            record = json.loads(disk.read_text("/var/lib/metaboot/data/status.json"))
            assert record["ephemeral_dhcp"]["outcome"] == "leased", record["ephemeral_dhcp"]
            assert record["ephemeral_dhcp"]["problems"] == [], record["ephemeral_dhcp"]
            local = [e["name"] for e in record["stages"]["local"]["events"]]
            assert "search-OpenStack" in local, local
    except AssertionError:
        print(result.console[-6000:])
        raise


@pytest.mark.parametrize("scenario", _params([BAD_CONFIG]))
def test_bad_agent_config_still_boots_and_lets_the_user_in(
    scenario: Scenario, fleet: Fleet, public_key: str
) -> None:
    """An image whose agent.yaml has a YAML syntax error: the agent says so (console and
    ``metaboot status``), carries on with its defaults, and the user can still log in."""
    result = fleet.result(scenario)
    try:
        assert result.powered_off, result.console[-4000:]
        console = result.console
        assert "/etc/metaboot/agent.yaml" in console, "the broken file is not named on the console"
        report = result.report("metaboot status")
        assert report is not None and "/etc/metaboot/agent.yaml" in report, report
        assert re.search(r"exit=[12]\b", report), report  # cloud-init's codes: 1 error, 2 degraded
        check_login_with_key(result.disk, public_key)
        assert result.disk.read_text("/etc/hostname").strip() == scenario.hostname
    except AssertionError:
        print(result.console[-6000:])
        raise


@pytest.mark.parametrize("scenario", CLOUD_INIT + METABOOT)
def test_static_address_is_live_on_first_boot(scenario: Scenario, fleet: Fleet) -> None:
    """Both agents, from the service too: the metaboot agent, like cloud-init's
    OpenStackLocal, reads the service in its local stage over an ephemeral DHCP lease, so the
    OS network starts with network_data.json's static address on the first boot."""
    result = fleet.result(scenario)
    assert result.powered_off, result.console[-3000:]
    check_live_static(result)
