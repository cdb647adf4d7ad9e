"""DISCOVER → OFFER → REQUEST → ACK on one interface, within a deadline.

A packet socket (``AF_PACKET``, ``SOCK_DGRAM``: the kernel adds the Ethernet header) sends
from an interface that has no IPv4 address yet and receives the server's reply whatever its
destination address, without depending on ``rp_filter`` or on a route: the reason dhclient,
udhcpc and systemd-networkd use one too. Needs ``CAP_NET_RAW`` (the agent runs as root).

Every wait is bounded by the caller's deadline; a VM without a DHCP server costs that much
and no more. Packets that are not our replies (other traffic, other clients' xids) are ignored.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable

from metaboot.errors import MetabootError
from metaboot.guest.dhcp import message
from metaboot.guest.dhcp.message import Reply

ETH_P_IP = 0x0800
BROADCAST_MAC = b"\xff" * 6
FIRST_RETRY = 0.5  # seconds before the first retransmission; doubles up to MAX_RETRY
MAX_RETRY = 2.0


class DhcpError(MetabootError):
    """No lease: no server answered in time, the server refused, or the socket failed."""


def exchange(
    ifname: str,
    mac: bytes,
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    xid: int | None = None,
) -> Reply:
    """Lease an address on ``ifname`` (which must be up); the server's ACK, or DhcpError."""
    xid = int.from_bytes(os.urandom(4), "big") if xid is None else xid
    started = clock()
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    except OSError as err:
        raise DhcpError(f"cannot open a packet socket: {err}") from None
    with sock:
        try:
            sock.bind((ifname, ETH_P_IP))
        except OSError as err:
            raise DhcpError(f"cannot use interface {ifname}: {err}") from None

        def send(payload: bytes) -> None:
            frame = message.udp_frame(
                payload, "0.0.0.0", "255.255.255.255", message.CLIENT_PORT, message.SERVER_PORT
            )
            try:
                sock.sendto(frame, (ifname, ETH_P_IP, 0, 0, BROADCAST_MAC))
            except OSError as err:
                raise DhcpError(f"cannot send on {ifname}: {err}") from None

        def secs() -> int:
            return int(clock() - started)

        def ask(build: Callable[[], bytes], kinds: tuple[int, ...], what: str) -> Reply:
            pause = FIRST_RETRY
            while True:
                send(build())
                wait_until = min(deadline, clock() + pause)
                reply = _receive(sock, xid, mac, kinds, wait_until, clock)
                if reply is not None:
                    return reply
                if clock() >= deadline:
                    raise DhcpError(f"no {what} on {ifname} within the time allowed")
                pause = min(pause * 2, MAX_RETRY)

        offer = ask(
            lambda: message.request_message(message.DISCOVER, xid, mac, secs=secs()),
            (message.OFFER,),
            "DHCPOFFER",
        )
        ack = ask(
            lambda: message.request_message(
                message.REQUEST,
                xid,
                mac,
                requested=offer.address,
                server_id=offer.server_id,
                secs=secs(),
            ),
            (message.ACK, message.NAK),
            "DHCPACK",
        )
    if ack.kind == message.NAK:
        raise DhcpError(f"the DHCP server {offer.server_id} refused the address {offer.address}")
    if ack.address in ("0.0.0.0", ""):
        raise DhcpError(f"the DHCP server {offer.server_id} acknowledged no address")
    return ack


def _receive(
    sock: socket.socket,
    xid: int,
    mac: bytes,
    kinds: tuple[int, ...],
    until: float,
    clock: Callable[[], float],
) -> Reply | None:
    """The first reply of ``kinds`` for our xid and MAC before ``until``, else None."""
    while True:
        left = until - clock()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        try:
            packet = sock.recv(65535)
        except OSError:
            return None
        payload = message.udp_payload(packet, message.CLIENT_PORT)
        if payload is None:
            continue
        try:
            reply = message.parse_reply(payload)
        except (message.MessageError, ValueError):
            continue
        if reply.xid == xid and reply.chaddr == mac and reply.kind in kinds:
            return reply


def release(ifname: str, mac: bytes, lease: Reply) -> None:
    """Tell the server the address is free again (best effort: a lost RELEASE only means the
    server keeps the address for the rest of the short lease). Sent while the address is
    still on the interface, from it, as RFC 2131 has it."""
    if lease.server_id is None:
        return
    payload = message.request_message(
        message.RELEASE,
        int.from_bytes(os.urandom(4), "big"),
        mac,
        requested=lease.address,
        server_id=lease.server_id,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            sock.bind((lease.address, message.CLIENT_PORT))
            sock.sendto(payload, (lease.server_id, message.SERVER_PORT))
    except OSError:
        pass
