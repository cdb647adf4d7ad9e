"""The distributions' own tools accept what we render: netplan's generator, ifupdown's
parser, NetworkManager's keyfile reader (libnm), systemd-networkd's parser, and the shell that
network-scripts source ifcfg files with. No daemon is started outside a test namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.network import renderers
from metaboot.guest.network.model import Network, Problems
from metaboot.guest.network.nics import Nic, bind
from metaboot.guest.network.openstack import parse_network_data
from tests.guest.network import netformats
from tests.guest.network.netcases import CASES, NICS
from tests.guest.network.netnamespace import NETWORKD_SCRIPT, namespace

HERE = Path(__file__).parent
ALL = sorted(CASES)


def bound(case: str) -> Network:
    model, _ = parse_network_data(CASES[case])
    return bind(model, [Nic(n, m) for n, m in NICS.items()], Problems())


def write(root: Path, renderer: str, network: Network) -> dict[str, Path]:
    written = {}
    for path, data in renderers.render(renderer, network).items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, renderers.file_mode(path))
        written[path] = target
    return written


def tool(name: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        pytest.fail(f"{name} is missing: run scripts/setup-system (setup/apt/network.list)")
    return found


@pytest.mark.parametrize("case", ALL)
def test_netplan_generate_accepts_and_means_the_same(case: str, tmp_path: Path) -> None:
    network = bound(case)
    files = write(tmp_path, "netplan", network)
    proc = subprocess.run(
        [tool("netplan"), "generate", "--root-dir", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    generated = {
        str(p.relative_to(tmp_path)): p.read_text()
        for p in (tmp_path / "run/systemd/network").glob("*")
    }
    assert generated, "netplan generated no networkd configuration"
    ours = netformats.netplan({k: v.read_text() for k, v in files.items()})
    # netplan puts a matched NIC's MTU into a .link file, which the .network reader skips.
    for name, conf in netformats.networkd(generated)["interfaces"].items():
        assert ours["interfaces"][name]["addresses"] == conf["addresses"]
        assert ours["interfaces"][name]["routes"] == conf["routes"]
        assert ours["interfaces"][name]["bond"] == conf["bond"]
        assert ours["interfaces"][name]["vlan"] == conf["vlan"]
    assert netformats.networkd(generated)["dns"] == ours["dns"]


@pytest.mark.parametrize("case", ALL)
def test_ifupdown_parses_and_plans(case: str, tmp_path: Path) -> None:
    network = bound(case)
    files = write(tmp_path, "eni", network)
    interfaces = tmp_path / "interfaces"
    interfaces.write_text(f"source {tmp_path}/etc/network/interfaces.d/*\n")
    listed = subprocess.run(
        [tool("ifquery"), "-i", str(interfaces), "--list", "-a"], capture_output=True, text=True
    )
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert set(listed.stdout.split()) == {"lo"} | {i.ifname for i in network.interfaces}
    state = tmp_path / "state"
    state.mkdir()
    plan = subprocess.run(
        [tool("ifup"), "--no-act", "-a", "-i", str(interfaces), "--state-dir", str(state)],
        capture_output=True, text=True,
    )  # fmt: skip
    # --no-act prints the plan on stderr; ifupdown's own complaints start with "ifup:" or name
    # the file and line ("misplaced option", "unknown method", ...).
    assert plan.returncode == 0, plan.stderr
    complaints = [
        line for line in plan.stderr.splitlines()
        if line.startswith("ifup:") or str(tmp_path) in line or "unknown" in line.lower()
    ]  # fmt: skip
    assert complaints == []
    for iface in network.interfaces:
        for address in iface.addresses:
            if address.version == 4:
                netmask = ipaddress.ip_interface(str(address)).netmask  # as ifupdown prints it
                assert f"ip addr add {address.ip}/{netmask}" in plan.stderr
            else:
                assert f"ip -6 addr add {address.with_prefixlen}" in plan.stderr
    assert files


@pytest.mark.parametrize("case", ALL)
def test_networkmanager_reads_and_verifies_keyfiles(case: str, tmp_path: Path) -> None:
    network = bound(case)
    files = write(tmp_path, "network-manager", network)
    proc = subprocess.run(
        ["/usr/bin/python3", str(HERE / "nm_keyfile_check.py"), *map(str, files.values())],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    for iface in network.interfaces:
        path = str(
            files[f"{renderers.networkmanager.DIRECTORY}/metaboot-{iface.ifname}.nmconnection"]
        )
        seen = result[path]
        assert "error" not in seen, seen
        assert seen["warnings"] == []
        assert seen["interface"] == iface.ifname
        assert sorted(seen["addresses"]) == sorted(a.with_prefixlen for a in iface.addresses)
        assert seen["mtu"] == (iface.mtu or 0)
        if iface.bond is not None:
            assert seen["bond_mode"] == iface.bond.mode
        if iface.vlan is not None:
            assert seen["vlan"] == [iface.vlan.vid, network.by_key()[iface.vlan.link].ifname]
        gateways = {str(r.gateway) for r in iface.routes if r.is_default}
        assert set(seen["gateways"]) == gateways
        if iface.has_l3 and network.bond_of(iface.key) is None:
            assert set(seen["dns"]) == {str(d) for d in (*iface.dns, *network.dns)}


@pytest.mark.parametrize("case", ALL)
def test_nmcli_offline_accepts_and_keeps_the_meaning(case: str, tmp_path: Path) -> None:
    """``nmcli --offline connection modify`` reads a keyfile on stdin, verifies the connection
    and writes it back normalised; a no-op change must succeed and mean the same."""
    network = bound(case)
    files = write(tmp_path, "network-manager", network)
    rewritten = {}
    for path, host in files.items():
        proc = subprocess.run(
            [tool("nmcli"), "--offline", "connection", "modify", "connection.autoconnect", "yes"],
            stdin=host.open("rb"), capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        rewritten[path] = proc.stdout
    original = {path: host.read_text() for path, host in files.items()}
    assert netformats.network_manager(rewritten, {}) == netformats.network_manager(original, {})


def test_nmcli_offline_rejects_a_broken_keyfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nmconnection"
    bad.write_text("[connection]\nid=x\ntype=ethernet\n[ipv4]\nmethod=manual\n")
    proc = subprocess.run(
        [tool("nmcli"), "--offline", "connection", "modify", "connection.autoconnect", "yes"],
        stdin=bad.open("rb"), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "ipv4.addresses" in proc.stderr


def test_networkmanager_check_catches_a_broken_keyfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nmconnection"
    bad.write_text("[connection]\nid=x\ntype=ethernet\n[ipv4]\nmethod=manual\n")
    proc = subprocess.run(
        ["/usr/bin/python3", str(HERE / "nm_keyfile_check.py"), str(bad)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "ipv4.addresses" in json.loads(proc.stdout)[str(bad)]["error"]


@pytest.mark.parametrize("case", ALL)
def test_ifcfg_files_source_cleanly_in_the_shell(case: str, tmp_path: Path) -> None:
    """Debian packages neither initscripts nor NetworkManager's ifcfg-rh plugin; network-scripts
    read these files by sourcing them, so the shell is the parser we can run."""
    network = bound(case)
    files = write(tmp_path, "sysconfig", network)
    for path, host in files.items():
        if not Path(path).name.startswith("ifcfg-"):
            continue
        proc = subprocess.run(
            ["/bin/bash", "-euc", 'set -a; . "$1"; env -0', "check", str(host)],
            capture_output=True, env={}, text=True,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        seen = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
        declared = netformats._shell_vars(host.read_text())
        for key, value in declared.items():
            assert seen[key] == value, key


@pytest.mark.netns
def test_networkd_parses_bond_and_vlan_netdevs(tmp_path: Path) -> None:
    """This kernel cannot create bonds or VLANs, but networkd parses every .netdev and .network
    at start and names any key it does not know."""
    config_dir = tmp_path / "network"
    config_dir.mkdir()
    for path, data in renderers.render("networkd", bound("bond_vlan")).items():
        (config_dir / Path(path).name).write_bytes(data)
    (config_dir / "99-canary.network").write_text("[Match]\nName=none\n[Network]\nNoSuchKey=1\n")
    script = tmp_path / "run.sh"
    script.write_text(NETWORKD_SCRIPT)
    with namespace(NICS) as netns:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
             "sh", str(script), str(config_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={"SYSTEMD_LOG_TARGET": "console", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )  # fmt: skip
        try:
            log = ""
            assert proc.stdout is not None
            for line in proc.stdout:
                log += line
                if "Enumeration completed" in line:
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert "99-canary.network:4: Unknown key 'NoSuchKey'" in log, log  # the check can see
    ours = [line for line in log.splitlines() if "10-metaboot-" in line]
    assert not [line for line in ours if "Unknown" in line or "Failed to parse" in line], log
    assert "Invalid" not in log, log


def test_ifupdown_check_catches_a_broken_file(tmp_path: Path) -> None:
    bad = tmp_path / "interfaces"
    bad.write_text("auto eth0\niface eth0 inet nosuchmethod\n")
    state = tmp_path / "state"
    state.mkdir()
    plan = subprocess.run(
        [tool("ifup"), "--no-act", "-a", "-i", str(bad), "--state-dir", str(state)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert plan.returncode != 0 and plan.stderr.startswith("ifup:")
