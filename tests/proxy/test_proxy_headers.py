"""Identity stamping: the proxy is the only author of identity headers, whatever the VM sent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metaboot.errors import ConfigError
from metaboot.proxy.headers import (
    Identity,
    is_identity_header,
    response_headers,
    source_address,
    stamp_request,
)

NET = Identity("network", "net-a")
ROUTER = Identity("router", "router-b")


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [n.lower() for n, _ in headers]


def value(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name.lower()]


FORGED = [
    b"X-Forwarded-For",
    b"x-forwarded-for",
    b"X_Forwarded_For",
    b"X-Forwarded-Host",
    b"X-Forwarded-Proto",
    b"Forwarded",
    b"X-Neutron-Network-ID",
    b"X-Neutron-Router-ID",
    b"x_neutron_network_id",
    b"X-Instance-ID",
    b"X-Instance-ID-Signature",
    b"X_Instance_ID",
    b"X-Tenant-ID",
    b"X-OVN-Network-ID",
    b"X-Metaboot-Client-Forwarded",
    b"X-Metaboot-Anything",
    b"X-Real-IP",
]


@pytest.mark.parametrize("forged", FORGED)
def test_forged_identity_headers_are_removed(forged: bytes) -> None:
    out = stamp_request([(b"Host", b"169.254.169.254"), (forged, b"evil")], NET, "10.0.0.5")
    assert b"evil" not in [v for _, v in out]
    assert value(out, b"X-Forwarded-For") == [b"10.0.0.5"]
    assert value(out, b"X-Neutron-Network-ID") == [b"net-a"]
    assert value(out, b"X-Neutron-Router-ID") == []


def test_router_proxy_sets_only_the_router_header() -> None:
    out = stamp_request([(b"X-Neutron-Network-ID", b"other")], ROUTER, "10.0.0.5")
    assert value(out, b"X-Neutron-Router-ID") == [b"router-b"]
    assert value(out, b"X-Neutron-Network-ID") == []


@pytest.mark.parametrize("mark", [b"X-Forwarded-For", b"Forwarded", b"x_forwarded_for"])
def test_client_side_proxy_is_marked(mark: bytes) -> None:
    out = stamp_request([(mark, b"1.2.3.4")], NET, "10.0.0.5")
    assert value(out, b"X-Metaboot-Client-Forwarded") == [b"1"]


def test_plain_request_is_not_marked_and_keeps_its_headers() -> None:
    sent = [
        (b"Host", b"169.254.169.254"),
        (b"User-Agent", b"Cloud-Init/22.4.2"),
        (b"X-aws-ec2-metadata-token", b"tok"),
        (b"Accept", b"*/*"),
    ]
    out = stamp_request(sent, NET, "10.0.0.5")
    assert out[:4] == sent
    assert value(out, b"X-Metaboot-Client-Forwarded") == []


def test_hop_by_hop_and_framing_headers_are_not_relayed() -> None:
    sent = [
        (b"Connection", b"keep-alive, X-Secret-Hop"),
        (b"X-Secret-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Content-Length", b"3"),
        (b"Upgrade", b"websocket"),
        (b"Expect", b"100-continue"),
        (b"Proxy-Authorization", b"Basic x"),
    ]
    out = stamp_request(sent, NET, "10.0.0.5")
    assert names(out) == [b"host", b"x-forwarded-for", b"x-neutron-network-id"]


def test_connection_cannot_smuggle_removal_of_the_stamp() -> None:
    # "Connection: X-Forwarded-For" asks a proxy to drop the header; the stamp stays.
    out = stamp_request(
        [(b"Connection", b"X-Forwarded-For, X-Neutron-Network-ID")], NET, "10.0.0.5"
    )
    assert value(out, b"X-Forwarded-For") == [b"10.0.0.5"]
    assert value(out, b"X-Neutron-Network-ID") == [b"net-a"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*FORGED, b"Host", b"Accept", b"X-Other"]).map(
                lambda n: bytes(c ^ 0x20 if 0x61 <= c <= 0x7A and c % 3 == 0 else c for c in n)
            ),
            st.binary(min_size=0, max_size=20),
        ),
        max_size=12,
    ),
    st.sampled_from([NET, ROUTER]),
)
def test_exactly_one_identity_whatever_was_sent(
    sent: list[tuple[bytes, bytes]], identity: Identity
) -> None:
    out = stamp_request(sent, identity, "192.0.2.7")
    identity_headers = [(n, v) for n, v in out if is_identity_header(n)]
    expected = [(b"X-Forwarded-For", b"192.0.2.7"), (identity.header, identity.id.encode())]
    assert identity_headers[:2] == expected
    assert identity_headers[2:] in ([], [(b"X-Metaboot-Client-Forwarded", b"1")])


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
        ("fe80::f816:3eff:fe12:3456%veth0", "fe80::f816:3eff:fe12:3456"),
        ("2001:DB8::0:1", "2001:db8::1"),
    ],
)
def test_source_address(peer: str, expected: str) -> None:
    assert source_address(peer) == expected


def test_bad_source_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        source_address("10.0.0")


@pytest.mark.parametrize("bad", ["", "has space", "tab\tid", "é"])
def test_identity_must_be_a_header_safe_token(bad: str) -> None:
    with pytest.raises(ConfigError, match="--network-id"):
        Identity("network", bad)


def test_response_hop_headers_removed() -> None:
    out, instance = response_headers(
        [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"keep-alive, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Content-Length", b"4"),
            (b"Transfer-Encoding", b"chunked"),
        ]
    )
    assert out == [(b"Content-Type", b"text/plain")]
    assert instance is None


def test_the_services_instance_note_is_taken_for_the_log_and_not_relayed() -> None:
    out, instance = response_headers(
        [
            (b"Content-Type", b"text/plain"),
            (b"X-Metaboot-Instance-ID", b"d0f2a1c2-5b1e-4a8e-9a55-2f1f4f6c9e01"),
            (b"X_Metaboot_Other", b"x"),
        ]
    )
    assert out == [(b"Content-Type", b"text/plain")]
    assert instance == "d0f2a1c2-5b1e-4a8e-9a55-2f1f4f6c9e01"
