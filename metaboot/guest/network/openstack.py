"""OpenStack ``network_data.json`` (nova's links / networks / services) to the model.

Nova emits only physical-type links; Ironic and other producers add ``bond`` and ``vlan``
links, which cloud-init also reads, so we do too. Every entry that cannot be used is reported
by its position and id and left out; the rest is kept.
"""

from __future__ import annotations

from metaboot.guest.network import bonding
from metaboot.guest.network.model import (
    Bond,
    Interface,
    IPAddress,
    IPv6Mode,
    Network,
    Problems,
    Route,
    Vlan,
    normalise_mac,
    parse_interface_address,
    parse_ip,
    parse_route_destination,
    prune,
    valid_ifname,
)
from metaboot.guest.records import replace

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# Link types that are a NIC in the guest (nova's LEGACY_EXPOSED_VIF_TYPES, "phy", and the
# extra ones cloud-init accepts).
PHYSICAL_TYPES = frozenset(
    {
        "phy",
        "ethernet",
        "bridge",
        "dvs",
        "hw_veb",
        "hyperv",
        "ovs",
        "tap",
        "vhostuser",
        "vif",
        "bgpovs",
        "cascading",
    }
)

_V6_MODES = {
    "ipv6_slaac": IPv6Mode.SLAAC,
    "ipv6_dhcpv6-stateless": IPv6Mode.STATELESS,
    "ipv6_dhcpv6-stateful": IPv6Mode.STATEFUL,
    "ipv6_dhcp": IPv6Mode.STATEFUL,  # nova: a DHCP-enabled v6 subnet without an address mode
}
_STATIC = {"ipv4", "ipv6", "static", "static6"}
SOURCE = "network_data.json"


def parse_network_data(data: object) -> tuple[Network, list[str]]:
    """Parse one network_data.json document; never raises for bad content."""
    problems = Problems()
    if not isinstance(data, dict):
        problems.add(SOURCE, f"is a {type(data).__name__}, not an object; ignored")
        return Network(), problems.messages
    links = _list(data, "links", problems)
    networks = _list(data, "networks", problems)
    services = _list(data, "services", problems)

    interfaces: dict[str, Interface] = {}
    bond_count = 0
    for index, link in enumerate(links):
        where = _where("links", index, link)
        if not isinstance(link, dict):
            problems.add(where, "is not an object; skipped")
            continue
        parsed = _parse_link(link, where, problems, bond_count)
        if parsed is None:
            continue
        if parsed.key in interfaces:
            problems.add(where, f"duplicate id {parsed.key!r}; skipped")
            continue
        if parsed.kind == "bond":
            bond_count += 1
        interfaces[parsed.key] = parsed

    for index, net in enumerate(networks):
        where = _where("networks", index, net)
        if not isinstance(net, dict):
            problems.add(where, "is not an object; skipped")
            continue
        link_id = net.get("link")
        target = interfaces.get(link_id) if isinstance(link_id, str) else None
        if target is None:
            problems.add(where, f"link {link_id!r} is not a usable link; network skipped")
            continue
        interfaces[target.key] = _apply_network(target, net, where, problems)

    dns = _dns_services(services, "services", problems)
    network = Network(tuple(interfaces.values()), dns=dns)
    return prune(network, problems, SOURCE), problems.messages


def _where(section: str, index: int, entry: object) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    suffix = f" (id {ident!r})" if ident is not None else ""
    return f"{SOURCE} {section}[{index}]{suffix}"


def _list(data: dict[str, Any], key: str, problems: Problems) -> list[Any]:
    value = data.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(f"{SOURCE} {key}", f"is a {type(value).__name__}, not a list; ignored")
        return []
    return value


def _mtu(link: dict[str, Any], where: str, problems: Problems) -> int | None:
    mtu = link.get("mtu")
    if mtu is None:
        return None
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        problems.add(where, f"mtu {mtu!r} is not a number from 68 to 65535; left to the default")
        return None
    return mtu


def _parse_link(
    link: dict[str, Any], where: str, problems: Problems, bond_count: int
) -> Interface | None:
    key = link.get("id")
    if not isinstance(key, str) or not key:
        problems.add(where, "has no string 'id'; skipped")
        return None
    kind = link.get("type")
    name = link.get("name")
    if name is not None and not (isinstance(name, str) and valid_ifname(name)):
        problems.add(where, f"name {name!r} is not a valid interface name; ignored")
        name = None
    mtu = _mtu(link, where, problems)

    mac_field = "vlan_mac_address" if kind == "vlan" else "ethernet_mac_address"
    mac: str | None = None
    raw_mac = link.get(mac_field)
    if raw_mac is not None:
        try:
            mac = normalise_mac(raw_mac)
        except ValueError as err:
            if kind in ("bond", "vlan"):
                problems.add(where, f"{mac_field}: {err}; the kernel will choose one")
            else:
                problems.add(where, f"{mac_field}: {err}; link skipped")
                return None

    if kind == "bond":
        mode = link.get("bond_mode", "active-backup")
        if mode not in bonding.MODES:
            problems.add(where, f"bond_mode {mode!r} is not a bonding mode; using active-backup")
            mode = "active-backup"
        members = link.get("bond_links")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            problems.add(where, f"bond_links {members!r} is not a list of link ids; skipped")
            return None
        options: list[tuple[str, str]] = []
        for raw, value in link.items():
            if not raw.startswith("bond_") or raw in ("bond_mode", "bond_links"):
                continue
            kernel = bonding.kernel_name(raw)
            if kernel is None:
                problems.add(where, f"unknown bond option {raw!r}; ignored")
                continue
            options.append((kernel, bonding.option_value(value)))
        return Interface(
            key=key,
            kind="bond",
            mac=mac,
            name=name or f"bond{bond_count}",
            mtu=mtu,
            bond=Bond(mode=str(mode), members=tuple(members), options=tuple(sorted(options))),
        )
    if kind == "vlan":
        vid = link.get("vlan_id")
        if isinstance(vid, str) and vid.isdigit():
            vid = int(vid)
        if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 4094:
            problems.add(where, f"vlan_id {vid!r} is not a VLAN id (1-4094); skipped")
            return None
        parent = link.get("vlan_link")
        if not isinstance(parent, str):
            problems.add(where, f"vlan_link {parent!r} is not a link id; skipped")
            return None
        return Interface(
            key=key, kind="vlan", mac=mac, name=name, mtu=mtu, vlan=Vlan(vid=vid, link=parent)
        )
    if kind not in PHYSICAL_TYPES:
        problems.add(where, f"unknown link type {kind!r}; treated as a physical NIC")
    if mac is None:
        problems.add(where, "has no ethernet_mac_address, so no NIC can be matched; skipped")
        return None
    return Interface(key=key, kind="physical", mac=mac, name=name, mtu=mtu)


def _apply_network(
    iface: Interface, net: dict[str, Any], where: str, problems: Problems
) -> Interface:
    kind = net.get("type")
    if kind == "ipv4_dhcp":
        iface = replace(iface, dhcp4=True)
    elif kind in _V6_MODES:
        mode = _V6_MODES[kind]
        if iface.ipv6 is not IPv6Mode.NONE and iface.ipv6 is not mode:
            problems.add(where, f"{kind} conflicts with {iface.ipv6.value} on the same link; kept")
        else:
            iface = replace(iface, ipv6=mode)
    elif kind in _STATIC:
        try:
            address = parse_interface_address(net.get("ip_address"), net.get("netmask"))
        except ValueError as err:
            problems.add(where, f"{err}; network skipped")
            return iface
        wanted = 6 if kind in ("ipv6", "static6") else 4
        if address.version != wanted:
            problems.add(where, f"type {kind!r} but address {address} is IPv{address.version}")
        iface = replace(iface, addresses=(*iface.addresses, address))
    else:
        problems.add(where, f"unknown network type {kind!r}; network skipped")
        return iface

    routes = list(iface.routes)
    raw_routes = net.get("routes") or []
    if not isinstance(raw_routes, list):
        problems.add(where, "routes is not a list; ignored")
        raw_routes = []
    for r_index, raw in enumerate(raw_routes):
        r_where = f"{where} routes[{r_index}]"
        route = _route(raw, r_where, problems)
        if route is not None and route not in routes:
            routes.append(route)
    dns = _dns_services(net.get("services") or [], f"{where} services", problems)
    merged = tuple(dict.fromkeys((*iface.dns, *dns)))
    return replace(iface, routes=tuple(routes), dns=merged)


def _route(raw: object, where: str, problems: Problems) -> Route | None:
    if not isinstance(raw, dict):
        problems.add(where, "is not an object; skipped")
        return None
    try:
        destination = parse_route_destination(raw.get("network"), raw.get("netmask"))
        gateway = parse_ip(raw["gateway"]) if raw.get("gateway") else None
    except (ValueError, KeyError) as err:
        problems.add(where, f"{err}; route skipped")
        return None
    if gateway is not None and gateway.version != destination.version:
        problems.add(where, f"gateway {gateway} is not IPv{destination.version}; route skipped")
        return None
    metric = raw.get("metric")
    if metric is not None and (isinstance(metric, bool) or not isinstance(metric, int)):
        problems.add(where, f"metric {metric!r} is not a number; ignored")
        metric = None
    return Route(destination, gateway, metric)


def _dns_services(services: object, where: str, problems: Problems) -> tuple[IPAddress, ...]:
    found: list[IPAddress] = []
    if not isinstance(services, list):
        problems.add(where, "is not a list; ignored")
        return ()
    for index, service in enumerate(services):
        if not isinstance(service, dict) or service.get("type") != "dns":
            continue
        try:
            address = parse_ip(service.get("address"))
        except ValueError as err:
            problems.add(f"{where}[{index}]", f"{err}; DNS server skipped")
            continue
        if address not in found:
            found.append(address)
    return tuple(found)
