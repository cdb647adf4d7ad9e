"""Every case, every renderer: metaboot's files mean what Debian's cloud-init 22.4.2 renders
from the same network_data.json — the same addresses, routes, DNS servers, MTU, bond and VLAN
settings — read back by the same format reader (netformats) from both outputs."""

from __future__ import annotations

from typing import Any

import pytest

from metaboot.guest.network import renderers
from metaboot.guest.network.model import Problems
from metaboot.guest.network.nics import Nic, bind
from metaboot.guest.network.openstack import parse_network_data
from tests import reference
from tests.guest.network import netformats
from tests.guest.network.netcases import CASES, NICS
from tests.guest.network.netreference import render_all

pytestmark = pytest.mark.cloudinit

MACS = {mac: name for name, mac in NICS.items()}
RENDERERS = ("eni", "netplan", "networkd", "network-manager", "sysconfig")


def read(renderer: str, files: dict[str, str]) -> dict[str, Any]:
    if renderer == "eni":
        return netformats.eni(files)
    if renderer == "netplan":
        return netformats.netplan(files)
    if renderer == "networkd":
        return netformats.networkd(files)
    if renderer == "network-manager":
        return netformats.network_manager(files, MACS)
    return netformats.sysconfig(files)


def ours(case: dict[str, Any], renderer: str) -> dict[str, str]:
    model, problems = parse_network_data(case)
    assert problems == []
    binding = Problems()
    bound = bind(model, [Nic(n, m) for n, m in NICS.items()], binding)
    assert binding.messages == []
    files = renderers.render(renderer, bound)
    return {path.lstrip("/"): data.decode() for path, data in files.items()}


def intended_by_cloudinit(v1: dict[str, Any]) -> dict[str, Any]:
    """Bond/VLAN settings and DNS servers as cloud-init's own v1 conversion states them."""
    links: dict[str, Any] = {}
    dns: set[str] = set()
    for entry in v1["config"]:
        if entry["type"] == "bond":
            mode = entry["params"].get("bond_mode") or entry["params"].get("bond-mode")
            links[entry["name"]] = {
                "bond": {"mode": mode, "members": sorted(entry["bond_interfaces"])}
            }
        elif entry["type"] == "vlan":
            links[entry["name"]] = {"vlan": {"id": entry["vlan_id"], "link": entry["vlan_link"]}}
        elif entry["type"] == "nameserver":
            dns.add(entry["address"])
    return {"links": links, "dns": sorted(dns)}


def known_deviations(renderer: str, theirs: dict[str, Any], v1: dict[str, Any]) -> dict[str, Any]:
    """Where 22.4.2's renderer drops what its own v1 conversion says, take the v1 value.

    - networkd: 22.4.2 writes no .netdev and no Bond=/VLAN= (bonds and VLANs unsupported).
    - network-manager: looks up ``bond-mode`` but convert_net_json passes ``bond_mode``, so
      no mode is written; global nameservers (network_data ``services``) are not written.
    - netplan: global nameservers go only to interfaces with a static address, so a DHCP- or
      SLAAC-only guest gets none from the document; we put them on every interface with L3
      configuration (a SLAAC-only network has no other way to learn them).
    """
    intended = intended_by_cloudinit(v1)
    if renderer == "networkd":
        for name, settings in intended["links"].items():
            theirs["interfaces"].setdefault(
                name, {"addresses": [], "routes": [], "mtu": None, "bond": None, "vlan": None}
            ).update(settings)
    if renderer == "netplan":
        theirs["dns"] = sorted(set(theirs["dns"]) | set(intended["dns"]))
    if renderer == "network-manager":
        for name, settings in intended["links"].items():
            if "bond" in settings:
                theirs["interfaces"][name]["bond"]["mode"] = settings["bond"]["mode"]
        theirs["dns"] = sorted(set(theirs["dns"]) | set(intended["dns"]))
    return theirs


@pytest.fixture(scope="module")
def cloudinit_outputs() -> dict[str, Any]:
    assert reference.available(), "Debian's cloud-init is missing: run scripts/setup-system"
    return {name: render_all(case, MACS) for name, case in CASES.items()}


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_meaning_as_cloudinit(
    case: str, renderer: str, cloudinit_outputs: dict[str, Any]
) -> None:
    reference_output = cloudinit_outputs[case]
    theirs = read(renderer, reference_output["files"][renderer])
    theirs = known_deviations(renderer, theirs, reference_output["v1"])
    mine = read(renderer, ours(CASES[case], renderer))
    assert mine == theirs
    assert mine == EXPECTED.get(case, mine)


# What the comparison must find in the richer cases, so that it can never pass vacuously.
EXPECTED: dict[str, Any] = {
    "bond_vlan": {
        "interfaces": {
            "bond0": {"addresses": [], "routes": [], "mtu": None,
                      "bond": {"mode": "802.3ad", "members": ["ens4", "ens5"]}, "vlan": None},
            "bond0.100": {"addresses": ["172.16.100.5/24"],
                          "routes": [("0.0.0.0/0", "172.16.100.1")], "mtu": None, "bond": None,
                          "vlan": {"id": 100, "link": "bond0"}},
        },
        "dns": ["172.16.100.2"],
    },
    "mtu_routes": {
        "interfaces": {
            "ens3": {"addresses": ["203.0.113.7/25"], "mtu": 1450, "bond": None, "vlan": None,
                     "routes": [("0.0.0.0/0", "203.0.113.1"), ("10.30.0.0/16", "203.0.113.126"),
                                ("192.168.77.9/32", "203.0.113.126")]},
            "ens4": {"addresses": ["10.99.0.7/24"], "mtu": 9000, "bond": None, "vlan": None,
                     "routes": [("10.98.0.0/16", "10.99.0.1")]},
        },
        "dns": ["203.0.113.53"],
    },
    "dual_stack": {
        "interfaces": {
            "ens3": {"addresses": ["192.0.2.10/24", "2001:db8:10::10/64"], "mtu": 1500,
                     "bond": None, "vlan": None,
                     "routes": [("0.0.0.0/0", "192.0.2.1"), ("::/0", "2001:db8:10::1")]},
        },
        "dns": ["192.0.2.53", "2001:db8:10::53"],
    },
}  # fmt: skip
