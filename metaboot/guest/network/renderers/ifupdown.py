"""ifupdown (Debian's /etc/network/interfaces, read through its ``source`` of interfaces.d).

Bonds use ifenslave's ``bond-*`` options and VLANs ifupdown's own ``vlan-raw-device``; routes
other than the default one are ``up``/``down`` ``ip route`` commands, as ifupdown has no
route stanza. Each extra address of a family is another stanza for the same interface, which
ifupdown applies in order.
"""

from __future__ import annotations

from metaboot.guest.network.model import Interface, IPv6Mode, Network, Route

NAME = "eni"
PATH = "/etc/network/interfaces.d/50-metaboot.cfg"


def _route_commands(iface: Interface, route: Route) -> list[str]:
    family = "-6" if route.version == 6 else "-4"
    spec = f"{route.destination.with_prefixlen}"
    if route.gateway is not None:
        spec += f" via {route.gateway}"
        if not any(route.gateway in a.network for a in iface.addresses):
            spec += " onlink"
    spec += f" dev {iface.ifname}"
    if route.metric is not None:
        spec += f" metric {route.metric}"
    return [f"up ip {family} route add {spec}", f"down ip {family} route del {spec} || true"]


def _stanzas(network: Network, iface: Interface) -> list[list[str]]:
    """Each stanza is its ``iface`` line followed by option lines."""
    name = iface.ifname
    link_opts: list[str] = []
    if iface.mtu:
        link_opts.append(f"mtu {iface.mtu}")
    if iface.kind != "physical" and iface.mac:
        link_opts.append(f"hwaddress ether {iface.mac}")
    if iface.bond is not None:
        # Members name their bond (bond-master); ifenslave then creates it on the first one.
        link_opts.append("bond-slaves none")
        link_opts.append(f"bond-mode {iface.bond.mode}")
        for kernel, value in iface.bond.options:
            link_opts.append(f"bond-{kernel.replace('_', '-')} {value.replace(',', ' ')}")
    if iface.vlan is not None:
        link_opts.append(f"vlan-raw-device {network.by_key()[iface.vlan.link].ifname}")
    bond = network.bond_of(iface.key)
    if bond is not None:
        return [[f"iface {name} inet manual", f"bond-master {bond.ifname}", *link_opts]]

    dns_opts: list[str] = []
    if iface.has_l3:
        dns = [str(d) for d in dict.fromkeys((*iface.dns, *network.dns))]
        search = list(dict.fromkeys((*iface.search, *network.search)))
        if dns:
            dns_opts.append(f"dns-nameservers {' '.join(dns)}")
        if search:
            dns_opts.append(f"dns-search {' '.join(search)}")

    stanzas: list[list[str]] = []
    v4 = iface.family_addresses(4)
    v6 = iface.family_addresses(6)
    if iface.dhcp4:
        stanzas.append([f"iface {name} inet dhcp"])
    for address in v4:
        stanzas.append([f"iface {name} inet static", f"address {address.with_prefixlen}"])
    if iface.ipv6 in (IPv6Mode.SLAAC, IPv6Mode.STATELESS):
        stanza = [f"iface {name} inet6 auto"]
        stanza.append(f"dhcp {1 if iface.ipv6 is IPv6Mode.STATELESS else 0}")
        stanzas.append(stanza)
    elif iface.ipv6 is IPv6Mode.STATEFUL:
        stanzas.append([f"iface {name} inet6 dhcp", "accept_ra 2"])
    for address in v6:
        stanza = [f"iface {name} inet6 static", f"address {address.with_prefixlen}"]
        if iface.ipv6 is IPv6Mode.NONE:
            stanza.append("accept_ra 0")
        stanzas.append(stanza)
    if not stanzas:
        stanzas.append([f"iface {name} inet manual"])

    # Link options, DNS and routes go once, on the first stanza of the matching family.
    stanzas[0].extend(link_opts)
    stanzas[0].extend(dns_opts)
    for route in iface.routes:
        family = "inet6" if route.version == 6 else "inet"
        target = next((s for s in stanzas if s[0].split()[2] == family), stanzas[0])
        static = next((s for s in stanzas if s[0] == f"iface {name} {family} static"), None)
        if (
            route.is_default
            and route.gateway is not None
            and static is not None
            and not any(o.startswith("gateway ") for o in static)
        ):
            static.append(f"gateway {route.gateway}")
            if route.metric is not None:
                static.append(f"metric {route.metric}")
            continue
        target.extend(_route_commands(iface, route))
    return stanzas


def render(network: Network) -> dict[str, bytes]:
    lines = ["# Written by metaboot from the instance's network data; rewritten per instance."]
    for iface in network.interfaces:
        lines.append("")
        lines.append(f"auto {iface.ifname}")
        for stanza in _stanzas(network, iface):
            lines.append(stanza[0])
            lines.extend(f"    {option}" for option in stanza[1:])
    return {PATH: ("\n".join(lines) + "\n").encode()}
