"""NoCloud ``network-config`` (cloud-init's formats version 1 and 2) to the model.

Version 1 is a list of typed entries with subnets; version 2 is the netplan subset. Both
name devices by a key of their own, which the model keeps as :attr:`Interface.key`; a
physical device with a MAC is bound by that MAC, one without by its name.
"""

from __future__ import annotations

from metaboot.guest.network import bonding
from metaboot.guest.network.model import (
    Bond,
    Interface,
    IPAddress,
    IPInterface,
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

SOURCE = "network-config"


def parse_network_config(data: object) -> tuple[Network, list[str]]:
    """Parse a v1 or v2 document (also the ``{"network": {...}}`` wrapper); never raises."""
    problems = Problems()
    if isinstance(data, dict) and isinstance(data.get("network"), dict):
        data = data["network"]
    if not isinstance(data, dict):
        problems.add(SOURCE, f"is a {type(data).__name__}, not a mapping; ignored")
        return Network(), problems.messages
    version = data.get("version")
    if version in (1, "1"):
        network = _parse_v1(data, problems)
    elif version in (2, "2"):
        network = _parse_v2(data, problems)
    else:
        problems.add(SOURCE, f"version {version!r} is not 1 or 2; ignored")
        return Network(), problems.messages
    return prune(network, problems, SOURCE), problems.messages


# ---- shared -------------------------------------------------------------------------------


def _mtu(value: object, where: str, problems: Problems) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 68 <= value <= 65535:
        problems.add(where, f"mtu {value!r} is not a number from 68 to 65535; left to the default")
        return None
    return value


def _mac(value: object, where: str, problems: Problems) -> tuple[bool, str | None]:
    """(ok, mac): ok is False when a MAC was given but is not one."""
    if value is None:
        return True, None
    try:
        return True, normalise_mac(value)
    except ValueError as err:
        problems.add(where, f"{err}")
        return False, None


def _addresses(values: object, where: str, problems: Problems) -> list[IPAddress]:
    if values is None:
        return []
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, list):
        problems.add(where, f"{values!r} is not a list of addresses; ignored")
        return []
    found: list[IPAddress] = []
    for value in values:
        try:
            found.append(parse_ip(value))
        except ValueError as err:
            problems.add(where, f"{err}; skipped")
    return found


def _strings(values: object) -> tuple[str, ...]:
    if isinstance(values, str):
        return tuple(values.replace(",", " ").split())
    if isinstance(values, list):
        return tuple(str(v) for v in values)
    return ()


def _route(raw: object, where: str, problems: Problems) -> Route | None:
    if not isinstance(raw, dict):
        problems.add(where, "is not a mapping; skipped")
        return None
    try:
        target = raw.get("to", raw.get("destination", raw.get("network")))
        if target == "default":
            via = parse_ip(raw.get("via", raw.get("gateway")))
            target = "::/0" if via.version == 6 else "0.0.0.0/0"
        destination = parse_route_destination(target, raw.get("netmask"))
        via_raw = raw.get("via", raw.get("gateway"))
        gateway = parse_ip(via_raw) if via_raw else None
    except ValueError as err:
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


def _bond_options(
    params: object, where: str, problems: Problems
) -> tuple[str, list[tuple[str, str]]]:
    mode = "active-backup"
    options: list[tuple[str, str]] = []
    if not isinstance(params, dict):
        return mode, options
    for raw, value in params.items():
        if str(raw).replace("_", "-").removeprefix("bond-") == "mode":
            if value in bonding.MODES:
                mode = str(value)
            else:
                problems.add(
                    where, f"bond mode {value!r} is not a bonding mode; using active-backup"
                )
            continue
        kernel = bonding.kernel_name(str(raw))
        if kernel is None:
            problems.add(where, f"unknown bond option {raw!r}; ignored")
            continue
        options.append((kernel, bonding.option_value(value)))
    return mode, sorted(options)


# ---- version 1 ----------------------------------------------------------------------------

_V1_V6 = {
    "ipv6_slaac": IPv6Mode.SLAAC,
    "ipv6_dhcpv6-stateless": IPv6Mode.STATELESS,
    "ipv6_dhcpv6-stateful": IPv6Mode.STATEFUL,
    "dhcp6": IPv6Mode.STATEFUL,
}


def _parse_v1(data: dict[str, Any], problems: Problems) -> Network:
    entries = data.get("config") or []
    if not isinstance(entries, list):
        problems.add(f"{SOURCE} config", "is not a list; ignored")
        return Network()
    interfaces: dict[str, Interface] = {}
    dns: list[IPAddress] = []
    search: list[str] = []
    global_routes: list[tuple[str, Route]] = []
    for index, entry in enumerate(entries):
        ident = entry.get("name") if isinstance(entry, dict) else None
        where = f"{SOURCE} config[{index}]" + (f" (name {ident!r})" if ident else "")
        if not isinstance(entry, dict):
            problems.add(where, "is not a mapping; skipped")
            continue
        kind = entry.get("type")
        if kind == "nameserver":
            dns.extend(_addresses(entry.get("address"), where, problems))
            search.extend(_strings(entry.get("search")))
            continue
        if kind == "route":
            route = _route(entry, where, problems)
            if route is not None:
                global_routes.append((where, route))
            continue
        if kind not in ("physical", "bond", "vlan"):
            problems.add(where, f"unknown or unsupported type {kind!r}; skipped")
            continue
        if not isinstance(ident, str) or not valid_ifname(ident):
            problems.add(where, f"name {ident!r} is not a valid interface name; skipped")
            continue
        if ident in interfaces:
            problems.add(where, f"duplicate name {ident!r}; skipped")
            continue
        ok, mac = _mac(entry.get("mac_address"), where, problems)
        if not ok and kind == "physical":
            problems.add(where, "skipped")
            continue
        iface = Interface(
            key=ident,
            kind=kind,
            mac=mac,
            name=None if kind == "physical" and mac else ident,
            mtu=_mtu(entry.get("mtu"), where, problems),
        )
        if kind == "bond":
            members = entry.get("bond_interfaces")
            if not isinstance(members, list) or not members:
                problems.add(where, f"bond_interfaces {members!r} is not a list of names; skipped")
                continue
            mode, options = _bond_options(entry.get("params"), where, problems)
            iface = replace(iface, bond=Bond(mode, tuple(str(m) for m in members), tuple(options)))
        elif kind == "vlan":
            vid = entry.get("vlan_id")
            if isinstance(vid, str) and vid.isdigit():
                vid = int(vid)
            if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 4094:
                problems.add(where, f"vlan_id {vid!r} is not a VLAN id (1-4094); skipped")
                continue
            iface = replace(iface, vlan=Vlan(vid, str(entry.get("vlan_link"))))
        subnets = entry.get("subnets") or []
        if not isinstance(subnets, list):
            problems.add(where, "subnets is not a list; ignored")
            subnets = []
        for s_index, subnet in enumerate(subnets):
            iface = _v1_subnet(iface, subnet, f"{where} subnets[{s_index}]", problems)
        if entry.get("accept-ra") is True and iface.ipv6 is IPv6Mode.NONE:
            iface = replace(iface, ipv6=IPv6Mode.SLAAC)
        interfaces[ident] = iface
    for where, route in global_routes:
        owner = _route_owner(interfaces.values(), route)
        if owner is None:
            problems.add(
                where, f"no interface has an address on the way to {route.gateway}; skipped"
            )
            continue
        interfaces[owner.key] = replace(owner, routes=(*owner.routes, route))
    return Network(
        tuple(interfaces.values()), tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(search))
    )


def _route_owner(interfaces: Any, route: Route) -> Interface | None:
    for iface in interfaces:
        for address in iface.addresses:
            if route.gateway is not None and route.gateway in address.network:
                return iface  # type: ignore[no-any-return]
    return None


def _v1_subnet(iface: Interface, subnet: object, where: str, problems: Problems) -> Interface:
    if not isinstance(subnet, dict):
        problems.add(where, "is not a mapping; skipped")
        return iface
    kind = subnet.get("type")
    if kind in ("dhcp", "dhcp4"):
        iface = replace(iface, dhcp4=True)
    elif kind in _V1_V6:
        iface = replace(iface, ipv6=_V1_V6[kind])
    elif kind in ("static", "static6"):
        try:
            address: IPInterface = parse_interface_address(
                subnet.get("address"), subnet.get("netmask")
            )
        except ValueError as err:
            problems.add(where, f"{err}; subnet skipped")
            return iface
        routes = list(iface.routes)
        if subnet.get("gateway"):
            try:
                gateway = parse_ip(subnet["gateway"])
                default = "::/0" if gateway.version == 6 else "0.0.0.0/0"
                routes.append(
                    Route(parse_route_destination(default), gateway, subnet.get("metric"))
                )
            except ValueError as err:
                problems.add(where, f"gateway: {err}; ignored")
        iface = replace(iface, addresses=(*iface.addresses, address), routes=tuple(routes))
    elif kind == "manual":
        pass
    else:
        problems.add(where, f"unknown subnet type {kind!r}; skipped")
        return iface
    routes = list(iface.routes)
    for r_index, raw in enumerate(subnet.get("routes") or []):
        route = _route(raw, f"{where} routes[{r_index}]", problems)
        if route is not None and route not in routes:
            routes.append(route)
    dns = _addresses(subnet.get("dns_nameservers"), f"{where} dns_nameservers", problems)
    search = _strings(subnet.get("dns_search"))
    return replace(
        iface,
        routes=tuple(routes),
        dns=tuple(dict.fromkeys((*iface.dns, *dns))),
        search=tuple(dict.fromkeys((*iface.search, *search))),
    )


# ---- version 2 ----------------------------------------------------------------------------


def _parse_v2(data: dict[str, Any], problems: Problems) -> Network:
    interfaces: dict[str, Interface] = {}
    for section, kind in (("ethernets", "physical"), ("bonds", "bond"), ("vlans", "vlan")):
        block = data.get(section) or {}
        if not isinstance(block, dict):
            problems.add(f"{SOURCE} {section}", "is not a mapping; ignored")
            continue
        for ident, conf in block.items():
            where = f"{SOURCE} {section}.{ident}"
            if not isinstance(conf, dict):
                problems.add(where, "is not a mapping; skipped")
                continue
            iface = _v2_device(str(ident), kind, conf, where, problems)
            if iface is not None:
                interfaces[iface.key] = iface
    for section in ("bridges", "wifis", "tunnels", "vrfs"):
        if data.get(section):
            problems.add(f"{SOURCE} {section}", "is not supported; skipped")
    return Network(tuple(interfaces.values()))


def _v2_device(
    ident: str, kind: Any, conf: dict[str, Any], where: str, problems: Problems
) -> Interface | None:
    match = conf.get("match") if isinstance(conf.get("match"), dict) else {}
    assert isinstance(match, dict)
    ok, mac = _mac(
        match.get("macaddress", conf.get("macaddress") if kind != "physical" else None),
        where,
        problems,
    )
    if not ok:
        if kind == "physical":
            problems.add(where, "skipped")
            return None
        mac = None
    name: str | None = conf.get("set-name") or match.get("name") or None
    if name is not None and (not isinstance(name, str) or not valid_ifname(name) or "*" in name):
        name = None
    if kind != "physical" or (mac is None and name is None):
        name = ident
    if kind == "physical" and mac is not None:
        name = None  # bound by MAC
    iface = Interface(
        key=ident, kind=kind, mac=mac, name=name, mtu=_mtu(conf.get("mtu"), where, problems)
    )
    if kind == "bond":
        members = conf.get("interfaces")
        if not isinstance(members, list) or not members:
            problems.add(where, f"interfaces {members!r} is not a list of ids; skipped")
            return None
        mode, options = _bond_options(conf.get("parameters"), where, problems)
        iface = replace(iface, bond=Bond(mode, tuple(str(m) for m in members), tuple(options)))
    elif kind == "vlan":
        vid = conf.get("id")
        if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 4094:
            problems.add(where, f"id {vid!r} is not a VLAN id (1-4094); skipped")
            return None
        iface = replace(iface, vlan=Vlan(vid, str(conf.get("link"))))
    dhcp4 = conf.get("dhcp4") in (True, "yes", "true")
    dhcp6 = conf.get("dhcp6") in (True, "yes", "true")
    accept_ra = conf.get("accept-ra")
    addresses: list[IPInterface] = []
    for a_index, raw in enumerate(conf.get("addresses") or []):
        try:
            addresses.append(parse_interface_address(raw))
        except ValueError as err:
            problems.add(f"{where} addresses[{a_index}]", f"{err}; skipped")
    if dhcp6:
        mode = IPv6Mode.STATEFUL
    elif accept_ra in (True, "yes", "true"):
        mode = IPv6Mode.SLAAC
    else:
        mode = IPv6Mode.NONE
    routes: list[Route] = []
    for key in ("gateway4", "gateway6"):
        if conf.get(key):
            route = _route({"to": "default", "via": conf[key]}, f"{where} {key}", problems)
            if route is not None:
                routes.append(route)
    for r_index, raw in enumerate(conf.get("routes") or []):
        route = _route(raw, f"{where} routes[{r_index}]", problems)
        if route is not None and route not in routes:
            routes.append(route)
    nameservers = conf.get("nameservers") if isinstance(conf.get("nameservers"), dict) else {}
    assert isinstance(nameservers, dict)
    return replace(
        iface,
        dhcp4=dhcp4,
        ipv6=mode,
        addresses=tuple(addresses),
        routes=tuple(routes),
        dns=tuple(_addresses(nameservers.get("addresses"), f"{where} nameservers", problems)),
        search=_strings(nameservers.get("search")),
    )
