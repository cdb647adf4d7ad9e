"""The network model's addresses read, refuse and print exactly as :mod:`ipaddress` does."""

from __future__ import annotations

import ipaddress
import random

import pytest

from metaboot.guest import addresses

TEXTS = [
    "0.0.0.0",
    "255.255.255.255",
    "192.0.2.10",
    "10.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "01.2.3.4",
    "1.2.3.256",
    "1.2.3.0004",
    "1..3.4",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.٤",
    "+1.2.3.4",
    "",
    "::",
    "::1",
    "1::",
    "2001:db8::9",
    "2001:DB8:0:0:1:0:0:1",
    "2001:db8:0:0:1::1",
    "2001:0db8:0000:0000:0000:0000:0000:0001",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1::2::3",
    ":1::2",
    "1::2:",
    ":::",
    "1:2:3:4:5:6:7:8::",
    "::ffff:192.0.2.1",
    "::ffff:c000:201",
    "64:ff9b::192.0.2.33",
    "::192.0.2.300",
    "::1.2.3",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "fe80::1%eth0",
    "fe80::1%",
    "fe80::1%a%b",
    "12345::1",
    "g::1",
    "0:0:1:0:0:0:1:0",
    "0:0:1:0:0:1:0:0",
    "1:0:0:2:0:0:0:3",
    "2001:db8:1:0:0:0:0:0",
    "fe80::",
    "1.2.3.4/24",
    "1:2",
]


def stdlib(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def ours(text: str) -> str | None:
    try:
        return str(addresses.ip_address(text))
    except ValueError:
        return None


@pytest.mark.parametrize("text", TEXTS)
def test_an_address_is_read_or_refused_and_printed_as_ipaddress_does(text: str) -> None:
    assert ours(text) == stdlib(text)


def test_random_ipv6_addresses_print_as_ipaddress_prints_them() -> None:
    rng = random.Random(42)
    for _ in range(3000):
        # Zero groups are common in real addresses and are what compression is about.
        groups = [rng.choice([0, 0, 0, 1, rng.randrange(0x10000)]) for _ in range(8)]
        value = 0
        for group in groups:
            value = value << 16 | group
        expected = ipaddress.IPv6Address(value)
        text = ":".join(f"{g:x}" for g in groups)
        address = addresses.ip_address(text)
        assert (str(address), int(address)) == (str(expected), value)
        assert str(addresses.ip_address(expected.exploded)) == str(expected)


def test_a_refusal_names_the_text() -> None:
    refused = r"'1\.2\.3' does not appear to be an IPv4 or IPv6 address"
    with pytest.raises(ValueError, match=refused):
        addresses.ip_address("1.2.3")
    with pytest.raises(ValueError):
        addresses.ipv4_address("::1")
    assert str(addresses.ipv4_address("10.1.2.3")) == "10.1.2.3"


@pytest.mark.parametrize(
    ("text", "prefix"),
    [("10.1.2.3", 8), ("10.1.2.3", 32), ("10.1.2.3", 0), ("2001:db8::9", 56), ("::1", 128)],
)
def test_interfaces_and_networks_as_ipaddress_has_them(text: str, prefix: int) -> None:
    reference = ipaddress.ip_interface(f"{text}/{prefix}")
    iface = addresses.Interface(addresses.ip_address(text), prefix)
    assert (str(iface), iface.with_prefixlen) == (str(reference), reference.with_prefixlen)
    assert (iface.version, iface.max_prefixlen) == (reference.version, reference.max_prefixlen)
    assert str(iface.ip) == str(reference.ip)
    network = iface.network
    assert (str(network), network.with_prefixlen) == (str(reference.network),) * 2
    assert (network.prefixlen, network.version) == (reference.network.prefixlen, reference.version)
    assert iface == addresses.Interface(addresses.ip_address(text), prefix)
    assert hash(iface) == hash(addresses.Interface(addresses.ip_address(text), prefix))
    assert network == addresses.Interface(addresses.ip_address(str(reference.ip)), prefix).network


def test_an_address_is_in_a_network_as_ipaddress_says() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        version = rng.choice([4, 6])
        width = 32 if version == 4 else 128
        base = rng.getrandbits(width)
        prefix = rng.randrange(width + 1)
        near = base ^ (1 << rng.randrange(width))  # one bit away: inside or just outside
        net = ipaddress.ip_network((base, prefix), strict=False)
        ref = ipaddress.ip_address(near)
        mine = addresses.Interface(addresses.ip_address(str(ipaddress.ip_address(base))), prefix)
        assert (addresses.ip_address(str(ref)) in mine.network) == (ref in net)
    v4 = addresses.Interface(addresses.ip_address("10.0.0.5"), 8).network
    assert addresses.ip_address("::a00:1") not in v4  # another family is never inside
    assert "10.0.0.1" not in v4  # type: ignore[operator]  # a string is not an address


def test_prefix_lengths_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="prefix length 33 is out of range for IPv4"):
        addresses.Interface(addresses.ip_address("10.0.0.1"), 33)
    with pytest.raises(ValueError, match="prefix length -1"):
        addresses.Interface(addresses.ip_address("::1"), -1)


def test_equal_addresses_are_one_dictionary_key() -> None:
    first, again = addresses.ip_address("2001:db8::1"), addresses.ip_address("2001:DB8:0::1")
    assert first == again and len({first: 1, again: 2}) == 1
    assert addresses.ip_address("::a00:1") != addresses.ip_address("10.0.0.1")
    assert addresses.ip_address("fe80::1%eth0") != addresses.ip_address("fe80::1")
