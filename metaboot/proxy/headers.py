"""Who is asking: the identity the proxy stamps on every request, and the headers it removes.

The service believes the identity headers only because they arrive from a trusted proxy, so the
proxy must be the *only* author of them. Every header a VM could use to claim an identity is
dropped, whatever its spelling: names are compared case-insensitively and with ``_`` read as
``-``, because WSGI-style servers fold ``X_Instance_ID`` into the same variable as
``X-Instance-ID`` (the reason nginx ignores underscored names by default).

Pure functions over ``(name, value)`` byte pairs, in arrival order, duplicates kept.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from metaboot.errors import ConfigError

Headers = list[tuple[bytes, bytes]]

NETWORK_HEADER = b"X-Neutron-Network-ID"
ROUTER_HEADER = b"X-Neutron-Router-ID"
FORWARDED_FOR = b"X-Forwarded-For"
CLIENT_FORWARDED = b"X-Metaboot-Client-Forwarded"

# Identity a VM must never be able to assert (normalised: lower case, "_" read as "-").
_IDENTITY_PREFIXES = (b"x-neutron-", b"x-instance-id", b"x-ovn-", b"x-forwarded-", b"x-metaboot-")
_IDENTITY_NAMES = frozenset({b"x-tenant-id", b"forwarded", b"x-real-ip", b"x-client-ip"})
# Headers that describe one hop and never travel past a proxy (RFC 9110 §7.6.1), plus the
# framing headers the proxy recomputes itself.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    }
)
# A request carrying one of these passed through a forwarding proxy on the VM's side (an SSRF
# relay, a misconfigured reverse proxy): the service refuses IMDSv2 token PUTs marked so.
_CLIENT_PROXY_MARKS = frozenset({b"x-forwarded-for", b"forwarded"})


def normalise_name(name: bytes) -> bytes:
    """The spelling under which two header names are the same header to some server."""
    return name.strip().lower().replace(b"_", b"-")


def is_identity_header(name: bytes) -> bool:
    norm = normalise_name(name)
    return norm in _IDENTITY_NAMES or norm.startswith(_IDENTITY_PREFIXES)


@dataclass(frozen=True, slots=True)
class Identity:
    """The one network or router this proxy speaks for."""

    kind: Literal["network", "router"]
    id: str

    def __post_init__(self) -> None:
        if not self.id or not all(0x21 <= ord(c) <= 0x7E for c in self.id):
            raise ConfigError(
                f"--{self.kind}-id {self.id!r}: must be non-empty printable ASCII without spaces"
            )

    @property
    def header(self) -> bytes:
        return NETWORK_HEADER if self.kind == "network" else ROUTER_HEADER

    @property
    def log_key(self) -> str:
        return f"{self.kind}_id"


def source_address(host: str) -> str:
    """The VM's address as the service will look it up: IPv4-mapped IPv6 turned back into IPv4,
    and the zone (``%eth0``) of a link-local address dropped, since the service has no use for
    the proxy's interface names."""
    bare = host.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(bare)
    except ValueError as err:
        raise ConfigError(f"source address {host!r} is not an IP address") from err
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def _connection_tokens(headers: Headers) -> frozenset[bytes]:
    """Header names the client declared hop-by-hop in its ``Connection`` header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(normalise_name(t) for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def came_through_client_proxy(headers: Headers) -> bool:
    return any(normalise_name(name) in _CLIENT_PROXY_MARKS for name, _ in headers)


def stamp_request(headers: Headers, identity: Identity, source: str) -> Headers:
    """The headers to send upstream: the VM's own minus identity and hop-by-hop headers, then
    the identity of the network and the real source, and the client-proxy mark when due."""
    dropped = _connection_tokens(headers)
    kept: Headers = []
    has_host = False
    for name, value in headers:
        norm = normalise_name(name)
        if norm in _HOP_BY_HOP or norm in dropped or is_identity_header(name):
            continue
        has_host = has_host or norm == b"host"
        kept.append((name, value))
    if not has_host:
        kept.append((b"Host", b"169.254.169.254"))
    kept.append((FORWARDED_FOR, source.encode("ascii")))
    kept.append((identity.header, identity.id.encode("ascii")))
    if came_through_client_proxy(headers):
        kept.append((CLIENT_FORWARDED, b"1"))
    return kept


INSTANCE_HEADER = b"x-metaboot-instance-id"  # the service names the instance it answered


def response_headers(headers: Headers) -> tuple[Headers, str | None]:
    """The upstream's response headers minus those that describe the upstream hop and the
    service's own ``X-Metaboot-*`` notes, and the instance the service says it answered."""
    dropped = _connection_tokens(headers)
    kept: Headers = []
    instance = None
    for name, value in headers:
        norm = normalise_name(name)
        if norm == INSTANCE_HEADER:
            instance = value.decode("ascii", "replace")[:64]
        elif (
            norm not in _HOP_BY_HOP and norm not in dropped and not norm.startswith(b"x-metaboot-")
        ):
            kept.append((name, value))
    return kept, instance
