"""The Instance record and its spec format (YAML or JSON).

An instance spec is what an operator writes; :func:`parse_spec` turns it into a frozen
:class:`Instance` or raises :class:`~metaboot.errors.SpecError` naming the offending field by its
dotted path (``ports[0].subnets[1].gateway``). :func:`instance_to_spec` gives the canonical form
(every field explicit, binary data base64) that the registry stores and that parses back to an
equal Instance, so the two never drift.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import uuid as uuidlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaboot.errors import SpecError

USER_DATA_LIMIT = 65535  # nova's API limit, on the base64 text
PASSWORD_LIMIT = 1020  # nova's password endpoint limit (4 chunks of 255)

VIF_TYPES = ("bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif", "phy")
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
DEVICE_BUSES = ("pci", "usb", "scsi", "ide", "xen", "none")
KEY_TYPES = ("ssh", "x509")

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_EC2_BDM_KEY = re.compile(r"^(ephemeral\d+|swap|ebs\d+)$")


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    data: str


@dataclass(frozen=True)
class Route:
    destination: str  # CIDR
    nexthop: str


@dataclass(frozen=True)
class Subnet:
    cidr: str
    gateway: str | None = None
    dhcp: bool = False
    ipv6_mode: str | None = None
    dns: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr).version


@dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    mac: str
    fixed_ips: tuple[str, ...] = ()
    floating_ip: str | None = None
    mtu: int | None = None
    subnets: tuple[Subnet, ...] = ()
    devname: str | None = None
    vif_type: str = "phy"


@dataclass(frozen=True)
class InjectedFile:
    path: str
    content: bytes


@dataclass(frozen=True)
class MetadataOptions:
    """Per-instance endpoint policy, after AWS's instance metadata options."""

    http_endpoint: str = "enabled"  # enabled | disabled
    http_tokens: str = "optional"  # optional | required


@dataclass(frozen=True)
class Instance:
    uuid: str
    name: str
    hostname: str
    project_id: str = ""
    availability_zone: str | None = "nova"
    launch_index: int = 0
    flavor: str = ""
    image_id: str = ""
    keys: tuple[Key, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    vendor_data: Mapping[str, Any] = field(default_factory=dict)
    security_groups: tuple[str, ...] = ("default",)
    devices: tuple[Mapping[str, Any], ...] = ()
    files: tuple[InjectedFile, ...] = ()
    ports: tuple[Port, ...] = ()
    network_data: Mapping[str, Any] | None = None
    reservation_id: str = ""
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    root_device_name: str | None = None
    block_device_mapping: Mapping[str, str] = field(default_factory=dict)
    dedicated_cpus: tuple[int, ...] = ()
    boot_roles: tuple[str, ...] = ()
    ec2_id: int | None = None
    metadata_options: MetadataOptions = field(default_factory=MetadataOptions)

    def addresses(self) -> list[tuple[str, str]]:
        """(network_id, ip) pairs of this instance's fixed addresses (see also
        :meth:`link_local_addresses`)."""
        found: list[tuple[str, str]] = []
        for port in self.ports:
            for ip in port.fixed_ips:
                pair = (port.network_id, ip)
                if pair not in found:
                    found.append(pair)
        if self.network_data:
            for net in self.network_data.get("networks", ()):
                addr = net.get("ip_address") if isinstance(net, Mapping) else None
                nid = net.get("network_id") if isinstance(net, Mapping) else None
                if isinstance(addr, str) and isinstance(nid, str) and (nid, addr) not in found:
                    found.append((nid, addr))
        return found

    def link_local_addresses(self) -> list[tuple[str, str]]:
        """(network_id, fe80::…) per port: the IPv6 link-local address its MAC gives (EUI-64),
        from which a guest asks ``fe80::a9fe:a9fe`` — neutron identifies such a guest by MAC."""
        return [(port.network_id, eui64_link_local(port.mac)) for port in self.ports]

    @property
    def ec2_instance_id(self) -> str:
        number = self.ec2_id if self.ec2_id is not None else _ec2_number(self.uuid)
        return f"i-{number:08x}"

    @property
    def ec2_image_id(self) -> str:
        return f"ami-{_ec2_number(self.image_id):08x}"


def eui64_link_local(mac: str) -> str:
    """The fe80::/64 address a NIC forms from its MAC (RFC 4291 modified EUI-64)."""
    octets = bytes.fromhex(mac.replace(":", ""))
    interface_id = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + interface_id))


def _ec2_number(text: str) -> int:
    """A stable 32-bit number for EC2-style ids, the same on every node and drive."""
    return zlib.crc32(text.encode("utf-8")) if text else 0


# ---- parsing ---------------------------------------------------------------------------


class _Fields:
    """Reads one mapping of a spec, remembering which keys were used to reject unknown ones."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(where, f"must be a mapping, not {_kind(data)}")
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.where}[{key}]"
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise SpecError(self.at(key), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SpecError(self.at(key), f"must be a string, not {_kind(value)}")
        return str(value)

    def req(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, default: int | None, lo: int, hi: int) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(self.at(key), f"must be an integer, not {_kind(value)}")
        if not lo <= value <= hi:
            raise SpecError(self.at(key), f"must be between {lo} and {hi}, not {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(self.at(key), f"must be true or false, not {_kind(value)}")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            raise SpecError(self.at(key), f"must be a list, not {_kind(value)}")
        return list(value)

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise SpecError(self.at(key), f"must be a mapping, not {_kind(value)}")
        return value

    def choice(self, key: str, choices: Sequence[str], default: str | None) -> str | None:
        value = self.text(key, default)
        if value is not None and value not in choices:
            raise SpecError(self.at(key), f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.used)
        if unknown:
            raise SpecError(
                self.at(unknown[0]) if len(unknown) == 1 else self.where,
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}",
            )


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _ip(value: object, where: str, version: int | None = None) -> str:
    if not isinstance(value, str):
        raise SpecError(where, f"must be an IP address, not {_kind(value)}")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise SpecError(where, f"{value!r} is not an IP address") from None
    if version is not None and ip.version != version:
        raise SpecError(where, f"{value} is not an IPv{version} address")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _cidr(value: object, where: str) -> str:
    if not isinstance(value, str) or "/" not in value:
        raise SpecError(where, f"must be a CIDR such as 10.0.0.0/24, not {value!r}")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise SpecError(where, f"{value!r} is not a CIDR") from None


def _mac(value: object, where: str) -> str:
    text = value.lower().replace("-", ":") if isinstance(value, str) else None
    if text is None or not _MAC.match(text):
        raise SpecError(where, f"{value!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return text


def _hostname(value: str, where: str) -> str:
    if len(value) > 253 or not all(_LABEL.match(label) for label in value.split(".")):
        raise SpecError(
            where,
            f"{value!r} is not a valid hostname (labels of letters, digits and hyphens, "
            "separated by dots)",
        )
    return value


def sanitize_hostname(name: str) -> str:
    """A hostname derived from a display name, the way nova derives a default one."""
    text = re.sub(r"[ _]", "-", name.lower())
    text = re.sub(r"[^a-z0-9.-]", "", text)
    text = re.sub(r"\.+", ".", text).strip(".-")
    labels = [label.strip("-")[:63] for label in text.split(".") if label.strip("-")]
    return ".".join(labels)[:253].strip(".-") or "instance"


def _user_data(spec: _Fields, base_dir: Path | None, limit: int) -> bytes | None:
    given = [k for k in ("user_data", "user_data_file", "user_data_b64") if spec.has(k)]
    for key in ("user_data", "user_data_file", "user_data_b64"):
        spec.used.add(key)
    if len(given) > 1:
        raise SpecError(spec.at(given[1]), f"give only one of {', '.join(given)}")
    if not given:
        return None
    key = given[0]
    value = spec.data[key]
    if key == "user_data":
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            raw = value.encode("utf-8")
        else:
            raise SpecError(spec.at(key), f"must be a string, not {_kind(value)}")
    elif key == "user_data_file":
        if not isinstance(value, str):
            raise SpecError(spec.at(key), f"must be a file path, not {_kind(value)}")
        path = Path(value)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise SpecError(spec.at(key), f"cannot read {path}: {err.strerror}") from None
    else:
        if not isinstance(value, str):
            raise SpecError(spec.at(key), f"must be base64 text, not {_kind(value)}")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SpecError(spec.at(key), "is not valid base64") from None
    encoded = 4 * ((len(raw) + 2) // 3)
    if encoded > limit:
        raise SpecError(
            spec.at(key),
            f"is {encoded} bytes once base64-encoded; the limit is {limit} (about "
            f"{limit * 3 // 4} bytes raw) — compress it with gzip or fetch it with #include",
        )
    return raw


def _keys(spec: _Fields) -> tuple[Key, ...]:
    keys: list[Key] = []
    for i, item in enumerate(spec.items("keys")):
        k = _Fields(item, spec.at("keys") + f"[{i}]")
        key = Key(
            name=k.req("name"),
            type=k.choice("type", KEY_TYPES, "ssh") or "ssh",
            data=k.req("data").strip(),
        )
        k.finish()
        if any(existing.name == key.name for existing in keys):
            raise SpecError(k.at("name"), f"duplicate key name {key.name!r}")
        keys.append(key)
    return tuple(keys)


def _meta(spec: _Fields) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, value in spec.mapping("meta").items():
        where = spec.at("meta") + f".{key}"
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise SpecError(where, "keys must be strings of 1 to 255 characters")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SpecError(where, f"must be a string, not {_kind(value)}")
        text = str(value)
        if len(text) > 255:
            raise SpecError(where, f"is {len(text)} characters; the limit is 255")
        meta[key] = text
    return meta


def _json_mapping(spec: _Fields, key: str) -> dict[str, Any]:
    value = dict(spec.mapping(key))
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise SpecError(spec.at(key), f"must be plain JSON data: {err}") from None
    return value


def _strings(spec: _Fields, key: str, default: Sequence[str] = ()) -> tuple[str, ...]:
    if not spec.has(key):
        spec.used.add(key)
        return tuple(default)
    out = []
    for i, item in enumerate(spec.items(key)):
        if not isinstance(item, str):
            raise SpecError(spec.at(key) + f"[{i}]", f"must be a string, not {_kind(item)}")
        out.append(item)
    return tuple(out)


def _devices(spec: _Fields) -> tuple[dict[str, Any], ...]:
    devices: list[dict[str, Any]] = []
    for i, item in enumerate(spec.items("devices")):
        d = _Fields(item, spec.at("devices") + f"[{i}]")
        kind = d.choice("type", ("nic", "disk", "share"), None)
        if kind is None:
            raise SpecError(d.at("type"), "is required (nic, disk or share)")
        device: dict[str, Any] = {"type": kind}
        device["bus"] = d.choice("bus", DEVICE_BUSES, "none")
        device["address"] = d.text("address", "none")
        if d.has("tags"):
            device["tags"] = list(_strings(d, "tags"))
        if kind == "nic":
            device["mac"] = _mac(d.raw("mac"), d.at("mac"))
            if d.has("vlan"):
                device["vlan"] = d.integer("vlan", None, 0, 4094)
            if d.has("vf_trusted"):
                device["vf_trusted"] = d.boolean("vf_trusted", False)
        elif kind == "disk":
            for opt in ("serial", "path"):
                if d.has(opt):
                    device[opt] = d.text(opt)
        else:
            device["share_id"] = d.req("share_id")
            device["tag"] = d.req("tag")
        d.finish()
        devices.append(device)
    return tuple(devices)


def _files(spec: _Fields) -> tuple[InjectedFile, ...]:
    files: list[InjectedFile] = []
    for i, item in enumerate(spec.items("files")):
        f = _Fields(item, spec.at("files") + f"[{i}]")
        path = f.req("path")
        if not path.startswith("/"):
            raise SpecError(f.at("path"), f"must be an absolute guest path, not {path!r}")
        if f.has("content") and f.has("content_b64"):
            raise SpecError(f.at("content_b64"), "give only one of content, content_b64")
        if f.has("content_b64"):
            try:
                content = base64.b64decode(f.req("content_b64"), validate=True)
            except (binascii.Error, ValueError):
                raise SpecError(f.at("content_b64"), "is not valid base64") from None
        else:
            content = (f.text("content", "") or "").encode("utf-8")
            f.used.add("content_b64")
        f.finish()
        files.append(InjectedFile(path=path, content=content))
    return tuple(files)


def _subnet(item: object, where: str) -> Subnet:
    s = _Fields(item, where)
    cidr = _cidr(s.raw("cidr"), s.at("cidr"))
    version = ipaddress.ip_network(cidr).version
    gateway = _ip(s.raw("gateway"), s.at("gateway"), version) if s.has("gateway") else None
    s.used.add("gateway")
    ipv6_mode = s.choice("ipv6_mode", IPV6_MODES, None)
    if ipv6_mode is not None and version != 6:
        raise SpecError(s.at("ipv6_mode"), "applies to IPv6 subnets only")
    dns = tuple(_ip(v, s.at("dns") + f"[{j}]") for j, v in enumerate(s.items("dns")))
    routes: list[Route] = []
    for j, r in enumerate(s.items("routes")):
        rf = _Fields(r, s.at("routes") + f"[{j}]")
        dest = _cidr(rf.raw("destination"), rf.at("destination"))
        hop = _ip(rf.raw("nexthop"), rf.at("nexthop"), ipaddress.ip_network(dest).version)
        rf.finish()
        routes.append(Route(destination=dest, nexthop=hop))
    subnet = Subnet(
        cidr=cidr,
        gateway=gateway,
        dhcp=s.boolean("dhcp", False),
        ipv6_mode=ipv6_mode,
        dns=dns,
        routes=tuple(routes),
    )
    s.finish()
    return subnet


def _ports(spec: _Fields, instance_uuid: str) -> tuple[Port, ...]:
    ports: list[Port] = []
    for i, item in enumerate(spec.items("ports")):
        p = _Fields(item, spec.at("ports") + f"[{i}]")
        port_id = p.text("id") or str(uuidlib.uuid5(uuidlib.UUID(instance_uuid), f"port-{i}"))
        subnets = [_subnet(s, p.at("subnets") + f"[{j}]") for j, s in enumerate(p.items("subnets"))]
        fixed: list[str] = []
        for j, raw in enumerate(p.items("fixed_ips")):
            where = p.at("fixed_ips") + f"[{j}]"
            if not isinstance(raw, str):
                raise SpecError(where, f"must be an IP address, not {_kind(raw)}")
            text, _, prefix = raw.partition("/")
            ip = _ip(text, where)
            addr = ipaddress.ip_address(ip)
            if not any(addr in ipaddress.ip_network(s.cidr) for s in subnets):
                if not prefix:
                    raise SpecError(
                        where,
                        f"{ip} is in none of the port's subnets; add a subnet or give the "
                        f"prefix length ({ip}/24)",
                    )
                subnets.append(Subnet(cidr=_cidr(f"{ip}/{prefix}", where)))
            fixed.append(ip)
        floating = _ip(p.raw("floating_ip"), p.at("floating_ip")) if p.has("floating_ip") else None
        p.used.add("floating_ip")
        port = Port(
            id=port_id,
            network_id=p.req("network_id"),
            mac=_mac(p.raw("mac"), p.at("mac")),
            fixed_ips=tuple(fixed),
            floating_ip=floating,
            mtu=p.integer("mtu", None, 68, 65535),
            subnets=tuple(subnets),
            devname=p.text("devname"),
            vif_type=p.choice("type", VIF_TYPES, "phy") or "phy",
        )
        p.finish()
        ports.append(port)
    return tuple(ports)


def _network_data(spec: _Fields) -> dict[str, Any] | None:
    if not spec.has("network_data"):
        spec.used.add("network_data")
        return None
    data = _json_mapping(spec, "network_data")
    for key in ("links", "networks", "services"):
        if not isinstance(data.get(key, []), list):
            raise SpecError(spec.at("network_data") + f".{key}", "must be a list")
    return data


def _metadata_options(spec: _Fields) -> MetadataOptions:
    m = _Fields(spec.mapping("metadata_options"), spec.at("metadata_options"))
    options = MetadataOptions(
        http_endpoint=m.choice("http_endpoint", ("enabled", "disabled"), "enabled") or "enabled",
        http_tokens=m.choice("http_tokens", ("optional", "required"), "optional") or "optional",
    )
    m.finish()
    return options


def _block_device_mapping(spec: _Fields) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for key, value in spec.mapping("block_device_mapping").items():
        where = spec.at("block_device_mapping") + f".{key}"
        if not isinstance(key, str) or not _EC2_BDM_KEY.match(key):
            raise SpecError(where, "keys are ephemeralN, swap or ebsN")
        if not isinstance(value, str):
            raise SpecError(where, f"must be a device name, not {_kind(value)}")
        mapping[key] = value
    return mapping


def parse_spec(
    data: object, *, base_dir: Path | None = None, user_data_limit: int = USER_DATA_LIMIT
) -> Instance:
    """Validate an instance spec and build the Instance it describes."""
    spec = _Fields(data, "")
    raw_uuid = spec.req("uuid")
    try:
        instance_uuid = str(uuidlib.UUID(raw_uuid))
    except ValueError:
        raise SpecError("uuid", f"{raw_uuid!r} is not a UUID") from None
    name = spec.text("name")
    hostname = spec.text("hostname")
    if hostname is not None:
        hostname = _hostname(hostname, "hostname")
    else:
        hostname = sanitize_hostname(name or instance_uuid)
    dedicated: list[int] = []
    for i, cpu in enumerate(spec.items("dedicated_cpus")):
        if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
            raise SpecError(f"dedicated_cpus[{i}]", "must be a CPU number")
        dedicated.append(cpu)
    instance = Instance(
        uuid=instance_uuid,
        name=name if name is not None else hostname,
        hostname=hostname,
        project_id=spec.text("project_id", "") or "",
        availability_zone=spec.text("availability_zone", "nova"),
        launch_index=spec.integer("launch_index", 0, 0, 2**31 - 1) or 0,
        flavor=spec.text("flavor", "") or "",
        image_id=spec.text("image_id", "") or "",
        keys=_keys(spec),
        meta=_meta(spec),
        user_data=_user_data(spec, base_dir, user_data_limit),
        vendor_data=_json_mapping(spec, "vendor_data"),
        security_groups=_strings(spec, "security_groups", ("default",)),
        devices=_devices(spec),
        files=_files(spec),
        ports=_ports(spec, instance_uuid),
        network_data=_network_data(spec),
        reservation_id=spec.text("reservation_id") or "r-" + instance_uuid.replace("-", "")[:8],
        kernel_id=spec.text("kernel_id"),
        ramdisk_id=spec.text("ramdisk_id"),
        root_device_name=spec.text("root_device_name"),
        block_device_mapping=_block_device_mapping(spec),
        dedicated_cpus=tuple(sorted(dedicated)),
        boot_roles=_strings(spec, "boot_roles"),
        ec2_id=spec.integer("ec2_id", None, 0, 2**32 - 1),
        metadata_options=_metadata_options(spec),
    )
    spec.finish()
    return instance


def load_spec(path: str | Path, *, user_data_limit: int = USER_DATA_LIMIT) -> Instance:
    """Read a YAML or JSON spec file; errors name the file as well as the field."""
    import yaml  # deferred: the guest imports this module for the model alone

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError("", f"{path}: cannot read: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError("", f"{path}{where}: not valid YAML or JSON: {problem}") from None
    try:
        return parse_spec(data, base_dir=path.parent, user_data_limit=user_data_limit)
    except SpecError as err:
        raise SpecError(err.field, f"{err.problem} (in {path})") from None


def instance_to_spec(instance: Instance) -> dict[str, Any]:
    """The canonical spec: every field explicit, JSON-serialisable, parse_spec round-trips it."""

    def subnet(s: Subnet) -> dict[str, Any]:
        return {
            "cidr": s.cidr,
            "gateway": s.gateway,
            "dhcp": s.dhcp,
            "ipv6_mode": s.ipv6_mode,
            "dns": list(s.dns),
            "routes": [{"destination": r.destination, "nexthop": r.nexthop} for r in s.routes],
        }

    return {
        "uuid": instance.uuid,
        "name": instance.name,
        "hostname": instance.hostname,
        "project_id": instance.project_id,
        "availability_zone": instance.availability_zone,
        "launch_index": instance.launch_index,
        "flavor": instance.flavor,
        "image_id": instance.image_id,
        "keys": [{"name": k.name, "type": k.type, "data": k.data} for k in instance.keys],
        "meta": dict(instance.meta),
        "user_data_b64": (
            base64.b64encode(instance.user_data).decode("ascii")
            if instance.user_data is not None
            else None
        ),
        "vendor_data": dict(instance.vendor_data),
        "security_groups": list(instance.security_groups),
        "devices": [dict(d) for d in instance.devices],
        "files": [
            {"path": f.path, "content_b64": base64.b64encode(f.content).decode("ascii")}
            for f in instance.files
        ],
        "ports": [
            {
                "id": p.id,
                "network_id": p.network_id,
                "mac": p.mac,
                "fixed_ips": list(p.fixed_ips),
                "floating_ip": p.floating_ip,
                "mtu": p.mtu,
                "subnets": [subnet(s) for s in p.subnets],
                "devname": p.devname,
                "type": p.vif_type,
            }
            for p in instance.ports
        ],
        "network_data": dict(instance.network_data) if instance.network_data is not None else None,
        "reservation_id": instance.reservation_id,
        "kernel_id": instance.kernel_id,
        "ramdisk_id": instance.ramdisk_id,
        "root_device_name": instance.root_device_name,
        "block_device_mapping": dict(instance.block_device_mapping),
        "dedicated_cpus": list(instance.dedicated_cpus),
        "boot_roles": list(instance.boot_roles),
        "ec2_id": instance.ec2_id,
        "metadata_options": {
            "http_endpoint": instance.metadata_options.http_endpoint,
            "http_tokens": instance.metadata_options.http_tokens,
        },
    }
