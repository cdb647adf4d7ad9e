"""Independent readers for the five output formats, reducing a rendered file set to what it
means: per interface its addresses, routes, MTU, bond and VLAN settings, plus all DNS servers.

The same reader is applied to metaboot's output and to cloud-init's, so the comparison is
about meaning, not bytes. Each reader accepts both programs' idioms (e.g. ifupdown
``post-up route add`` and ``up ip route add``; ifcfg ``ADDRESS0=`` and ``ip route`` lines).
"""

from __future__ import annotations

import configparser
import ipaddress
import re
import shlex
from typing import Any

import yaml

Files = dict[str, str]  # path relative to the root (no leading slash) -> text


def _iface(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return summary["interfaces"].setdefault(
        name, {"addresses": set(), "routes": set(), "mtu": None, "bond": None, "vlan": None}
    )


def _new() -> dict[str, Any]:
    return {"interfaces": {}, "dns": set()}


def _addr(text: str, netmask: str | None = None) -> str:
    if netmask:
        return str(ipaddress.ip_interface(f"{text}/{netmask}"))
    return str(ipaddress.ip_interface(text))


def _dest(text: str, netmask: str | None = None, family: int | None = None) -> str:
    if text == "default":
        return "::/0" if family == 6 else "0.0.0.0/0"
    if netmask:
        return str(ipaddress.ip_network(f"{text}/{netmask}", strict=False))
    return str(ipaddress.ip_network(text, strict=False))


def _gw(text: str | None) -> str:
    return str(ipaddress.ip_address(text)) if text else ""


def finish(summary: dict[str, Any]) -> dict[str, Any]:
    """Drop loopback and interfaces that carry nothing; turn sets into sorted lists."""
    out: dict[str, Any] = {}
    for name, conf in summary["interfaces"].items():
        if name == "lo":
            continue
        if conf["bond"] is not None:
            conf["bond"]["members"] = sorted(conf["bond"]["members"])
        if not (conf["addresses"] or conf["routes"] or conf["mtu"] or conf["bond"] or conf["vlan"]):
            continue
        out[name] = {
            **conf,
            "addresses": sorted(conf["addresses"]),
            "routes": sorted(conf["routes"]),
        }
    return {"interfaces": out, "dns": sorted(summary["dns"])}


def _bond(conf: dict[str, Any]) -> dict[str, Any]:
    if conf["bond"] is None:
        conf["bond"] = {"mode": None, "members": set()}
    return conf["bond"]  # type: ignore[no-any-return]


# ---- systemd-networkd ----------------------------------------------------------------------


def _ini_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), []))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1][1].append((key.strip(), value.strip()))
    return sections


def networkd(files: Files) -> dict[str, Any]:
    summary = _new()
    vlan_parents: dict[str, str] = {}
    members: list[tuple[str, str]] = []
    for path, text in sorted(files.items()):
        sections = _ini_sections(text)
        if path.endswith(".netdev"):
            head = dict(next(items for title, items in sections if title == "NetDev"))
            conf = _iface(summary, head["Name"])
            if "MTUBytes" in head:
                conf["mtu"] = int(head["MTUBytes"])
            for title, items in sections:
                if title == "Bond":
                    _bond(conf)["mode"] = dict(items).get("Mode")
                if title == "VLAN":
                    conf["vlan"] = {"id": int(dict(items)["Id"]), "link": None}
            continue
        if not path.endswith(".network"):
            continue
        name = next(dict(items)["Name"] for title, items in sections if title == "Match")
        conf = _iface(summary, name)
        for title, items in sections:
            values = dict(items)
            if title == "Link" and "MTUBytes" in values:
                conf["mtu"] = int(values["MTUBytes"])
            elif title == "Address":
                conf["addresses"].add(_addr(values["Address"]))
            elif title == "Network":
                for key, value in items:
                    if key == "Address":
                        conf["addresses"].add(_addr(value))
                    elif key == "DNS":
                        summary["dns"].update(value.split())
                    elif key == "Bond":
                        members.append((value, name))
                    elif key == "VLAN":
                        vlan_parents[value] = name
                    elif key == "Gateway":
                        conf["routes"].add((_dest("default", family=_ver(value)), _gw(value)))
            elif title == "Route":
                gw = values.get("Gateway")
                dest = values.get("Destination", "default")
                conf["routes"].add((_dest(dest, family=_ver(gw)), _gw(gw)))
    for bond, member in members:
        _bond(_iface(summary, bond))["members"].add(member)
    for vlan, parent in vlan_parents.items():
        conf = _iface(summary, vlan)
        if conf["vlan"] is not None:
            conf["vlan"]["link"] = parent
    return finish(summary)


def _ver(address: str | None) -> int:
    return 6 if address and ":" in address else 4


# ---- ifupdown --------------------------------------------------------------------------------

_ROUTE_OLD = re.compile(
    r"route add (?:-A inet6 )?(?:-net |-host )?(?P<dest>\S+)"
    r"(?: netmask (?P<mask>\S+))? gw (?P<gw>\S+)"
)
_ROUTE_IP = re.compile(r"ip (?:-[46] )?route add (?P<dest>\S+)(?: via (?P<gw>\S+))?")


def eni(files: Files) -> dict[str, Any]:
    summary = _new()
    stanza: tuple[str, str, str] | None = None
    for _path, text in sorted(files.items()):
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if words[0] == "iface":
                stanza = (words[1], words[2], words[3])
                _iface(summary, words[1])
                continue
            if words[0] in ("auto", "allow-hotplug", "source", "source-directory"):
                continue
            if stanza is None:
                continue
            name, family, _method = stanza
            conf = _iface(summary, name)
            option, rest = words[0], words[1:]
            fam = 6 if family == "inet6" else 4
            if option == "address":
                conf["addresses"].add(_addr(rest[0]))
                conf["_last"] = rest[0]
            elif option == "netmask":
                last = conf.pop("_last")
                conf["addresses"].discard(_addr(last))
                conf["addresses"].add(_addr(last.split("/")[0], rest[0]))
            elif option == "gateway":
                conf["routes"].add((_dest("default", family=fam), _gw(rest[0])))
            elif option == "mtu":
                conf["mtu"] = int(rest[0])
            elif option == "dns-nameservers":
                summary["dns"].update(rest)
            elif option.replace("_", "-") == "bond-mode":
                if not any(w.startswith("bond-master") for w in _options_of(text, name)):
                    _bond(conf)["mode"] = rest[0]
            elif option == "bond-master":
                _bond(_iface(summary, rest[0]))["members"].add(name)
            elif option == "bond-slaves" and rest != ["none"]:
                _bond(conf)["members"].update(rest)
            elif option == "vlan-raw-device":
                vlan = conf["vlan"] or {"id": None, "link": None}
                vlan["link"] = rest[0]
                if vlan["id"] is None and "." in name:
                    vlan["id"] = int(name.rsplit(".", 1)[1])
                conf["vlan"] = vlan
            elif option.replace("_", "-") == "vlan-id":
                conf["vlan"] = {**(conf["vlan"] or {"link": None}), "id": int(rest[0])}
            elif option in ("up", "post-up"):
                command = " ".join(rest)
                match = _ROUTE_IP.search(command) or _ROUTE_OLD.search(command)
                if match:
                    groups = match.groupdict()
                    dest = _dest(groups["dest"], groups.get("mask"), family=fam)
                    conf["routes"].add((dest, _gw(groups.get("gw"))))
    for conf in summary["interfaces"].values():
        conf.pop("_last", None)
    return finish(summary)


def _options_of(text: str, name: str) -> list[str]:
    found: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("iface "):
            inside = line.split()[1] == name
        elif inside:
            found.append(line)
    return found


# ---- netplan -------------------------------------------------------------------------------


def netplan(files: Files) -> dict[str, Any]:
    summary = _new()
    for _path, text in sorted(files.items()):
        doc = yaml.safe_load(text)["network"]
        for section in ("ethernets", "bonds", "vlans"):
            for name, dev in (doc.get(section) or {}).items():
                conf = _iface(summary, dev.get("set-name") or name)
                conf["addresses"].update(_addr(a) for a in dev.get("addresses") or [])
                if dev.get("mtu"):
                    conf["mtu"] = int(dev["mtu"])
                for key, fam in (("gateway4", 4), ("gateway6", 6)):
                    if dev.get(key):
                        conf["routes"].add((_dest("default", family=fam), _gw(dev[key])))
                for route in dev.get("routes") or []:
                    via = route.get("via")
                    conf["routes"].add((_dest(route["to"], family=_ver(via)), _gw(via)))
                summary["dns"].update((dev.get("nameservers") or {}).get("addresses") or [])
                if section == "bonds":
                    bond = _bond(conf)
                    bond["mode"] = (dev.get("parameters") or {}).get("mode")
                    bond["members"].update(dev.get("interfaces") or [])
                if section == "vlans":
                    conf["vlan"] = {"id": int(dev["id"]), "link": dev["link"]}
    return finish(summary)


# ---- NetworkManager keyfiles ---------------------------------------------------------------


def network_manager(files: Files, macs: dict[str, str]) -> dict[str, Any]:
    """``macs`` maps MAC to name for connections that match by MAC only (cloud-init's)."""
    summary = _new()
    parsed: dict[str, configparser.ConfigParser] = {}
    names: dict[str, str] = {}
    for path, text in sorted(files.items()):
        if not path.endswith(".nmconnection"):
            continue
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(text)
        conn = parser["connection"]
        name = conn.get("interface-name")
        if not name and parser.has_option("ethernet", "mac-address"):
            name = macs[parser["ethernet"]["mac-address"].lower()]
        assert name, path
        parsed[name] = parser
        names[conn["uuid"]] = name
        names[name] = name
    for name, parser in parsed.items():
        conf = _iface(summary, name)
        if parser.has_option("ethernet", "mtu"):
            conf["mtu"] = int(parser["ethernet"]["mtu"])
        if parser.has_section("bond"):
            _bond(conf)["mode"] = parser["bond"].get("mode")
        if parser["connection"].get("slave-type") == "bond":
            _bond(_iface(summary, names[parser["connection"]["master"]]))["members"].add(name)
        if parser.has_section("vlan"):
            vlan = parser["vlan"]
            conf["vlan"] = {
                "id": int(vlan["id"]),
                "link": names.get(vlan["parent"], vlan["parent"]),
            }
        for family, fam in (("ipv4", 4), ("ipv6", 6)):
            if not parser.has_section(family):
                continue
            section = parser[family]
            for key, value in section.items():
                if re.fullmatch(r"address\d+", key):
                    address, _, gw = value.partition(",")
                    conf["addresses"].add(_addr(address))
                    if gw:
                        conf["routes"].add((_dest("default", family=fam), _gw(gw)))
                elif re.fullmatch(r"route\d+", key):
                    parts = value.split(",")
                    gw = parts[1] if len(parts) > 1 and int(ipaddress.ip_address(parts[1])) else ""
                    conf["routes"].add((_dest(parts[0]), _gw(gw)))
                elif key == "gateway":
                    conf["routes"].add((_dest("default", family=fam), _gw(value)))
                elif key == "dns":
                    summary["dns"].update(d for d in value.split(";") if d)
    return finish(summary)


# ---- ifcfg (sysconfig) --------------------------------------------------------------------


def _shell_vars(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for token_line in text.splitlines():
        line = token_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        for token in shlex.split(line, comments=True):
            key, _, value = token.partition("=")
            values[key] = value
    return values


def sysconfig(files: Files) -> dict[str, Any]:
    summary = _new()
    for path, text in sorted(files.items()):
        base = path.rsplit("/", 1)[-1]
        if path.endswith("resolv.conf"):
            for line in text.splitlines():
                if line.startswith("nameserver"):
                    summary["dns"].add(line.split()[1])
            continue
        if base.startswith("ifcfg-"):
            values = _shell_vars(text)
            name = values.get("DEVICE", base[len("ifcfg-") :])
            conf = _iface(summary, name)
            for key, value in values.items():
                match = re.fullmatch(r"IPADDR(\d*)", key)
                if match:
                    suffix = match.group(1)
                    prefix = values.get(f"PREFIX{suffix}") or values.get(f"NETMASK{suffix}")
                    conf["addresses"].add(_addr(value, prefix))
            if values.get("IPV6ADDR"):
                conf["addresses"].add(_addr(values["IPV6ADDR"]))
            for extra in values.get("IPV6ADDR_SECONDARIES", "").split():
                conf["addresses"].add(_addr(extra))
            if values.get("GATEWAY"):
                conf["routes"].add(("0.0.0.0/0", _gw(values["GATEWAY"])))
            if values.get("IPV6_DEFAULTGW"):
                conf["routes"].add(("::/0", _gw(values["IPV6_DEFAULTGW"].split("%")[0])))
            if values.get("MTU"):
                conf["mtu"] = int(values["MTU"])
            for key, value in values.items():
                if re.fullmatch(r"DNS\d+", key):
                    summary["dns"].add(value)
            if values.get("BONDING_MASTER") == "yes":
                opts = dict(o.split("=", 1) for o in values.get("BONDING_OPTS", "").split())
                _bond(conf)["mode"] = opts.get("mode")
            if values.get("MASTER"):
                _bond(_iface(summary, values["MASTER"]))["members"].add(name)
            if values.get("VLAN") == "yes":
                vid = values.get("VLAN_ID") or name.rsplit(".", 1)[1]
                conf["vlan"] = {"id": int(vid), "link": values.get("PHYSDEV")}
        elif base.startswith(("route-", "route6-")):
            name = base.split("-", 1)[1]
            conf = _iface(summary, name)
            values = _shell_vars(text) if "ADDRESS0" in text else {}
            index = 0
            while f"ADDRESS{index}" in values:
                dest = _dest(values[f"ADDRESS{index}"], values.get(f"NETMASK{index}"))
                conf["routes"].add((dest, _gw(values.get(f"GATEWAY{index}"))))
                index += 1
            if not values:
                for line in text.splitlines():
                    words = line.split()
                    if not words or words[0].startswith("#"):
                        continue
                    gw = words[words.index("via") + 1] if "via" in words else ""
                    fam = 6 if base.startswith("route6-") else 4
                    conf["routes"].add((_dest(words[0], family=fam), _gw(gw)))
    return finish(summary)
