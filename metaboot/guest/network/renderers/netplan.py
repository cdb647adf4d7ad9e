"""netplan: one YAML file under /etc/netplan (Ubuntu, and Debian 13 cloud images)."""

from __future__ import annotations

from metaboot.guest.network import bonding
from metaboot.guest.network.model import Interface, IPv6Mode, Network

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

NAME = "netplan"
PATH = "/etc/netplan/50-metaboot.yaml"


def _value(kernel: str, value: str) -> object:
    if kernel == "arp_ip_target":
        return value.split(",")
    return int(value) if value.isdigit() else value


def _device(network: Network, iface: Interface) -> dict[str, Any]:
    conf: dict[str, Any] = {}
    if iface.kind == "physical":
        if iface.mac:
            conf["match"] = {"macaddress": iface.mac}
            conf["set-name"] = iface.ifname
    elif iface.mac:
        conf["macaddress"] = iface.mac
    if iface.bond is not None:
        conf["interfaces"] = [network.by_key()[m].ifname for m in iface.bond.members]
        params: dict[str, Any] = {"mode": iface.bond.mode}
        for kernel, value in iface.bond.options:
            params[bonding.BY_KERNEL[kernel].netplan] = _value(kernel, value)
        conf["parameters"] = params
    if iface.vlan is not None:
        conf["id"] = iface.vlan.vid
        conf["link"] = network.by_key()[iface.vlan.link].ifname
    if iface.mtu:
        conf["mtu"] = iface.mtu
    if network.bond_of(iface.key) is not None:
        conf.update({"dhcp4": False, "dhcp6": False, "accept-ra": False, "link-local": []})
        return conf
    conf["dhcp4"] = iface.dhcp4
    conf["dhcp6"] = iface.ipv6 in (IPv6Mode.STATEFUL, IPv6Mode.STATELESS)
    conf["accept-ra"] = iface.accept_ra
    if iface.addresses:
        conf["addresses"] = [a.with_prefixlen for a in iface.addresses]
    routes = []
    for route in iface.routes:
        item: dict[str, Any] = {"to": "default" if route.is_default else str(route.destination)}
        if route.gateway is not None:
            item["via"] = str(route.gateway)
            if not any(route.gateway in a.network for a in iface.addresses):
                item["on-link"] = True
        if route.metric is not None:
            item["metric"] = route.metric
        routes.append(item)
    if routes:
        conf["routes"] = routes
    if iface.has_l3:
        dns = [str(d) for d in dict.fromkeys((*iface.dns, *network.dns))]
        search = list(dict.fromkeys((*iface.search, *network.search)))
        if dns or search:
            conf["nameservers"] = {"addresses": dns, **({"search": search} if search else {})}
    return conf


def render(network: Network) -> dict[str, bytes]:
    doc: dict[str, Any] = {"version": 2}
    for section, kind in (("ethernets", "physical"), ("bonds", "bond"), ("vlans", "vlan")):
        devices = {i.ifname: _device(network, i) for i in network.interfaces if i.kind == kind}
        if devices:
            doc[section] = devices
    from metaboot.guest import pyyaml  # PyYAML is loaded once, only when a boot needs it

    text = pyyaml.module().safe_dump({"network": doc}, sort_keys=False, default_flow_style=False)
    header = "# Written by metaboot from the instance's network data; rewritten per instance.\n"
    return {PATH: (header + text).encode()}
