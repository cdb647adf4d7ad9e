"""DHCPv4 messages (RFC 2131/2132), built and parsed as bytes: pure, no I/O.

Only what a client needs for a short lease: DISCOVER and REQUEST out; OFFER, ACK and NAK in,
with the options that matter for reaching a metadata service (mask, router, classless static
routes, lease time, server id, MTU, DNS). Also the IPv4 + UDP framing, because the client sends
from an interface that has no address yet, through a packet socket.
"""

from __future__ import annotations

import ipaddress
import struct

from metaboot.guest.records import dataclass

CLIENT_PORT = 68
SERVER_PORT = 67
MAGIC_COOKIE = b"\x63\x82\x53\x63"
BOOTREQUEST, BOOTREPLY = 1, 2
FLAG_BROADCAST = 0x8000

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE = 1, 2, 3, 4, 5, 6, 7

OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_MTU = 26
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMETERS = 55
OPT_MAX_SIZE = 57
OPT_CLIENT_ID = 61
OPT_CLASSLESS_ROUTES = 121

WANTED = bytes(
    [OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_MTU, OPT_LEASE_TIME, OPT_SERVER_ID,
     OPT_CLASSLESS_ROUTES]
)  # fmt: skip

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # the BOOTP header, 236 bytes


class MessageError(ValueError):
    """A packet that is not a well-formed DHCP reply (ignored by the client, never fatal)."""


@dataclass(frozen=True)
class Route:
    destination: str  # CIDR, "0.0.0.0/0" for the default route
    gateway: str  # "0.0.0.0": on-link


@dataclass(frozen=True)
class Reply:
    """A server's OFFER, ACK or NAK, reduced to what the lease needs."""

    kind: int
    xid: int
    chaddr: bytes
    address: str  # yiaddr
    server_id: str | None
    prefix: int | None  # from the subnet mask
    routers: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()  # classless static routes (option 121)
    lease_seconds: int | None = None
    mtu: int | None = None
    dns: tuple[str, ...] = ()


def request_message(
    kind: int,
    xid: int,
    mac: bytes,
    *,
    requested: str | None = None,
    server_id: str | None = None,
    secs: int = 0,
) -> bytes:
    """A DISCOVER or REQUEST (or RELEASE, with ``requested`` as ciaddr) from ``mac``."""
    if len(mac) != 6:
        raise ValueError(f"an Ethernet MAC has 6 bytes, not {len(mac)}")
    ciaddr = _ip(requested) if kind == RELEASE and requested else bytes(4)
    header = _FIXED.pack(
        BOOTREQUEST, 1, 6, 0, xid, min(secs, 0xFFFF), 0 if kind == RELEASE else FLAG_BROADCAST,
        ciaddr, bytes(4), bytes(4), bytes(4), mac + bytes(10), bytes(64), bytes(128),
    )  # fmt: skip
    options = [_option(OPT_MESSAGE_TYPE, bytes([kind])), _option(OPT_CLIENT_ID, b"\x01" + mac)]
    if kind != RELEASE:
        options.append(_option(OPT_PARAMETERS, WANTED))
        options.append(_option(OPT_MAX_SIZE, struct.pack("!H", 1500)))
        if requested is not None:
            options.append(_option(OPT_REQUESTED_IP, _ip(requested)))
    if server_id is not None:
        options.append(_option(OPT_SERVER_ID, _ip(server_id)))
    body = header + MAGIC_COOKIE + b"".join(options) + bytes([OPT_END])
    return body + bytes(max(0, 300 - len(body)))  # BOOTP's minimum size; some relays want it


def parse_reply(data: bytes) -> Reply:
    """A DHCP reply's fields and options; MessageError if it is not one."""
    if len(data) < _FIXED.size + 4:
        raise MessageError(f"{len(data)} bytes is too short for a DHCP message")
    op, htype, hlen, _, xid, _, _, _, yiaddr, _, _, chaddr, _, _ = _FIXED.unpack_from(data)
    if op != BOOTREPLY or htype != 1 or hlen != 6:
        raise MessageError("not a BOOTREPLY for an Ethernet client")
    if data[_FIXED.size : _FIXED.size + 4] != MAGIC_COOKIE:
        raise MessageError("no DHCP magic cookie")
    options = parse_options(data[_FIXED.size + 4 :])
    kind = options.get(OPT_MESSAGE_TYPE, b"")
    if len(kind) != 1 or kind[0] not in (OFFER, ACK, NAK):
        raise MessageError(f"message type {kind!r} is not OFFER, ACK or NAK")
    mask = options.get(OPT_SUBNET_MASK)
    prefix = None
    if mask is not None and len(mask) == 4:
        try:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{_str(mask)}").prefixlen
        except ValueError:
            prefix = None  # not a contiguous mask: the classful default applies
    lease = options.get(OPT_LEASE_TIME)
    mtu = options.get(OPT_MTU)
    return Reply(
        kind=kind[0],
        xid=xid,
        chaddr=chaddr[:6],
        address=_str(yiaddr),
        server_id=_single_address(options.get(OPT_SERVER_ID)),
        prefix=prefix,
        routers=_addresses(options.get(OPT_ROUTER, b"")),
        routes=classless_routes(options.get(OPT_CLASSLESS_ROUTES, b"")),
        lease_seconds=struct.unpack("!I", lease)[0]
        if lease is not None and len(lease) == 4
        else None,
        mtu=struct.unpack("!H", mtu)[0] if mtu is not None and len(mtu) == 2 else None,
        dns=_addresses(options.get(OPT_DNS, b"")),
    )


def parse_options(data: bytes) -> dict[int, bytes]:
    """Options as code -> value; repeated codes are concatenated (RFC 3396)."""
    options: dict[int, bytes] = {}
    index = 0
    while index < len(data):
        code = data[index]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            index += 1
            continue
        if index + 1 >= len(data):
            raise MessageError(f"option {code} is cut short")
        length = data[index + 1]
        value = data[index + 2 : index + 2 + length]
        if len(value) != length:
            raise MessageError(f"option {code} is cut short")
        options[code] = options.get(code, b"") + value
        index += 2 + length
    return options


def classless_routes(data: bytes) -> tuple[Route, ...]:
    """Option 121: (width, significant destination octets, router) triplets. A malformed
    option is dropped whole, as RFC 3442 asks."""
    routes: list[Route] = []
    index = 0
    while index < len(data):
        width = data[index]
        if width > 32:
            return ()
        octets = (width + 7) // 8
        end = index + 1 + octets + 4
        if end > len(data):
            return ()
        destination = data[index + 1 : index + 1 + octets] + bytes(4 - octets)
        gateway = data[index + 1 + octets : end]
        try:
            network = ipaddress.IPv4Network((destination, width), strict=False)
        except ValueError:
            return ()
        routes.append(Route(str(network), _str(gateway)))
        index = end
    return tuple(routes)


# ---- IPv4 + UDP framing ------------------------------------------------------------------------


def udp_frame(payload: bytes, src: str, dst: str, sport: int, dport: int) -> bytes:
    """An IPv4 packet carrying one UDP datagram (for a packet socket: no Ethernet header)."""
    source, destination = _ip(src), _ip(dst)
    udp_length = 8 + len(payload)
    pseudo = source + destination + struct.pack("!BBH", 0, 17, udp_length)
    udp = struct.pack("!HHHH", sport, dport, udp_length, 0) + payload
    checksum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0x10, 20 + udp_length, 0, 0, 64, 17, 0, source, destination
    )
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def udp_payload(packet: bytes, dport: int) -> bytes | None:
    """The payload of an IPv4 UDP packet to ``dport``; None for anything else."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    if ihl < 20 or total > len(packet) or total < ihl + 8:
        return None
    if struct.unpack("!H", packet[6:8])[0] & 0x3FFF:
        return None  # a fragment: DHCP replies fit in one packet
    sport_, dport_, length = struct.unpack("!HHH", packet[ihl : ihl + 6])
    del sport_
    if dport_ != dport or length < 8 or ihl + length > total:
        return None
    return packet[ihl + 8 : ihl + length]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _option(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


def _ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _str(packed: bytes) -> str:
    return str(ipaddress.IPv4Address(packed))


def _addresses(data: bytes) -> tuple[str, ...]:
    return tuple(_str(data[i : i + 4]) for i in range(0, len(data) - len(data) % 4, 4))


def _single_address(data: bytes | None) -> str | None:
    return _str(data) if data is not None and len(data) == 4 else None
