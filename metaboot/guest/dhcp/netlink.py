"""The few rtnetlink requests an ephemeral lease needs, over a stdlib ``AF_NETLINK`` socket:
link up/down, an IPv4 address in and out, a route in and out.

Each request is acknowledged by the kernel; a refusal raises NetlinkError with the errno's
text. No ``ip`` process per change: under emulation a process start costs a tenth of a second,
and the image need not have iproute2 at all.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

from metaboot.errors import MetabootError

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 20, 21, 24, 25
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_CACHEINFO = 1, 2, 4, 6
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RTN_UNICAST = 254, 3, 1
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTNH_F_ONLINK = 4

_HEADER = struct.Struct("=IHHII")


class NetlinkError(MetabootError):
    """The kernel refused a request (or none could be sent); the message says which and why."""


def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + bytes((4 - length % 4) % 4)


def request(kind: int, flags: int, body: bytes, what: str) -> None:
    """Send one request and wait for its acknowledgement."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as sock:
            sock.settimeout(5.0)
            sock.bind((0, 0))
            all_flags = flags | NLM_F_REQUEST | NLM_F_ACK
            message = _HEADER.pack(_HEADER.size + len(body), kind, all_flags, 1, 0) + body
            sock.send(message)
            while True:
                reply = sock.recv(65536)
                offset = 0
                while offset + _HEADER.size <= len(reply):
                    length, rtype, _, seq, _ = _HEADER.unpack_from(reply, offset)
                    if rtype == NLMSG_ERROR and seq == 1:
                        (error,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
                        if error:
                            raise NetlinkError(f"{what}: {os.strerror(-error)}")
                        return
                    offset += max(length, _HEADER.size)
    except OSError as err:
        raise NetlinkError(f"{what}: {err}") from None


def ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise NetlinkError(f"no interface {ifname}") from None


def set_up(ifname: str, up: bool) -> None:
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, ifindex(ifname), IFF_UP if up else 0, IFF_UP)
    request(RTM_NEWLINK, 0, body, f"set {ifname} {'up' if up else 'down'}")


def _address_body(ifname: str, address: str, prefix: int) -> bytes:
    local = ipaddress.IPv4Address(address).packed
    head = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, ifindex(ifname))
    return head + _attr(IFA_LOCAL, local) + _attr(IFA_ADDRESS, local)


def add_address(ifname: str, address: str, prefix: int, lifetime: int) -> None:
    network = ipaddress.IPv4Network(f"{address}/{prefix}", strict=False)
    body = _address_body(ifname, address, prefix)
    if prefix < 31:
        body += _attr(IFA_BROADCAST, network.broadcast_address.packed)
    body += _attr(IFA_CACHEINFO, struct.pack("=IIII", lifetime, lifetime, 0, 0))
    flags = NLM_F_CREATE | NLM_F_EXCL
    request(RTM_NEWADDR, flags, body, f"add {address}/{prefix} to {ifname}")


def delete_address(ifname: str, address: str, prefix: int) -> None:
    body = _address_body(ifname, address, prefix)
    request(RTM_DELADDR, 0, body, f"remove {address}/{prefix} from {ifname}")


def _route_body(ifname: str, destination: str, gateway: str | None) -> bytes:
    network = ipaddress.IPv4Network(destination)
    scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
    flags = RTNH_F_ONLINK if gateway else 0
    head = struct.pack("=BBBBBBBBI", socket.AF_INET, network.prefixlen, 0, 0, RT_TABLE_MAIN,
                       RTPROT_BOOT, scope, RTN_UNICAST, flags)  # fmt: skip
    body = head + _attr(RTA_OIF, struct.pack("=I", ifindex(ifname)))
    if network.prefixlen:
        body += _attr(RTA_DST, network.network_address.packed)
    if gateway:
        body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
    return body


def add_route(ifname: str, destination: str, gateway: str | None) -> None:
    via = f" via {gateway}" if gateway else ""
    request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, _route_body(ifname, destination, gateway),
            f"add route {destination}{via} on {ifname}")  # fmt: skip


def delete_route(ifname: str, destination: str, gateway: str | None) -> None:
    request(RTM_DELROUTE, 0, _route_body(ifname, destination, gateway),
            f"remove route {destination} on {ifname}")  # fmt: skip
