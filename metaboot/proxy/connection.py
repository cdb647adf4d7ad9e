"""One client connection, from its first byte to its close — the same code for a VM's TCP
connection to the listener and for QEMU's ``guestfwd`` pipe (``--stdio``).

Every wait is bounded, so a slow or silent client holds a connection (never a worker, there are
none) for at most the request timeout: ``keepalive`` between requests, ``request`` from a
request's first byte to its last (slow-loris), ``send`` for each write to a client that does not
read. Requests are served one at a time per connection, in order; a pipelining client is read no
further than the request being served.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from metaboot.proxy.accesslog import AccessLog, AccessRecord, log_path
from metaboot.proxy.headers import Headers, Identity, response_headers, stamp_request
from metaboot.proxy.http1 import (
    CONTINUE,
    Limits,
    Request,
    RequestError,
    RequestReader,
    error_response,
    reason_phrase,
    response_head,
    serialize_request,
)
from metaboot.proxy.upstream import (
    READ_SIZE,
    ResponseStream,
    Upstream,
    UpstreamBadResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    request: float = 10.0  # first byte of a request to its last
    keepalive: float = 15.0  # idle between two requests
    send: float = 30.0  # each write to the client; each wait for more upstream body


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """Everything a connection needs; one per proxy process."""

    identity: Identity
    upstream: Upstream
    access_log: AccessLog
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_after: int = 1


@dataclass(slots=True)
class ConnectionState:
    """What a listener needs to know to shut down politely: whether the connection sits between
    requests (and can be closed at once) and whether the proxy is draining."""

    idle: bool = True
    draining: bool = False


class ClientGone(Exception):
    """The client stopped reading or closed; nothing more can be told to it."""


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    source: str,
    ctx: ProxyContext,
    state: ConnectionState | None = None,
) -> None:
    """Serve requests from one client until it closes, errs, times out or stops keep-alive."""
    connection = _ClientConnection(reader, writer, source, ctx, state or ConnectionState())
    try:
        await connection.run()
    except (ClientGone, ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()


class _ClientConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        source: str,
        ctx: ProxyContext,
        state: ConnectionState,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.source = source
        self.ctx = ctx
        self.state = state
        self._head_sent = False
        self._body_bytes = 0

    async def run(self) -> None:
        ctx = self.ctx
        loop = asyncio.get_running_loop()
        parser = RequestReader(ctx.limits)
        deadline = 0.0
        while True:
            request = parser.pop()
            if request is not None:
                if not await self._serve(request):
                    return
                if parser.in_progress:
                    deadline = loop.time() + ctx.timeouts.request
                continue
            if parser.failure is not None:
                await self._refuse(parser.failure)
                return
            if parser.finished:
                return
            idle = not parser.in_progress
            if idle and self.state.draining:
                return
            until = loop.time() + ctx.timeouts.keepalive if idle else deadline
            self.state.idle = idle
            try:
                async with asyncio.timeout_at(until):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                if not idle:
                    await self._refuse(
                        RequestError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time")
                    )
                return
            self.state.idle = False
            if not data:
                return
            if idle:
                deadline = loop.time() + ctx.timeouts.request
            parser.feed(data)
            if parser.take_continue():
                await self._send(CONTINUE)

    async def _send(self, data: bytes) -> None:
        self.writer.write(data)
        try:
            async with asyncio.timeout(self.ctx.timeouts.send):
                await self.writer.drain()
        except (TimeoutError, ConnectionError) as err:
            raise ClientGone from err

    async def _refuse(self, err: RequestError) -> None:
        self._write_log(b"", b"", err.status.value, 0.0, 0, 0, "not-sent")
        await self._send(error_response(err.status, err.detail, close=True))

    def _write_log(
        self,
        method: bytes,
        target: bytes,
        status: int,
        started: float,
        bytes_in: int,
        bytes_out: int,
        upstream: str,
    ) -> None:
        identity = self.ctx.identity
        latency = (time.perf_counter() - started) * 1000 if started else 0.0
        self.ctx.access_log.write(
            AccessRecord(
                identity_key=identity.log_key,
                identity=identity.id,
                source=self.source,
                method=method.decode("ascii", "replace"),
                path=log_path(target),
                status=status,
                latency_ms=latency,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                upstream=upstream,
            )
        )

    async def _serve(self, request: Request) -> bool:
        """Forward one request and relay the answer; whether the connection stays open."""
        ctx = self.ctx
        started = time.perf_counter()
        self._head_sent = False
        self._body_bytes = 0
        keep_alive = request.keep_alive and not request.upgrade and not self.state.draining
        upstream_request = serialize_request(
            request.method,
            request.target,
            stamp_request(request.headers, ctx.identity, self.source),
            request.body,
        )
        status, outcome = 0, "ok"
        try:
            async with ctx.upstream.exchange(request.method, upstream_request) as stream:
                status = stream.response.status
                keep_alive = await self._relay(request, stream, keep_alive)
        except UpstreamUnavailable:
            status, outcome = HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"
        except UpstreamTimeout:
            status, outcome = HTTPStatus.GATEWAY_TIMEOUT, "timeout"
        except UpstreamBadResponse:
            status, outcome = HTTPStatus.BAD_GATEWAY, "bad-response"
        except (ClientGone, ConnectionError, TimeoutError):
            self._log(request, status, started, "client-gone")
            raise
        if outcome != "ok":
            if self._head_sent:
                # The head is out already: the only honest signal left is to close.
                self._log(request, status, started, outcome)
                return False
            await self._send(
                error_response(
                    HTTPStatus(status),
                    _DETAIL[outcome],
                    close=not keep_alive,
                    retry_after=None if outcome == "bad-response" else ctx.retry_after,
                )
            )
        self._log(request, status, started, outcome)
        return keep_alive

    def _log(self, request: Request, status: int, started: float, outcome: str) -> None:
        self._write_log(
            request.method,
            request.target,
            status,
            started,
            len(request.body),
            self._body_bytes,
            outcome,
        )

    async def _relay(self, request: Request, stream: ResponseStream, keep_alive: bool) -> bool:
        """Write the upstream's response to the client; whether to keep the connection.
        The head goes out with the first body bytes, so until then the caller can still
        answer with an error of its own."""
        response = stream.response
        keep_alive = keep_alive and not self.state.draining
        headers: Headers = response_headers(response.headers)
        if response.content_length is not None and response.status not in (204, 304):
            headers.append((b"Content-Length", str(response.content_length).encode("ascii")))
            framing = "length"
        elif not stream.has_body:
            framing = "none"
        elif request.version == b"1.1":
            headers.append((b"Transfer-Encoding", b"chunked"))
            framing = "chunked"
        else:
            framing, keep_alive = "close", False
        if not keep_alive:
            headers.append((b"Connection", b"close"))
        elif request.version == b"1.0":
            headers.append((b"Connection", b"keep-alive"))
        pending = response_head(response.status, reason_phrase(response.status), headers)
        if stream.has_body:
            async for chunk in stream.body(self.ctx.timeouts.send):
                if not chunk:
                    continue
                self._body_bytes += len(chunk)
                if framing == "chunked":
                    chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
                self._head_sent = True
                await self._send(pending + chunk if pending else chunk)
                pending = b""
            if framing == "chunked":
                pending += b"0\r\n\r\n"
        if pending:
            self._head_sent = True
            await self._send(pending)
        return keep_alive


_DETAIL = {
    "unavailable": "the metadata service is unavailable",
    "timeout": "the metadata service did not answer in time",
    "bad-response": "the metadata service gave an invalid answer",
}
