"""IP addresses, interface addresses and networks for the network model (and host names that
are addresses), as :mod:`ipaddress` reads and prints them.

Only what the model and its renderers use: parse an address (IPv4 or IPv6, with the same
rules and the same refusals as ``ipaddress.ip_address``), pair it with a prefix length, take
the network it is in, test whether an address is in a network, and print each in the canonical
form ``ipaddress`` prints (IPv6 compressed as RFC 5952 says). ``import ipaddress`` builds some
fifty network objects and a hundred classes' worth of methods, which cost a first boot more
than rendering its whole network configuration; these classes are a few slots each.
``tests/guest/test_addresses.py`` holds them to ``ipaddress``'s answers.
"""

from __future__ import annotations

_DECIMAL = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


class Address:
    """An IPv4 or IPv6 address (with an IPv6 scope, as ``fe80::1%eth0``)."""

    __slots__ = ("_int", "scope", "version")

    def __init__(self, value: int, version: int, scope: str | None = None) -> None:
        self._int = value
        self.version = version
        self.scope = scope

    @property
    def max_prefixlen(self) -> int:
        return 32 if self.version == 4 else 128

    def __int__(self) -> int:
        return self._int

    def __str__(self) -> str:
        if self.version == 4:
            return ".".join(str(self._int >> shift & 0xFF) for shift in (24, 16, 8, 0))
        text = ":".join(_compress([f"{self._int >> shift & 0xFFFF:x}" for shift in _SHIFTS]))
        return f"{text}%{self.scope}" if self.scope else text

    def __repr__(self) -> str:
        return f"Address({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return (self._int, self.version, self.scope) == (other._int, other.version, other.scope)

    def __hash__(self) -> int:
        return hash((self._int, self.version, self.scope))


_SHIFTS = tuple(range(112, -1, -16))


def _compress(hextets: list[str]) -> list[str]:
    """The longest run (the first of equals) of two or more zero groups written as ``::``."""
    best_start, best_len, start, length = -1, 0, -1, 0
    for index, hextet in enumerate(hextets):
        if hextet == "0":
            length += 1
            if start == -1:
                start = index
            if length > best_len:
                best_start, best_len = start, length
        else:
            start, length = -1, 0
    if best_len > 1:
        end = best_start + best_len
        if end == len(hextets):
            hextets += [""]
        hextets[best_start:end] = [""]
        if best_start == 0:
            hextets = ["", *hextets]
    return hextets


class _Prefixed:
    """An address and a prefix length: what :class:`Network` and :class:`Interface` share."""

    __slots__ = ("_address", "prefixlen")

    def __init__(self, address: Address, prefixlen: int) -> None:
        self._address = address
        self.prefixlen = prefixlen

    @property
    def version(self) -> int:
        return self._address.version

    @property
    def with_prefixlen(self) -> str:
        return f"{self._address}/{self.prefixlen}"

    def __str__(self) -> str:
        return self.with_prefixlen

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.with_prefixlen!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Prefixed) or type(other) is not type(self):
            return NotImplemented  # a network never equals an interface address
        return (self._address, self.prefixlen) == (other._address, other.prefixlen)

    def __hash__(self) -> int:
        return hash((self._address, self.prefixlen))


class Network(_Prefixed):
    """An address with its host bits cleared, and a prefix length (``10.0.0.0/8``)."""

    __slots__ = ()

    def __init__(self, address: Address, prefixlen: int) -> None:
        width = address.max_prefixlen
        mask = ((1 << width) - 1) ^ ((1 << (width - prefixlen)) - 1)
        super().__init__(Address(int(address) & mask, address.version), prefixlen)

    @property
    def network_address(self) -> Address:
        return self._address

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, Address) or address.version != self.version:
            return False
        return Network(address, self.prefixlen).network_address == self._address


class Interface(_Prefixed):
    """An address on a link with its prefix length (``10.0.0.5/24``)."""

    __slots__ = ()

    def __init__(self, ip: Address, prefixlen: int) -> None:
        if not 0 <= prefixlen <= ip.max_prefixlen:
            raise ValueError(f"prefix length {prefixlen} is out of range for IPv{ip.version}")
        super().__init__(ip, prefixlen)

    @property
    def ip(self) -> Address:
        return self._address

    @property
    def max_prefixlen(self) -> int:
        return self._address.max_prefixlen

    @property
    def network(self) -> Network:
        return Network(self._address, self.prefixlen)


def ip_address(text: str) -> Address:
    """The IPv4 or IPv6 address ``text``; ValueError, as ``ipaddress.ip_address`` raises it,
    when it is neither."""
    try:
        return Address(_ipv4(text), 4)
    except ValueError:
        pass
    try:
        value, scope = _ipv6(text)
    except ValueError:
        raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address") from None
    return Address(value, 6, scope)


def ipv4_address(text: str) -> Address:
    """The IPv4 address ``text``; ValueError when it is not one."""
    return Address(_ipv4(text), 4)


def _ipv4(text: str) -> int:
    octets = text.split(".")
    if len(octets) != 4:
        raise ValueError(f"expected 4 octets in {text!r}")
    value = 0
    for octet in octets:
        if not octet or len(octet) > 3 or not _DECIMAL.issuperset(octet):
            raise ValueError(f"invalid octet {octet!r} in {text!r}")
        if octet != "0" and octet[0] == "0":
            raise ValueError(f"leading zeros are not permitted in {octet!r} of {text!r}")
        number = int(octet)
        if number > 255:
            raise ValueError(f"octet {number} (> 255) in {text!r}")
        value = value << 8 | number
    return value


def _ipv6(text: str) -> tuple[int, str | None]:
    address, sep, scope = text.partition("%")
    if sep and (not scope or "%" in scope):
        raise ValueError(f"invalid scope in {text!r}")
    parts = address.split(":")
    if len(parts) < 3:
        raise ValueError(f"at least 3 parts expected in {text!r}")
    if "." in parts[-1]:
        low = _ipv4(parts.pop())
        parts += [f"{low >> 16:x}", f"{low & 0xFFFF:x}"]
    if len(parts) > 9:
        raise ValueError(f"at most 8 colons permitted in {text!r}")
    skip = [i for i in range(1, len(parts) - 1) if not parts[i]]
    if len(skip) > 1:
        raise ValueError(f"at most one '::' permitted in {text!r}")
    if skip:
        high, low_count = skip[0], len(parts) - skip[0] - 1
        if not parts[0]:
            high -= 1
            if high:
                raise ValueError(f"leading ':' only permitted as part of '::' in {text!r}")
        if not parts[-1]:
            low_count -= 1
            if low_count:
                raise ValueError(f"trailing ':' only permitted as part of '::' in {text!r}")
        skipped = 8 - (high + low_count)
        if skipped < 1:
            raise ValueError(f"expected at most 7 other parts with '::' in {text!r}")
    else:
        if len(parts) != 8:
            raise ValueError(f"exactly 8 parts expected without '::' in {text!r}")
        if not parts[0] or not parts[-1]:
            raise ValueError(f"leading or trailing ':' only permitted as part of '::' in {text!r}")
        high, low_count, skipped = len(parts), 0, 0
    value = 0
    for hextet in parts[:high]:
        value = value << 16 | _hextet(hextet, text)
    value <<= 16 * skipped
    for hextet in parts[len(parts) - low_count :] if low_count else ():
        value = value << 16 | _hextet(hextet, text)
    return value, scope or None


def _hextet(hextet: str, text: str) -> int:
    if not hextet or len(hextet) > 4 or not _HEX.issuperset(hextet):
        raise ValueError(f"invalid group {hextet!r} in {text!r}")
    return int(hextet, 16)
