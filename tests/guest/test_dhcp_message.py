"""DHCP messages built and parsed by the agent's client, checked against bytes written out here
by hand from RFC 2131/2132/3442 (the exchange with a real server is in test_ephemeral_dhcp)."""

from __future__ import annotations

import struct

import pytest

from metaboot.guest.dhcp import message
from metaboot.guest.dhcp.message import MessageError, Route

MAC = bytes.fromhex("fa163e112233")


def reply_bytes(kind: int, options: bytes, *, xid: int = 0x01020304, op: int = 2) -> bytes:
    header = struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 0, 0x8000)
    header += bytes(4) + bytes([10, 77, 0, 55]) + bytes(8) + MAC + bytes(10) + bytes(192)
    return header + b"\x63\x82\x53\x63" + bytes([53, 1, kind]) + options + b"\xff"


def test_an_ack_with_its_options() -> None:
    options = (
        bytes([1, 4, 255, 255, 255, 0])  # mask
        + bytes([3, 8, 10, 77, 0, 1, 10, 77, 0, 2])  # two routers
        + bytes([51, 4]) + struct.pack("!I", 120)  # lease time
        + bytes([54, 4, 10, 77, 0, 1])  # server id
        + bytes([26, 2]) + struct.pack("!H", 1450)  # MTU
        + bytes([0, 0])  # padding
        + bytes([6, 4, 10, 77, 0, 3])  # DNS
    )  # fmt: skip
    reply = message.parse_reply(reply_bytes(message.ACK, options))
    assert reply.kind == message.ACK and reply.xid == 0x01020304 and reply.chaddr == MAC
    assert (reply.address, reply.prefix, reply.server_id) == ("10.77.0.55", 24, "10.77.0.1")
    assert reply.routers == ("10.77.0.1", "10.77.0.2")
    assert (reply.lease_seconds, reply.mtu, reply.dns) == (120, 1450, ("10.77.0.3",))


def test_classless_routes_as_rfc_3442_encodes_them() -> None:
    # 169.254.169.254/32 via 10.77.0.1; 10.0.0.0/8 via 10.77.0.1; default on-link (0.0.0.0).
    data = (
        bytes([32, 169, 254, 169, 254, 10, 77, 0, 1])
        + bytes([8, 10, 10, 77, 0, 1])
        + bytes([0, 0, 0, 0, 0])
    )
    assert message.classless_routes(data) == (
        Route("169.254.169.254/32", "10.77.0.1"),
        Route("10.0.0.0/8", "10.77.0.1"),
        Route("0.0.0.0/0", "0.0.0.0"),
    )
    # Cut short or with a width over 32: dropped whole, never half-applied.
    assert message.classless_routes(data[:-2]) == ()
    assert message.classless_routes(bytes([33, 1, 2, 3, 4, 5, 1, 2, 3, 4])) == ()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x02" * 100, "too short"),
        (reply_bytes(message.ACK, b"", op=1), "not a BOOTREPLY"),
        (reply_bytes(message.DISCOVER, b""), "is not OFFER, ACK or NAK"),
        (reply_bytes(message.ACK, bytes([3, 8, 10, 77])), "cut short"),
    ],
)
def test_what_is_not_a_reply_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        message.parse_reply(data)


def test_a_request_carries_what_the_server_needs() -> None:
    data = message.request_message(
        message.REQUEST, 0xABCDEF01, MAC, requested="10.77.0.55", server_id="10.77.0.1"
    )
    assert len(data) >= 300
    op, htype, hlen, _, xid, _, flags = struct.unpack_from("!BBBBIHH", data)
    assert (op, htype, hlen, xid, flags) == (1, 1, 6, 0xABCDEF01, 0x8000)
    assert data[28:34] == MAC
    options = message.parse_options(data[240:])
    assert options[53] == bytes([message.REQUEST])
    assert options[50] == bytes([10, 77, 0, 55]) and options[54] == bytes([10, 77, 0, 1])
    assert options[61] == b"\x01" + MAC
    assert 121 in options[55] and 3 in options[55]


def test_udp_framing_round_trips_with_valid_checksums() -> None:
    frame = message.udp_frame(b"payload!", "0.0.0.0", "255.255.255.255", 68, 67)
    header, udp = frame[:20], frame[20:]

    def fold(data: bytes) -> int:
        data += b"\0" * (len(data) % 2)
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return total

    assert fold(header) == 0xFFFF  # a valid IPv4 header checksum sums to all ones
    pseudo = header[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert fold(pseudo + udp) == 0xFFFF
    assert message.udp_payload(frame, 67) == b"payload!"
    assert message.udp_payload(frame, 68) is None  # another port
    assert message.udp_payload(frame[:25], 67) is None  # truncated
