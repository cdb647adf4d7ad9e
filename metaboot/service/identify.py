"""Who is asking: turn a request's peer and headers into a lookup query, or a refusal.

Three modes, as nova and neutron have them:

* **direct** — the TCP source address. ``X-Forwarded-For`` counts only from a trusted proxy; an
  untrusted client that sends it (or ``Forwarded``) is refused, because that is what an SSRF or
  an open reverse proxy on the VM looks like, and silently ignoring it would hide a
  misconfigured proxy.
* **network-scoped** — ``X-Neutron-Network-ID`` or ``X-Neutron-Router-ID`` plus
  ``X-Forwarded-For``, accepted only from trusted proxy peers (UNIX-socket peers, and TCP peers
  in ``trusted_proxies``): equal addresses in different tenant networks are different instances.
* **signed** — ``X-Instance-ID``, ``X-Tenant-ID`` and ``X-Instance-ID-Signature`` =
  HMAC-SHA256(shared secret, instance id), checked in constant time.

This module is pure: it returns what to look up; the cache resolves it to an instance.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from metaboot.service.config import Network
from metaboot.service.http import Peer, Request, normalise_address

NETWORK = "x-neutron-network-id"
ROUTER = "x-neutron-router-id"
FORWARDED_FOR = "x-forwarded-for"
FORWARDED = "forwarded"
INSTANCE = "x-instance-id"
TENANT = "x-tenant-id"
SIGNATURE = "x-instance-id-signature"
CLIENT_FORWARDED = "x-metaboot-client-forwarded"  # set by metaboot's proxy

_DISPLAY = {
    NETWORK: "X-Neutron-Network-ID",
    ROUTER: "X-Neutron-Router-ID",
    FORWARDED_FOR: "X-Forwarded-For",
    INSTANCE: "X-Instance-ID",
    TENANT: "X-Tenant-ID",
    SIGNATURE: "X-Instance-ID-Signature",
}


@dataclass(frozen=True, slots=True)
class ByAddress:
    ip: str


@dataclass(frozen=True, slots=True)
class ByNetwork:
    network_id: str
    ip: str


@dataclass(frozen=True, slots=True)
class ByRouter:
    router_id: str
    ip: str


@dataclass(frozen=True, slots=True)
class BySignature:
    instance_id: str
    tenant_id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str


Query = ByAddress | ByNetwork | ByRouter | BySignature


def sign_instance_id(secret: bytes, instance_id: str) -> str:
    """The signature neutron's metadata agent sends: hex HMAC-SHA256 of the instance id."""
    return hmac.new(secret, instance_id.encode("utf-8"), hashlib.sha256).hexdigest()


class Identifier:
    def __init__(
        self, trusted_proxies: tuple[Network, ...], direct: bool, shared_secret: bytes
    ) -> None:
        self.trusted_proxies = trusted_proxies
        self.direct = direct
        self.shared_secret = shared_secret
        self._trust: dict[str, bool] = {}

    def is_trusted_address(self, address: str) -> bool:
        known = self._trust.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                known = False
            else:
                known = any(ip in net for net in self.trusted_proxies)
            if len(self._trust) > 65536:
                self._trust.clear()
            self._trust[address] = known
        return known

    def is_trusted(self, peer: Peer) -> bool:
        return peer.address is None or self.is_trusted_address(peer.address)

    def identify(self, request: Request) -> Query | Refusal:
        headers = request.headers
        if INSTANCE in headers or TENANT in headers or SIGNATURE in headers:
            return self._signed(request)
        if NETWORK in headers or ROUTER in headers:
            return self._scoped(request)
        return self._direct(request)

    def _signed(self, request: Request) -> Query | Refusal:
        if not self.shared_secret:
            return Refusal(403, "signed identification (X-Instance-ID) is not enabled here")
        headers = request.headers
        for name in (INSTANCE, TENANT, SIGNATURE):
            if name not in headers:
                return Refusal(400, f"missing header {_DISPLAY[name]}")
            if name in request.repeated:
                return Refusal(400, f"header {_DISPLAY[name]} given more than once")
        instance_id = headers[INSTANCE].strip()
        expected = sign_instance_id(self.shared_secret, instance_id).encode("ascii")
        given = headers[SIGNATURE].strip().encode("utf-8", "replace")
        if not hmac.compare_digest(expected, given):
            return Refusal(403, "invalid proxy request signature")
        return BySignature(instance_id, headers[TENANT].strip())

    def _scoped(self, request: Request) -> Query | Refusal:
        headers = request.headers
        if not self.is_trusted(request.peer):
            return Refusal(
                403,
                "X-Neutron-Network-ID and X-Neutron-Router-ID are accepted from trusted "
                "proxies only",
            )
        if NETWORK in headers and ROUTER in headers:
            return Refusal(400, "both X-Neutron-Network-ID and X-Neutron-Router-ID given")
        name = NETWORK if NETWORK in headers else ROUTER
        if name in request.repeated:
            return Refusal(400, f"header {_DISPLAY[name]} given more than once")
        scope = headers[name].strip()
        if not scope:
            return Refusal(400, f"header {_DISPLAY[name]} is empty")
        forwarded = headers.get(FORWARDED_FOR)
        if forwarded is None:
            return Refusal(400, f"missing header X-Forwarded-For (needed with {_DISPLAY[name]})")
        # strictly the right-most entry: the one the proxy itself wrote
        ip = self._client_address(forwarded, skip_trusted=False)
        if ip is None:
            return Refusal(400, "X-Forwarded-For does not hold an IP address")
        return ByNetwork(scope, ip) if name == NETWORK else ByRouter(scope, ip)

    def _direct(self, request: Request) -> Query | Refusal:
        if not self.direct:
            return Refusal(403, "requests must come through a metadata proxy")
        peer = request.peer
        forwarded = request.headers.get(FORWARDED_FOR)
        if self.is_trusted(peer):
            if forwarded is None:
                if peer.address is None:
                    return Refusal(400, "missing header X-Forwarded-For (UNIX-socket peer)")
                return ByAddress(peer.address)
            ip = self._client_address(forwarded)
            if ip is None:
                return Refusal(400, "X-Forwarded-For does not hold an IP address")
            return ByAddress(ip)
        if forwarded is not None or FORWARDED in request.headers:
            return Refusal(
                403, "X-Forwarded-For and Forwarded are accepted from trusted proxies only"
            )
        assert peer.address is not None
        return ByAddress(peer.address)

    def _client_address(self, forwarded: str, skip_trusted: bool = True) -> str | None:
        """The right-most entry that is not itself a trusted proxy (a chain of trusted hops in
        direct mode): entries further left were written by the client and prove nothing."""
        entries = [e.strip() for e in forwarded.split(",") if e.strip()]
        if not entries:
            return None
        chosen = entries[-1]
        for entry in reversed(entries):
            chosen = entry
            if not skip_trusted or not self.is_trusted_address(normalise_address(entry)):
                break
        address = normalise_address(chosen)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        return address

    def client_forwarded(self, request: Request) -> bool:
        """Did the VM's own request carry X-Forwarded-For or Forwarded?  (IMDSv2 refuses a
        token PUT that did: it was relayed by something on or behind the VM.)"""
        headers = request.headers
        if not self.is_trusted(request.peer):
            return FORWARDED_FOR in headers or FORWARDED in headers
        if headers.get(CLIENT_FORWARDED, "").strip() == "1":
            return True
        if FORWARDED in headers:
            return True
        forwarded = headers.get(FORWARDED_FOR)
        if forwarded is None:
            return False
        entries = [normalise_address(e) for e in forwarded.split(",") if e.strip()]
        while entries and self.is_trusted_address(entries[-1]):
            entries.pop()
        return len(entries) > 1
