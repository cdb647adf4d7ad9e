"""A small HTTP/1.1 server core on asyncio + httptools, built for the metadata data path.

Why not a framework: a metadata GET on a cache hit is "parse, look up, write pre-encoded bytes",
and everything a general framework adds per request (scope dicts, middleware stacks, header
objects) costs more than the work itself. This core does only what the data path needs and does
it correctly: keep-alive, pipelining (responses strictly in request order, even when one handler
awaits), bounded request line + headers and body, a deadline per request and per idle
connection (slow clients cannot pin a worker), HEAD, and flow control in both directions.

A handler takes a :class:`Request` and returns a :class:`Response`, or an awaitable of one when it
must wait (database, vendor-data fetch); the fast path never creates a task.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

log = logging.getLogger("metaboot.service.http")

REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def _phrase(status: int) -> str:
    """The standard reason phrase of a status outside the data path's own (the admin API's 201,
    412, 415…)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one client from holding memory or a connection slot for long."""

    max_header_bytes: int = 8192  # request line + all header lines
    max_body_bytes: int = 65536
    request_timeout: float = 10.0  # first byte of a request → its last byte
    keepalive_timeout: float = 30.0  # idle time between requests on one connection
    max_pipelined: int = 32  # parsed-but-unanswered requests before we stop reading


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of the connection: a TCP address (normalised text) or a UNIX-socket peer."""

    address: str | None  # None for a UNIX-socket peer
    port: int = 0

    @property
    def unix(self) -> bool:
        return self.address is None


class Request:
    """One parsed request. Header names are lower-case; repeated headers are joined with ", "
    and listed in ``repeated`` (identity headers must not be repeated)."""

    __slots__ = ("body", "headers", "method", "path", "peer", "query", "raw_path", "repeated")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        repeated: frozenset[str],
        body: bytes,
        peer: Peer,
        raw_path: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.raw_path = path if raw_path is None else raw_path  # still percent-encoded
        self.query = query
        self.headers = headers
        self.repeated = repeated
        self.body = body
        self.peer = peer


def encode_head(
    status: int, content_type: str | None, length: int, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """Status line and fixed headers, without Date, Connection and the blank line."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status) or _phrase(status)}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {length}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class Response:
    """A response whose head is encoded once; cached responses are reused across requests."""

    __slots__ = ("body", "head", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "text/plain; charset=UTF-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.head = encode_head(status, content_type, len(body), headers)


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A plain-text error; ``message`` must name what is wrong and never carry a secret."""
    return Response(status, message.encode("utf-8") + b"\n", headers=headers)


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class _Clock:
    """The Date header, re-encoded once a second rather than per response."""

    def __init__(self) -> None:
        self.second = -1
        self.date_line = b""
        self.tick()

    def tick(self) -> None:
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.date_line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")


class _Bad(Exception):
    """A request that must be refused before it reaches the handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    """One connection. Parsed requests go into a queue answered strictly in order."""

    __slots__ = (
        "_body",
        "_body_size",
        "_busy",
        "_closing",
        "_header_size",
        "_headers",
        "_name",
        "_paused_reading",
        "_queue",
        "_repeated",
        "_server",
        "_url",
        "_writable",
        "deadline",
        "parser",
        "peer",
        "transport",
    )

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = Peer(None)
        self._queue: deque[tuple[Request, bool, bool]] = deque()
        self._busy = False
        self._closing = False
        self._writable = True
        self._paused_reading = False
        self._reset_message()
        self.deadline = math.inf

    # -- connection events --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's does not subclass it
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = Peer(normalise_address(str(peer[0])), int(peer[1]))
        self._server.connections.add(self)
        self.deadline = self._server.loop.time() + self._server.limits.keepalive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._closing = True
        self._queue.clear()

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._drain()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            if isinstance(cause, _Bad):
                self._refuse(cause.status, str(cause))
            else:
                log.warning("request parser callback failed: %r", cause)
                self._refuse(400, "malformed request")
        except httptools.HttpParserError:
            self._refuse(400, "malformed HTTP request")

    # -- parser callbacks ---------------------------------------------------------------------
    def _reset_message(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._repeated: set[str] = set()
        self._header_size = 0
        self._body: list[bytes] = []
        self._body_size = 0

    def on_message_begin(self) -> None:
        self._reset_message()
        if self._queue or self._busy:
            return  # the deadline is re-armed when the queue drains
        self.deadline = self._server.loop.time() + self._server.limits.request_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_size += len(url)
        if self._header_size > self._server.limits.max_header_bytes:
            raise _Bad(431, "request line and headers too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        if self._header_size > self._server.limits.max_header_bytes:
            raise _Bad(431, "request line and headers too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in self._headers:
            self._repeated.add(key)
            self._headers[key] = self._headers[key] + ", " + text
        else:
            self._headers[key] = text

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self._server.limits.max_body_bytes
        ):
            raise _Bad(413, "request body too large")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._server.limits.max_body_bytes:
            raise _Bad(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        target = self._url
        query = ""
        qpos = target.find(b"?")
        if qpos >= 0:
            query = target[qpos + 1 :].decode("latin-1")
            target = target[:qpos]
        hpos = target.find(b"#")
        if hpos >= 0:
            target = target[:hpos]
        path = raw_path = target.decode("latin-1")
        if "%" in path:
            path = unquote(path, encoding="utf-8", errors="replace")
        if not path.startswith("/"):
            # absolute-form ("http://host/path") from a proxy-style client: keep the path only
            scheme = path.find("://")
            if scheme >= 0:
                slash = path.find("/", scheme + 3)
                path = path[slash:] if slash >= 0 else "/"
            else:
                path = "/" + path
        method = parser.get_method().decode("ascii", "replace")
        request = Request(
            method,
            path,
            query,
            self._headers,
            frozenset(self._repeated),
            b"".join(self._body) if self._body else b"",
            self.peer,
            raw_path,
        )
        keep_alive = parser.should_keep_alive()
        http10 = parser.get_http_version() == "1.0"
        self._header_size = self._body_size = 0  # between requests: idle, not mid-request
        self._queue.append((request, keep_alive, http10))
        if len(self._queue) >= self._server.limits.max_pipelined and self.transport:
            self.transport.pause_reading()
            self._paused_reading = True
        if not self._busy:
            self._drain()

    # -- answering ----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Answer queued requests in order until one must wait (handler or socket buffer)."""
        server = self._server
        while self._queue and not self._busy and self._writable and not self._closing:
            request, keep_alive, http10 = self._queue.popleft()
            try:
                result = server.handler(request)
            except Exception:
                log.exception("handler failed for %s %s", request.method, request.path)
                result = error(500, "internal error")
            if isinstance(result, Response):
                self._send(request, result, keep_alive, http10)
            else:
                self._busy = True
                self.deadline = math.inf
                task = server.loop.create_task(_settle(result))
                task.add_done_callback(partial(self._settled, request, keep_alive, http10))
                return
        if self._paused_reading and len(self._queue) < server.limits.max_pipelined // 2:
            self._paused_reading = False
            if self.transport and not self._closing:
                self.transport.resume_reading()
        if not self._queue and not self._busy:
            self.deadline = server.loop.time() + server.limits.keepalive_timeout

    def _settled(
        self, request: Request, keep_alive: bool, http10: bool, task: asyncio.Task[Response]
    ) -> None:
        self._busy = False
        if self._closing:
            return
        self._send(request, task.result(), keep_alive, http10)
        self._drain()

    def _send(self, request: Request, response: Response, keep_alive: bool, http10: bool) -> None:
        transport = self.transport
        if transport is None or self._closing:
            return
        server = self._server
        if keep_alive:
            connection = b"Connection: keep-alive\r\n\r\n" if http10 else b"\r\n"
        else:
            connection = b"Connection: close\r\n\r\n"
        body = b"" if request.method == "HEAD" else response.body
        transport.write(response.head + server.clock.date_line + connection + body)
        if server.access_log:
            log.debug(
                "%s %s %s %d %d",
                request.peer.address or "unix",
                request.method,
                request.path,
                response.status,
                len(body),
            )
        if not keep_alive:
            self._close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or exceeds a limit, then close: after a
        framing error nothing later on the connection can be trusted."""
        if self._busy or self._queue:
            self._queue.clear()  # in-flight answers are dropped with the connection
        if self.transport and not self._closing:
            response = error(status, message)
            self.transport.write(
                response.head
                + self._server.clock.date_line
                + b"Connection: close\r\n\r\n"
                + response.body
            )
        self._close()

    def _close(self) -> None:
        self._closing = True
        if self.transport:
            self.transport.close()

    def expire(self, now: float) -> None:
        """Called by the sweeper when the deadline passed: mid-request → 408, idle → close."""
        if self._header_size or self._body_size:
            self._refuse(408, "request not received in time")
        else:
            self._close()
        self.deadline = math.inf


async def _settle(result: Awaitable[Response]) -> Response:
    try:
        return await result
    except Exception:
        log.exception("handler failed")
        return error(500, "internal error")


class HttpServer:
    """Owns the connections of one process: deadlines, the Date clock, the listeners."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        access_log: bool | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.loop = loop or asyncio.get_running_loop()
        self.connections: set[HttpProtocol] = set()
        self.clock = _Clock()
        self.servers: list[asyncio.base_events.Server] = []
        self.access_log = log.isEnabledFor(logging.DEBUG) if access_log is None else access_log
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep()

    def _sweep(self) -> None:
        self.clock.tick()
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline < now]:
            conn.expire(now)
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve an already bound, listening socket (TCP or UNIX)."""
        if sock.family == socket.AF_UNIX:
            server = await self.loop.create_unix_server(self.protocol, sock=sock)
        else:
            server = await self.loop.create_server(self.protocol, sock=sock)
        self.servers.append(server)

    async def close(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        for server in self.servers:
            server.close()
        for conn in list(self.connections):
            conn._close()
        for server in self.servers:
            await server.wait_closed()


def normalise_address(text: str) -> str:
    """Canonical text of an IP address: IPv4-mapped IPv6 becomes IPv4, zone ids are dropped,
    IPv6 is compressed. Non-addresses come back unchanged (they will simply match nothing)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    zone = text.find("%")
    if zone >= 0:
        text = text[:zone]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)
