"""The metadata data path: identify, police, answer.

Order of checks for every request, and why:

1. *identify* (peer, headers) → one instance, or 400/403/404 — nothing else runs for a stranger;
2. *rate limit* for that instance (429 + Retry-After) — before any work worth limiting;
3. *endpoint* enabled for that instance, else 403 (AWS ``HttpEndpoint=disabled``);
4. the *session-token* path (``PUT /latest/api/token``), then the token check: an invalid token is
   401 always, no token is 401 when the instance requires tokens — on EC2 and OpenStack paths alike;
5. the document: a ready response from the entry (the hot path), the password endpoint, dynamic
   vendor data, or a tree lookup that fills the entry for next time.

Only the password endpoint and a first read of dynamic vendor data wait on I/O; every other
answer is built synchronously from memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from metaboot.errors import NotFoundError
from metaboot.metadata.tree import Document, normalize
from metaboot.service.cache import Entry, InstanceCache, Miss
from metaboot.service.http import Request, Response, error
from metaboot.service.identify import Identifier, Refusal
from metaboot.service.ratelimit import RateLimiter
from metaboot.service.tokens import TokenAuthority, parse_ttl
from metaboot.service.vendordata import DynamicVendorData

log = logging.getLogger("metaboot.service")

PASSWORD_MAX = 1020  # nova: 4 chunks of 255
TOKEN_PATH = "/latest/api/token"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
RESPONSE_MEMO = 256  # ready responses kept per instance; guests ask for ~30 paths
# Every answer given to an identified instance names it, so that a proxy's access log can say
# whose request it relayed (the instance knows its own id: meta_data.json carries it).
INSTANCE_HEADER = "X-Metaboot-Instance-ID"

NOT_FOUND = error(404, "not found")
TOKEN_ALLOW = (("Allow", "OPTIONS, PUT"),)
UNAUTHORIZED = "a valid X-aws-ec2-metadata-token is required"


class Passwords(Protocol):
    """The registry's password operations (atomic set-once lives in the database)."""

    def password_get(self, uuid: str) -> str: ...

    def password_set_once(self, uuid: str, password: str) -> bool: ...


def document_response(doc: Document, body: bytes, uuid: str) -> Response:
    return Response(200, body, doc.content_type, ((INSTANCE_HEADER, uuid),))


def instance_error(
    entry: Entry, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """An error for an identified instance (see INSTANCE_HEADER)."""
    return error(status, message, (*headers, (INSTANCE_HEADER, entry.uuid)))


class MetadataApp:
    def __init__(
        self,
        cache: InstanceCache,
        passwords: Passwords,
        identifier: Identifier,
        limiter: RateLimiter,
        tokens: TokenAuthority,
        vendor: DynamicVendorData,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.passwords = passwords
        self.identifier = identifier
        self.limiter = limiter
        self.tokens = tokens
        self.vendor = vendor
        self.random_bytes = random_bytes
        self.clock = clock

    # -- entry point --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | Awaitable[Response]:
        if self.cache.refreshing is not None:
            return self._after_refresh(request)
        return self._handle(request)

    async def _after_refresh(self, request: Request) -> Response:
        while self.cache.refreshing is not None:
            await asyncio.shield(self.cache.refreshing)
        return await _resolved(self._handle(request))

    def _handle(self, request: Request) -> Response | Awaitable[Response]:
        query = self.identifier.identify(request)
        if type(query) is Refusal:
            log.info(
                "refused %s %s from %s: %d %s",
                request.method,
                request.path,
                request.peer.address or "unix socket",
                query.status,
                query.message,
            )
            return error(query.status, query.message)
        assert not isinstance(query, Refusal)
        found = self.cache.resolve(query)
        if type(found) is Miss:
            return self._missed(found)
        assert isinstance(found, Entry)
        return self._serve(request, found)

    def _missed(self, miss: Miss) -> Response:
        if miss.ambiguous:
            log.warning("refusing to guess: %s", miss.reason)
        else:
            log.debug("not found: %s", miss.reason)
        return NOT_FOUND

    # -- policing -----------------------------------------------------------------------------
    def _serve(self, request: Request, entry: Entry) -> Response | Awaitable[Response]:
        if self.limiter.enabled:
            wait = self.limiter.check(entry.uuid)
            if wait:
                return instance_error(
                    entry, 429, "too many requests for this instance", (("Retry-After", str(wait)),)
                )
        options = entry.instance.metadata_options
        if options.http_endpoint != "enabled":
            return instance_error(entry, 403, "the metadata endpoint is disabled for this instance")
        path = request.path
        if "/api/token" in path:
            answer = self._token_path(request, entry)
            if answer is not None:
                return answer
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            if not self.tokens.verify(token, entry.uuid):
                return instance_error(entry, 401, UNAUTHORIZED)
        elif options.http_tokens == "required":
            return instance_error(entry, 401, UNAUTHORIZED)
        if request.method == "GET" or request.method == "HEAD":
            ready = entry.responses.get(path)
            if ready is not None:
                if type(ready) is Response:
                    return ready
                return self._seeded(ready, entry.uuid)
        return self._document(request, entry)

    def _token_path(self, request: Request, entry: Entry) -> Response | None:
        norm = normalize(request.path)
        if norm == TOKEN_PATH:
            if request.method == "PUT":
                if self.identifier.client_forwarded(request):
                    return instance_error(
                        entry, 403, "a token request must not be forwarded (X-Forwarded-For)"
                    )
                ttl = parse_ttl(request.headers.get(TTL_HEADER))
                if ttl is None:
                    return instance_error(
                        entry, 400, "X-aws-ec2-metadata-token-ttl-seconds must be 1..21600"
                    )
                token = self.tokens.issue(entry.uuid, ttl)
                return Response(
                    200,
                    token.encode("ascii"),
                    headers=((TTL_HEADER, str(ttl)), (INSTANCE_HEADER, entry.uuid)),
                )
            if request.method == "OPTIONS":
                return Response(200, b"", headers=(*TOKEN_ALLOW, (INSTANCE_HEADER, entry.uuid)))
            return instance_error(entry, 405, "session tokens are requested with PUT", TOKEN_ALLOW)
        parts = norm.split("/")
        if len(parts) == 4 and parts[2] == "api" and parts[3] == "token":
            return instance_error(entry, 403, "session tokens are issued at /latest/api/token only")
        return None

    # -- documents ----------------------------------------------------------------------------
    def _seeded(self, doc: Any, uuid: str) -> Response:
        assert isinstance(doc, Document)
        return document_response(doc, doc.render(self.random_bytes), uuid)

    def _document(self, request: Request, entry: Entry) -> Response | Awaitable[Response]:
        path = request.path
        tree = entry.tree
        if tree.is_password_path(path) is not None:
            return self._password(request, entry)
        if request.method != "GET" and request.method != "HEAD":
            return instance_error(
                entry, 405, "only GET and HEAD read metadata", (("Allow", "GET, HEAD"),)
            )
        if self.vendor.enabled and _is_vendor_data2(path):
            held = entry.vendor_tree
            if held is None or held[0] <= self.clock():
                return self._dynamic_vendor_data(request, entry)
            doc = held[1].lookup(path)
            if doc is None:
                return instance_error(entry, 404, "not found")
            return document_response(doc, doc.render(self.random_bytes), entry.uuid)
        doc = tree.lookup(path)
        if doc is None:
            return instance_error(entry, 404, "not found")
        if doc.seed_at is not None:
            if len(entry.responses) < RESPONSE_MEMO:
                entry.responses[path] = doc
            return self._seeded(doc, entry.uuid)
        response = document_response(doc, doc.body, entry.uuid)
        if len(entry.responses) < RESPONSE_MEMO:
            entry.responses[path] = response
        return response

    async def _dynamic_vendor_data(self, request: Request, entry: Entry) -> Response:
        dynamic = await self.vendor.get(entry.instance)
        tree = self.cache.build(entry.instance, dynamic)
        entry.vendor_tree = (self.clock() + self.vendor.cache_seconds, tree)
        doc = tree.lookup(request.path)
        if doc is None:
            return instance_error(entry, 404, "not found")
        return document_response(doc, doc.render(self.random_bytes), entry.uuid)

    # -- password -----------------------------------------------------------------------------
    def _password(self, request: Request, entry: Entry) -> Response | Awaitable[Response]:
        if request.method == "GET":
            return self._password_get(entry)
        if request.method != "POST":
            return instance_error(entry, 400, "GET and POST only are supported")
        length = request.headers.get("content-length", "")
        if (length.isdigit() and int(length) > PASSWORD_MAX) or len(request.body) > PASSWORD_MAX:
            return instance_error(
                entry, 400, f"request is too large (a password is at most {PASSWORD_MAX} bytes)"
            )
        try:
            password = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return instance_error(entry, 400, "the password must be UTF-8 text")
        return self._password_set(entry, password)

    async def _password_get(self, entry: Entry) -> Response:
        loop = asyncio.get_running_loop()
        try:
            value = await loop.run_in_executor(None, self.passwords.password_get, entry.uuid)
        except NotFoundError:
            return NOT_FOUND  # deleted while we answered
        return Response(200, value.encode("utf-8"), headers=((INSTANCE_HEADER, entry.uuid),))

    async def _password_set(self, entry: Entry, password: str) -> Response:
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(
                None, self.passwords.password_set_once, entry.uuid, password
            )
        except NotFoundError:
            return NOT_FOUND
        if not stored:
            return instance_error(entry, 409, "a password is already set for this instance")
        return Response(200, b"", headers=((INSTANCE_HEADER, entry.uuid),))


def _is_vendor_data2(path: str) -> bool:
    if "vendor_data2.json" not in path:
        return False
    parts = normalize(path).split("/")
    return len(parts) == 4 and parts[1] == "openstack" and parts[3] == "vendor_data2.json"


async def _resolved(result: Response | Awaitable[Response]) -> Response:
    if isinstance(result, Response):
        return result
    return await result
