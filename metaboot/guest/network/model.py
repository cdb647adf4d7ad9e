"""The neutral network model every parser produces and every renderer consumes.

Parsers (OpenStack ``network_data.json``, NoCloud v1 and v2) never touch the system: they turn
one document into a :class:`Network` plus a list of problems. Binding to the machine's NICs
(:mod:`metaboot.guest.network.nics`) fills in :attr:`Interface.name`; renderers then need
nothing but the model. Addresses are :mod:`~metaboot.guest.addresses` objects (read
and printed as :mod:`ipaddress` does), so a bad netmask or address is caught once, in the
parser, and every renderer prints the same canonical text.
"""

from __future__ import annotations

from metaboot.guest import addresses
from metaboot.guest.choices import Choices
from metaboot.guest.records import dataclass, field

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Literal

    Kind = Literal["physical", "bond", "vlan"]

IPAddress = addresses.Address
IPInterface = addresses.Interface
IPNetwork = addresses.Network

_HEX = frozenset("0123456789abcdef")
IFNAMSIZ = 15  # longest interface name the kernel accepts (16 bytes with the NUL)


class IPv6Mode(Choices):
    """How an interface gets IPv6 beyond its static addresses (neutron's address modes)."""

    NONE = "none"  # static addresses only (or no IPv6): router advertisements ignored
    SLAAC = "slaac"  # address and routes from router advertisements
    STATELESS = "dhcpv6-stateless"  # SLAAC address, DNS and options from DHCPv6
    STATEFUL = "dhcpv6-stateful"  # address from DHCPv6, routes from router advertisements


@dataclass(frozen=True)
class Route:
    destination: IPNetwork
    gateway: IPAddress | None = None
    metric: int | None = None

    @property
    def is_default(self) -> bool:
        return self.destination.prefixlen == 0

    @property
    def version(self) -> int:
        return self.destination.version


@dataclass(frozen=True)
class Bond:
    mode: str
    members: tuple[str, ...]  # keys of the member interfaces
    # Kernel (sysfs) option names other than mode, e.g. ("miimon", "100"); see bonding.py.
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Vlan:
    vid: int
    link: str  # key of the parent interface


@dataclass(frozen=True)
class Interface:
    """One device to configure; ``key`` is its id in the source document."""

    key: str
    kind: Kind
    mac: str | None = None  # lower-case colon form
    name: str | None = None  # kernel name; set for physical NICs by binding
    mtu: int | None = None
    dhcp4: bool = False
    ipv6: IPv6Mode = IPv6Mode.NONE
    addresses: tuple[IPInterface, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    bond: Bond | None = None
    vlan: Vlan | None = None

    @property
    def has_l3(self) -> bool:
        return self.dhcp4 or self.ipv6 is not IPv6Mode.NONE or bool(self.addresses)

    def family_addresses(self, version: int) -> tuple[IPInterface, ...]:
        return tuple(a for a in self.addresses if a.version == version)

    def family_routes(self, version: int) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.version == version)

    @property
    def accept_ra(self) -> bool:
        return self.ipv6 is not IPv6Mode.NONE

    @property
    def ifname(self) -> str:
        if self.name is None:
            raise ValueError(f"interface {self.key!r} is not bound to a device name")
        return self.name


@dataclass(frozen=True)
class Network:
    interfaces: tuple[Interface, ...] = ()
    dns: tuple[IPAddress, ...] = ()  # global resolvers (network_data top-level services)
    search: tuple[str, ...] = ()

    def get(self, key: str) -> Interface | None:
        for iface in self.interfaces:
            if iface.key == key:
                return iface
        return None

    def by_key(self) -> dict[str, Interface]:
        return {i.key: i for i in self.interfaces}

    def bond_of(self, key: str) -> Interface | None:
        """The bond that enslaves interface ``key``, if any."""
        for iface in self.interfaces:
            if iface.bond is not None and key in iface.bond.members:
                return iface
        return None

    def vlans_on(self, key: str) -> list[Interface]:
        return [i for i in self.interfaces if i.vlan is not None and i.vlan.link == key]

    def all_dns(self) -> tuple[IPAddress, ...]:
        """Every resolver, per-interface ones first, without repeats."""
        seen: dict[IPAddress, None] = {}
        for iface in self.interfaces:
            seen.update(dict.fromkeys(iface.dns))
        seen.update(dict.fromkeys(self.dns))
        return tuple(seen)

    def all_search(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for iface in self.interfaces:
            seen.update(dict.fromkeys(iface.search))
        seen.update(dict.fromkeys(self.search))
        return tuple(seen)


@dataclass
class Problems:
    """Messages about entries that were skipped or changed; each names the entry."""

    messages: list[str] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        self.messages.append(f"{where}: {what}")


# ---- value parsing shared by the parsers --------------------------------------------------


def normalise_mac(value: object) -> str:
    """Lower-case colon form; raise ValueError naming the value when it is not a MAC."""
    if not isinstance(value, str):
        raise ValueError(f"MAC address {value!r} is not a string")
    text = value.strip().lower().replace("-", ":")
    pairs = text.split(":")
    if len(pairs) != 6 or not all(len(p) == 2 and p[0] in _HEX and p[1] in _HEX for p in pairs):
        raise ValueError(f"{value!r} is not a MAC address (want six hex pairs, e.g. fa:16:3e:..)")
    return text


def prefix_from_netmask(address: IPAddress, netmask: object) -> int:
    """A prefix length from a dotted/colon netmask, a length, or '/len'; ValueError if not one."""
    if isinstance(netmask, int) and not isinstance(netmask, bool):
        length = netmask
    elif isinstance(netmask, str) and netmask.strip().lstrip("/").isdigit():
        length = int(netmask.strip().lstrip("/"))
    elif isinstance(netmask, str):
        try:
            mask = addresses.ip_address(netmask.strip())
        except ValueError:
            raise ValueError(f"netmask {netmask!r} is not an address or a prefix length") from None
        if mask.version != address.version:
            raise ValueError(f"netmask {netmask!r} is not an IPv{address.version} netmask")
        bits = int(mask)
        width = mask.max_prefixlen
        length = bin(bits).count("1")
        if bits != ((1 << width) - 1) ^ ((1 << (width - length)) - 1):
            raise ValueError(f"netmask {netmask!r} is not a netmask (its ones are not contiguous)")
    else:
        raise ValueError(f"netmask {netmask!r} is not a netmask")
    if not 0 <= length <= address.max_prefixlen:
        raise ValueError(f"prefix length {length} is out of range for IPv{address.version}")
    return length


def parse_interface_address(address: object, netmask: object = None) -> IPInterface:
    """``10.0.0.5`` + ``255.255.255.0``, or ``10.0.0.5/24``; a bare address gets a host prefix."""
    if not isinstance(address, str):
        raise ValueError(f"address {address!r} is not a string")
    text = address.strip()
    if "/" in text:
        host, _, length = text.partition("/")
        ip = addresses.ip_address(host)
        return addresses.Interface(ip, prefix_from_netmask(ip, length))
    ip = addresses.ip_address(text)
    if netmask is None or netmask == "":
        return addresses.Interface(ip, ip.max_prefixlen)
    return addresses.Interface(ip, prefix_from_netmask(ip, netmask))


def parse_route_destination(network: object, netmask: object = None) -> IPNetwork:
    if isinstance(network, str) and network.strip() == "default":
        raise ValueError("'default' needs an address family; use 0.0.0.0/0 or ::/0")
    iface = parse_interface_address(network, netmask)
    return iface.network


def parse_ip(value: object) -> IPAddress:
    if not isinstance(value, str):
        raise ValueError(f"address {value!r} is not a string")
    return addresses.ip_address(value.strip())


def valid_ifname(name: str) -> bool:
    return 0 < len(name) <= IFNAMSIZ and "/" not in name and not any(c.isspace() for c in name)


def prune(network: Network, problems: Problems, where: str = "network") -> Network:
    """Drop what can no longer stand: bond members that are gone, bonds left without members,
    VLANs whose parent is gone. Repeats until stable (a VLAN on a dropped bond, …)."""
    current = list(network.interfaces)
    while True:
        keys = {i.key for i in current}
        changed = False
        kept: list[Interface] = []
        for iface in current:
            if iface.bond is not None:
                members = tuple(m for m in iface.bond.members if m in keys)
                for missing in (m for m in iface.bond.members if m not in keys):
                    problems.add(
                        f"{where} bond {iface.key!r}",
                        f"member {missing!r} does not exist (or was skipped); left out of the bond",
                    )
                if not members:
                    problems.add(f"{where} bond {iface.key!r}", "no usable member; bond skipped")
                    changed = True
                    continue
                if members != iface.bond.members:
                    iface = _replace_bond(iface, members)
                    changed = True
            if iface.vlan is not None and iface.vlan.link not in keys:
                problems.add(
                    f"{where} vlan {iface.key!r}",
                    f"parent {iface.vlan.link!r} does not exist (or was skipped); VLAN skipped",
                )
                changed = True
                continue
            kept.append(iface)
        current = kept
        if not changed:
            return Network(tuple(current), network.dns, network.search)


def _replace_bond(iface: Interface, members: tuple[str, ...]) -> Interface:
    from metaboot.guest.records import replace

    assert iface.bond is not None
    return replace(iface, bond=replace(iface.bond, members=members))
