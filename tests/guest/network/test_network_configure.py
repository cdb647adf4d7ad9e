"""configure(): renderer choice, fallback, disabling, stale files, and bad input that never
stops the boot."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.network import configure
from metaboot.guest.network.manifest import MANIFEST
from metaboot.guest.system import Root
from tests.guest.network.netcases import CASES, MAC, NICS
from tests.guest.network.netroot import install, make_sysfs

LOG = logging.getLogger("test.network")
NETPLAN = "/usr/sbin/netplan"
NM = "/usr/sbin/NetworkManager"
IFUPDOWN = ("/sbin/ifup", "/etc/network/interfaces")
NETWORKD = "/usr/lib/systemd/systemd-networkd"
SYSCONFIG = "/etc/sysconfig/network-scripts/network-functions"

Target = Callable[..., Root]


def run(root: Root, data: Any = None, config: Any = None, cfg: Any = None, iid: str = "i-1"):  # type: ignore[no-untyped-def]
    return configure(
        root, network_data=data, network_config=config, cfg=cfg or {}, instance_id=iid, log=LOG
    )


@pytest.mark.parametrize(
    ("programs", "renderer", "path"),
    [
        ((NETPLAN, NETWORKD, *IFUPDOWN), "netplan", "/etc/netplan/50-metaboot.yaml"),
        ((NM, NETWORKD, *IFUPDOWN), "network-manager",
         "/etc/NetworkManager/system-connections/metaboot-ens3.nmconnection"),
        ((*IFUPDOWN, NETWORKD), "eni", "/etc/network/interfaces.d/50-metaboot.cfg"),
        ((SYSCONFIG, NETWORKD), "sysconfig", "/etc/sysconfig/network-scripts/ifcfg-ens3"),
        ((NETWORKD,), "networkd", "/etc/systemd/network/10-metaboot-ens3.network"),
    ],
)  # fmt: skip
def test_renderer_follows_what_the_target_has(
    target: Target, programs: tuple[str, ...], renderer: str, path: str
) -> None:
    root = target(NICS, *programs)
    report = run(root, CASES["dual_stack"])
    assert (report.renderer, report.degraded, report.skipped) == (renderer, False, None)
    assert path in report.written
    assert "192.0.2.10" in root.read_text(path)


def test_modes_of_written_files(target: Target) -> None:
    root = target(NICS, NM)
    run(root, CASES["dual_stack"])
    keyfile = root.path("/etc/NetworkManager/system-connections/metaboot-ens3.nmconnection")
    assert keyfile.stat().st_mode & 0o777 == 0o600
    assert root.path(MANIFEST).stat().st_mode & 0o777 == 0o600


def test_configured_renderer_wins_with_cloudinit_key(target: Target) -> None:
    root = target(NICS, NETPLAN, NETWORKD)
    cfg = {"system_info": {"network": {"renderers": ["bogus", "networkd", "netplan"]}}}
    report = run(root, CASES["dual_stack"], cfg=cfg)
    assert report.renderer == "networkd"
    assert any("unknown renderer 'bogus'" in m for m in report.messages)


def test_configured_renderer_missing_on_target_is_used_with_a_message(target: Target) -> None:
    root = target(NICS, NETWORKD)
    cfg = {"system_info": {"network": {"renderers": ["sysconfig"]}}}
    report = run(root, CASES["dual_stack"], cfg=cfg)
    assert report.renderer == "sysconfig"
    assert any("none of the configured renderers" in m for m in report.messages)


def test_disabled_writes_nothing(target: Target, tmp_path: Path) -> None:
    root = target(NICS, NETWORKD)
    report = run(root, CASES["dual_stack"], cfg={"network": {"config": "disabled"}})
    assert report.skipped == "network: {config: disabled}"
    assert report.written == [] and not root.exists(MANIFEST)
    assert not root.exists("/etc/systemd/network")


def test_no_matching_mac_falls_back_to_dhcp_on_first_nic(target: Target) -> None:
    root = target({"eth1": "52:54:00:00:00:02", "eth0": "52:54:00:00:00:01"}, NETWORKD)
    report = run(root, CASES["dual_stack"])  # its MAC is not on this machine
    assert report.degraded is True
    assert any("falling back to DHCP on eth0" in m for m in report.messages)
    assert any("no NIC of this machine has MAC fa:16:3e:00:00:01" in m for m in report.messages)
    text = root.read_text("/etc/systemd/network/10-metaboot-eth0.network")
    assert "DHCP=ipv4" in text and "MACAddress=52:54:00:00:00:01" in text
    assert "IPv6AcceptRA=yes" in text
    assert report.written == ["/etc/systemd/network/10-metaboot-eth0.network"]


def test_fallback_prefers_a_nic_with_carrier(tmp_path: Path) -> None:
    base = tmp_path / "root"
    make_sysfs(base, {"eth0": MAC[5], "eth1": MAC[6]}, carrier={"eth1": True})
    install(base, NETWORKD)
    report = run(Root(base), None)
    assert report.degraded is False  # no data at all is the ordinary DHCP case
    assert report.written == ["/etc/systemd/network/10-metaboot-eth1.network"]


def test_no_nic_at_all_is_reported(target: Target) -> None:
    report = run(target({}, NETWORKD), CASES["dual_stack"])
    assert report.skipped == "no network interface found in /sys/class/net"
    assert report.degraded is True


def test_stale_files_of_earlier_instance_are_removed_user_files_kept(target: Target) -> None:
    root = target(NICS, NETWORKD)
    first = run(root, CASES["several_nics"], iid="i-1")
    assert len([p for p in first.written if p.endswith(".network")]) == 3
    assert "/etc/resolv.conf" in first.written  # networkd without systemd-resolved
    user_file = "/etc/systemd/network/05-user.network"
    root.write_file(user_file, "[Match]\nName=ens9\n")
    edited = "/etc/systemd/network/10-metaboot-ens5.network"
    root.write_file(edited, root.read_text(edited) + "# the admin's note\n")
    second = run(root, CASES["dual_stack"], iid="i-2")
    assert second.removed == ["/etc/systemd/network/10-metaboot-ens4.network"]
    assert root.exists(user_file)
    assert root.exists(edited)  # edited since we wrote it: no longer ours to delete
    assert any(edited in m and "left in place" in m for m in second.messages)
    manifest = json.loads(root.read_text(MANIFEST))
    assert manifest["instance_id"] == "i-2"
    assert sorted(manifest["files"]) == [
        "/etc/resolv.conf",
        "/etc/systemd/network/10-metaboot-ens3.network",
    ]


def test_same_instance_rerun_is_idempotent_and_respects_local_edits(target: Target) -> None:
    root = target(NICS, NETWORKD)
    run(root, CASES["dual_stack"], iid="i-1")
    again = run(root, CASES["dual_stack"], iid="i-1")
    assert again.written == [] and again.removed == []
    path = "/etc/systemd/network/10-metaboot-ens3.network"
    root.write_file(path, "# mine now\n")
    third = run(root, CASES["dual_stack"], iid="i-1")
    assert root.read_text(path) == "# mine now\n"
    assert any("changed since metaboot wrote it for this instance" in m for m in third.messages)
    # A new instance needs the file: the edited one is saved, then replaced.
    fourth = run(root, CASES["dual_stack"], iid="i-2")
    assert path in fourth.written
    assert root.read_text(f"/var/lib/metaboot/network/saved/i-2{path}") == "# mine now\n"


def test_image_file_at_our_path_is_saved_before_replacing(target: Target) -> None:
    root = target(NICS, SYSCONFIG)
    template = "DEVICE=ens3\nHWADDR=52:54:00:de:ad:01\nBOOTPROTO=dhcp\n"
    root.write_file("/etc/sysconfig/network-scripts/ifcfg-ens3", template)
    report = run(root, CASES["dual_stack"])
    assert (
        root.read_text(
            "/var/lib/metaboot/network/saved/i-1/etc/sysconfig/network-scripts/ifcfg-ens3"
        )
        == template
    )
    assert "HWADDR=fa:16:3e:00:00:01" in root.read_text("/etc/sysconfig/network-scripts/ifcfg-ens3")
    assert any("replaced a file metaboot had not written" in m for m in report.messages)


def test_resolv_conf_for_ifupdown_without_resolvconf(target: Target) -> None:
    root = target(NICS, *IFUPDOWN)
    report = run(root, CASES["dual_stack"])
    assert "/etc/resolv.conf" in report.written
    assert root.read_text("/etc/resolv.conf").splitlines()[1:] == [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8:10::53",
    ]


def test_ifupdown_without_interfaces_d_is_degraded(target: Target) -> None:
    root = target(NICS, *IFUPDOWN)
    root.write_file("/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n")
    report = run(root, CASES["dual_stack"])
    assert report.renderer == "eni" and report.degraded is True
    assert any("does not source /etc/network/interfaces.d" in m for m in report.messages)
    assert root.read_text("/etc/network/interfaces") == "auto eth0\niface eth0 inet dhcp\n"


def test_resolv_conf_left_alone_when_managed(target: Target, tmp_path: Path) -> None:
    root = target(NICS, *IFUPDOWN, "/sbin/resolvconf")
    assert "/etc/resolv.conf" not in run(root, CASES["dual_stack"]).written
    root2 = Root(tmp_path / "root2")
    make_sysfs(root2.base, NICS)
    install(root2.base, *IFUPDOWN)
    root2.path("/etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    assert "/etc/resolv.conf" not in run(root2, CASES["dual_stack"]).written
    assert root2.path("/etc/resolv.conf").is_symlink()


def test_agent_config_network_takes_precedence(target: Target) -> None:
    root = target(NICS, NETPLAN)
    own = {"version": 2, "ethernets": {"lan": {"match": {"macaddress": MAC[2]}, "dhcp4": True}}}
    report = run(root, CASES["dual_stack"], cfg={"network": own})
    assert report.degraded is False
    text = root.read_text("/etc/netplan/50-metaboot.yaml")
    assert "ens4" in text and "192.0.2.10" not in text


def test_nocloud_v1_through_configure(target: Target) -> None:
    root = target(NICS, NETWORKD)
    config = {
        "version": 1,
        "config": [
            {"type": "physical", "name": "eth0", "mac_address": MAC[1].upper(),
             "subnets": [{"type": "static", "address": "10.1.0.9/24", "gateway": "10.1.0.1",
                          "dns_nameservers": ["10.1.0.2"]}]},
        ],
    }  # fmt: skip
    report = run(root, None, config)
    assert report.degraded is False, report.messages
    text = root.read_text("/etc/systemd/network/10-metaboot-ens3.network")
    assert "Address=10.1.0.9/24" in text and "Gateway=10.1.0.1" in text and "DNS=10.1.0.2" in text


# ---- bad input: reported with the entry, the rest goes on ---------------------------------


def _bad_document() -> dict[str, Any]:
    return {
        "links": [
            {"id": "good", "type": "phy", "ethernet_mac_address": MAC[1]},
            {"id": "weird", "type": "infiniband-ish", "ethernet_mac_address": MAC[2]},
            {"id": "badmac", "type": "phy", "ethernet_mac_address": "fa:16:3e:zz:00:03"},
            {"id": "bond0", "type": "bond", "bond_mode": "active-backup",
             "bond_links": ["weird", "ghost"], "ethernet_mac_address": MAC[4]},
        ],
        "networks": [
            {"id": "n-good", "link": "good", "type": "ipv4", "ip_address": "10.0.0.5",
             "netmask": "255.255.255.0", "network_id": "x"},
            {"id": "n-mask", "link": "good", "type": "ipv4", "ip_address": "10.0.1.5",
             "netmask": "255.0.255.0", "network_id": "x"},
            {"id": "n-bond", "link": "bond0", "type": "ipv4_dhcp", "network_id": "x"},
        ],
        "services": [],
    }  # fmt: skip


def test_bad_entries_are_named_and_the_rest_is_configured(target: Target) -> None:
    root = target(NICS, NETWORKD)
    report = run(root, _bad_document())
    text = "\n".join(report.messages)
    assert "links[1] (id 'weird'): unknown link type 'infiniband-ish'" in text
    assert "links[2] (id 'badmac'): ethernet_mac_address: 'fa:16:3e:zz:00:03' is not a MAC" in text
    assert "bond 'bond0': member 'ghost' does not exist" in text
    assert "networks[1] (id 'n-mask'): netmask '255.0.255.0' is not a netmask" in text
    assert report.degraded is True and report.renderer == "networkd"
    good = root.read_text("/etc/systemd/network/10-metaboot-ens3.network")
    assert "Address=10.0.0.5/24" in good and "10.0.1.5" not in good
    bond = root.read_text("/etc/systemd/network/10-metaboot-bond0.netdev")
    assert "Mode=active-backup" in bond
    member = root.read_text("/etc/systemd/network/10-metaboot-ens4.network")
    assert "Bond=bond0" in member


@pytest.mark.parametrize(
    "document",
    [None, [], "links", {"links": "nope"}, {"links": [1, None, {"id": 5}]},
     {"links": [{"id": "a", "type": "vlan", "vlan_id": 9000, "vlan_link": "b"}]},
     {"networks": [{"link": "missing", "type": "ipv4"}]}],
)  # fmt: skip
def test_garbage_never_raises_and_keeps_the_vm_reachable(target: Target, document: Any) -> None:
    root = target(NICS, NETWORKD)
    report = run(root, document)
    assert report.renderer == "networkd"
    assert root.exists("/etc/systemd/network/10-metaboot-ens3.network")
    if document not in (None, []):
        assert report.degraded is True
        assert report.messages


def test_unwritable_target_is_reported_not_raised(target: Target) -> None:
    root = target(NICS, NETWORKD)
    root.path("/etc/systemd").mkdir(parents=True)
    root.path("/etc/systemd/network").write_text("a file where a directory belongs")
    report = run(root, CASES["dual_stack"])
    assert report.degraded is True
    assert any("network configuration failed" in m for m in report.messages)
