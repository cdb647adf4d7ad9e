"""The static part of a model as ``ip`` commands (iproute2 argv lists), in dependency order.

Used to apply a configuration where no network manager runs (a test's network namespace, a
rescue shell) and to show what a rendered file means. DHCP and router advertisements are
left to a client: only links, MTUs, addresses and routes are derived.
"""

from __future__ import annotations

from metaboot.guest.network.model import Interface, Network, Route

# ip-link's bond option names where they differ from the kernel's.
_IP_BOND_OPTION = {"arp_ip_target": "arp_ip_target"}


def _route(iface: Interface, route: Route) -> list[str]:
    argv = ["ip", f"-{route.version}", "route", "add", route.destination.with_prefixlen]
    if route.gateway is not None:
        argv += ["via", str(route.gateway)]
    argv += ["dev", iface.ifname]
    if route.metric is not None:
        argv += ["metric", str(route.metric)]
    if route.gateway is not None and not any(route.gateway in a.network for a in iface.addresses):
        argv.append("onlink")
    return argv


def ip_commands(network: Network, *, nodad: bool = False) -> list[list[str]]:
    """Commands that build ``network`` on a machine whose NICs have the bound names."""
    keyed = network.by_key()
    links: list[list[str]] = []
    for iface in network.interfaces:
        if iface.bond is not None:
            argv = ["ip", "link", "add", iface.ifname, "type", "bond", "mode", iface.bond.mode]
            for kernel, value in iface.bond.options:
                if kernel == "primary":
                    continue  # set once the members are enslaved
                argv += [_IP_BOND_OPTION.get(kernel, kernel), value]
            links.append(argv)
            for member in iface.bond.members:
                name = keyed[member].ifname
                links.append(["ip", "link", "set", name, "down"])
                links.append(["ip", "link", "set", name, "master", iface.ifname])
            primary = dict(iface.bond.options).get("primary")
            if primary:
                links.append(
                    ["ip", "link", "set", iface.ifname, "type", "bond", "primary", primary]
                )
    for iface in network.interfaces:
        if iface.vlan is not None:
            parent = keyed[iface.vlan.link].ifname
            links.append(
                ["ip", "link", "add", "link", parent, "name", iface.ifname, "type", "vlan",
                 "id", str(iface.vlan.vid)]
            )  # fmt: skip
    settings: list[list[str]] = []
    for iface in network.interfaces:
        if iface.kind != "physical" and iface.mac:
            settings.append(["ip", "link", "set", iface.ifname, "address", iface.mac])
        if iface.mtu:
            settings.append(["ip", "link", "set", iface.ifname, "mtu", str(iface.mtu)])
    # Parents before children: bonds' members, then bonds, then VLANs.
    order = sorted(network.interfaces, key=lambda i: {"physical": 0, "bond": 1, "vlan": 2}[i.kind])
    ups = [["ip", "link", "set", i.ifname, "up"] for i in order]
    addresses: list[list[str]] = []
    routes: list[list[str]] = []
    for iface in network.interfaces:
        for address in iface.addresses:
            argv = ["ip", "address", "add", address.with_prefixlen, "dev", iface.ifname]
            if nodad and address.version == 6:
                argv.append("nodad")
            addresses.append(argv)
        routes.extend(_route(iface, r) for r in iface.routes)
    return links + settings + ups + addresses + routes
