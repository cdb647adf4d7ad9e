"""Red Hat's ifcfg files (network-scripts: RHEL/CentOS 7 and 8, or NetworkManager's ifcfg-rh).

One ``ifcfg-<name>`` per interface, plus ``route-<name>`` / ``route6-<name>`` in ``ip route``
argument form for routes other than the default one. The files are shell variable
assignments, sourced by the scripts, so every value is quoted for the shell.
"""

from __future__ import annotations

import re

from metaboot.guest.network.model import Interface, IPv6Mode, Network, Route

NAME = "sysconfig"
DIRECTORY = "/etc/sysconfig/network-scripts"
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+=-]*$")


def quote(value: object) -> str:
    text = str(value)
    if _PLAIN.match(text) and text:
        return text
    return '"' + re.sub(r'(["\\$`])', r"\\\1", text) + '"'


def _route_line(iface: Interface, route: Route) -> str:
    line = route.destination.with_prefixlen
    if route.gateway is not None:
        line += f" via {route.gateway}"
    line += f" dev {iface.ifname}"
    if route.metric is not None:
        line += f" metric {route.metric}"
    if route.gateway is not None and not any(route.gateway in a.network for a in iface.addresses):
        line += " onlink"
    return line


def _ifcfg(network: Network, iface: Interface) -> tuple[list[tuple[str, object]], list[Route]]:
    values: list[tuple[str, object]] = [("DEVICE", iface.ifname), ("NAME", iface.ifname)]
    values.append(("ONBOOT", "yes"))
    if iface.kind == "physical":
        values.append(("TYPE", "Ethernet"))
        if iface.mac:
            values.append(("HWADDR", iface.mac))
    elif iface.mac:
        values.append(("MACADDR", iface.mac))
    if iface.bond is not None:
        opts = " ".join([f"mode={iface.bond.mode}", *(f"{k}={v}" for k, v in iface.bond.options)])
        values += [("TYPE", "Bond"), ("BONDING_MASTER", "yes"), ("BONDING_OPTS", opts)]
    if iface.vlan is not None:
        parent = network.by_key()[iface.vlan.link].ifname
        values += [("TYPE", "Vlan"), ("VLAN", "yes"), ("PHYSDEV", parent)]
        values.append(("VLAN_ID", iface.vlan.vid))
    if iface.mtu:
        values.append(("MTU", iface.mtu))
    bond = network.bond_of(iface.key)
    if bond is not None:
        values += [("MASTER", bond.ifname), ("SLAVE", "yes"), ("BOOTPROTO", "none")]
        return values, []

    v4 = iface.family_addresses(4)
    v6 = iface.family_addresses(6)
    values.append(("BOOTPROTO", "dhcp" if iface.dhcp4 else "none"))
    for index, address in enumerate(v4):
        suffix = "" if index == 0 else str(index)
        values += [(f"IPADDR{suffix}", address.ip), (f"PREFIX{suffix}", address.network.prefixlen)]
    extra: list[Route] = []
    gw4 = next((r for r in iface.family_routes(4) if r.is_default and r.gateway), None)
    if gw4 is not None and gw4.metric is None:
        values += [("GATEWAY", gw4.gateway), ("DEFROUTE", "yes")]
    elif gw4 is not None:
        extra.append(gw4)
    if iface.ipv6 is not IPv6Mode.NONE or v6:
        values.append(("IPV6INIT", "yes"))
        autoconf = iface.ipv6 in (IPv6Mode.SLAAC, IPv6Mode.STATELESS)
        values.append(("IPV6_AUTOCONF", "yes" if autoconf else "no"))
        values.append(("IPV6_FORCE_ACCEPT_RA", "yes" if iface.accept_ra else "no"))
        if iface.ipv6 is IPv6Mode.STATEFUL:
            values.append(("DHCPV6C", "yes"))
        elif iface.ipv6 is IPv6Mode.STATELESS:
            values += [("DHCPV6C", "yes"), ("DHCPV6C_OPTIONS", "-S")]
        if v6:
            values.append(("IPV6ADDR", v6[0].with_prefixlen))
        if len(v6) > 1:
            values.append(("IPV6ADDR_SECONDARIES", " ".join(a.with_prefixlen for a in v6[1:])))
        gw6 = next((r for r in iface.family_routes(6) if r.is_default and r.gateway), None)
        if gw6 is not None and gw6.metric is None:
            values += [("IPV6_DEFAULTGW", gw6.gateway), ("IPV6_DEFROUTE", "yes")]
        elif gw6 is not None:
            extra.append(gw6)
    else:
        values.append(("IPV6INIT", "no"))
    dns = list(dict.fromkeys((*iface.dns, *network.dns)))
    for index, server in enumerate(dns[:3], start=1):
        values.append((f"DNS{index}", server))
    search = list(dict.fromkeys((*iface.search, *network.search)))
    if search:
        values.append(("DOMAIN", " ".join(search)))
    values.append(("USERCTL", "no"))
    extra += [r for r in iface.routes if not r.is_default]
    return values, extra


def render(network: Network) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    header = "# Written by metaboot from the instance's network data; rewritten per instance.\n"
    for iface in network.interfaces:
        values, routes = _ifcfg(network, iface)
        body = "".join(f"{key}={quote(value)}\n" for key, value in values)
        files[f"{DIRECTORY}/ifcfg-{iface.ifname}"] = (header + body).encode()
        for version, prefix in ((4, "route"), (6, "route6")):
            lines = [_route_line(iface, r) for r in routes if r.version == version]
            if lines:
                text = header + "\n".join(lines) + "\n"
                files[f"{DIRECTORY}/{prefix}-{iface.ifname}"] = text.encode()
    return files
