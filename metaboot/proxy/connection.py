"""One client connection, from its first byte to its close — the same code for a VM's TCP
connection to the listener and for QEMU's ``guestfwd`` pipe (``--stdio``).

A connection is an asyncio protocol and a small state machine; the upstream connection that
carries its current request calls back into it as the answer arrives. Nothing waits in a task on
the fast path (an idle upstream connection is at hand): a request costs a parse, a stamp, two
writes and a parse.

Every state has a deadline, checked by the :class:`Hub`'s sweep, so a slow or silent client holds
its connection for a bounded time and never blocks anyone else:

============ ======================================= =======================================
state         waiting for                              when the deadline passes
============ ======================================= =======================================
IDLE          the first byte of the next request       close (keep-alive timeout)
READING       the rest of the request (slow-loris)     408, close (request timeout)
UPSTREAM      a connection and the service's answer    503 (no connection) / 504, close
RELAYING      the next piece of the answer, or the     close (send timeout)
              client to read what was written
CLOSING       the client to take the last bytes         abort (send timeout)
============ ======================================= =======================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import cast

from metaboot.proxy.accesslog import AccessLog, AccessRecord, log_path
from metaboot.proxy.headers import (
    Identity,
    response_headers,
    source_address,
    stamp_request,
)
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
    IDEMPOTENT,
    Upstream,
    UpstreamConnection,
    UpstreamUnavailable,
)

log = logging.getLogger("metaboot.proxy")


@dataclass(frozen=True, slots=True)
class Timeouts:
    request: float = 10.0  # first byte of a request to its last
    keepalive: float = 15.0  # idle between two requests
    send: float = 30.0  # a client that does not read; an answer that stops flowing
    upstream: float = 30.0  # a connection to the service and its answer's head


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """Everything a connection needs; one per proxy process."""

    identity: Identity
    upstream: Upstream
    access_log: AccessLog
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_after: int = 1


class State(Enum):
    IDLE = "idle"
    READING = "reading"
    UPSTREAM = "upstream"
    RELAYING = "relaying"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    total: int = 4096
    per_source: int = 64


class Hub:
    """The live client connections: admission against the caps, the deadline sweep, and a
    polite shutdown."""

    def __init__(self, ctx: ProxyContext, caps: ConnectionCaps) -> None:
        self.ctx = ctx
        self.caps = caps
        self.connections: set[ClientConnection] = set()
        self.refused: set[ClientConnection] = set()  # answered 503, closing: swept, not counted
        self._per_source: dict[str, int] = {}
        self.draining = False
        self._sweeper: asyncio.Task[None] | None = None
        self.empty = asyncio.Event()

    def admit(self, conn: ClientConnection) -> bool:
        count = self._per_source.get(conn.source, 0)
        if (
            self.draining
            or len(self.connections) >= self.caps.total
            or count >= self.caps.per_source
        ):
            return False
        self._per_source[conn.source] = count + 1
        self.connections.add(conn)
        self.empty.clear()
        return True

    def remove(self, conn: ClientConnection) -> None:
        self.refused.discard(conn)
        if conn in self.connections:
            self.connections.discard(conn)
            left = self._per_source[conn.source] - 1
            if left:
                self._per_source[conn.source] = left
            else:
                del self._per_source[conn.source]
        if not self.connections:
            self.empty.set()

    def start(self) -> None:
        timeouts = self.ctx.timeouts
        shortest = min(timeouts.request, timeouts.keepalive, timeouts.send, timeouts.upstream)
        tick = max(0.02, min(0.5, shortest / 8))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(tick))

    async def _sweep(self, tick: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for conn in [*self.connections, *self.refused]:
                if conn.deadline <= now or conn.write_deadline <= now:
                    conn.expire(now)

    async def drain(self, grace: float) -> None:
        """Close idle connections now, let requests in flight finish within ``grace``."""
        self.draining = True
        for conn in list(self.connections):
            conn.drain()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.empty.wait()
        for conn in [*self.connections, *self.refused]:
            conn.abort()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()


_NEVER = float("inf")
LINGER = 2.0  # seconds a closing socket waits for the client's own close
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class ClientConnection(asyncio.Protocol):
    """A VM's connection. ``source`` is read from the socket's peer unless given (``--stdio``);
    ``out`` is the transport written to when it is not the one read from (stdin/stdout)."""

    def __init__(self, hub: Hub, source: str | None = None) -> None:
        self.hub = hub
        self.ctx = hub.ctx
        self.source = source or ""
        self.loop = asyncio.get_running_loop()
        self.inp: asyncio.Transport | None = None
        self.out: asyncio.WriteTransport | None = None
        self.split = False
        self.state = State.IDLE
        self.deadline = _NEVER
        self.write_deadline = _NEVER
        self._reader = RequestReader(self.ctx.limits)
        self._eof = False
        self._reading_paused = False
        self.closed_future: asyncio.Future[None] = self.loop.create_future()
        # the request in flight
        self._request: Request | None = None
        self._upstream: UpstreamConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._wire = b""
        self._retried = False
        self._reused = False
        self._started = 0.0
        self._keep_alive = False
        self._head: bytes | None = None
        self._head_sent = False
        self._chunked = False
        self._body_bytes = 0
        self._status = 0
        self._instance: str | None = None

    # -- transports --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inp = cast(asyncio.Transport, transport)
        if self.out is None:
            self.out = cast(asyncio.WriteTransport, transport)
        if not self.source:
            try:
                self.source = source_address(transport.get_extra_info("peername")[0])
            except Exception:
                transport.close()
                self.state = State.CLOSED
                return
        if not self.hub.admit(self):
            log.warning("connection from %s refused: connection cap reached", self.source)
            self.out.write(
                error_response(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "too many connections",
                    close=True,
                    retry_after=self.ctx.retry_after,
                )
            )
            self._close()
            return
        self._idle()

    def attach_output(self, out: asyncio.WriteTransport) -> None:
        """Write to ``out`` rather than the transport read from (stdin/stdout)."""
        self.out = out
        self.split = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.split and exc is None and self.state is not State.CLOSED:
            # stdin reached its end: that is the client's EOF, not its disappearance
            self.eof_received()
            return
        self._gone()

    def output_lost(self) -> None:
        """The write side went away (stdout closed)."""
        self._gone()

    def _gone(self) -> None:
        if self.state is State.CLOSED:
            return
        if self._request is not None and self.state in (State.UPSTREAM, State.RELAYING):
            self._log(self._status, "client-gone")
        self.state = State.CLOSED
        self._drop_upstream()
        self.hub.remove(self)
        for transport in (self.inp, self.out):
            if transport is not None and not transport.is_closing():
                transport.abort()
        if not self.closed_future.done():
            self.closed_future.set_result(None)

    def eof_received(self) -> bool:
        self._eof = True
        if self.state is State.CLOSING:
            return False  # the lingering close is over: let the transport close
        if self.state in (State.IDLE, State.READING):
            # Nothing in flight: what is parsed is answered, a partial request is dropped.
            self._advance()
        return True  # keep the socket open for the answer

    def pause_writing(self) -> None:
        self.write_deadline = self.loop.time() + self.ctx.timeouts.send
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_deadline = _NEVER
        if self._upstream is not None:
            self._upstream.resume_reading()
        if self.state is State.RELAYING:
            self.deadline = self.loop.time() + self.ctx.timeouts.send

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.inp is not None and not self._eof:
            self._reading_paused = True
            with contextlib.suppress(RuntimeError, AttributeError):
                self.inp.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.inp is not None:
            self._reading_paused = False
            with contextlib.suppress(RuntimeError, AttributeError):
                self.inp.resume_reading()

    def _write(self, data: bytes) -> None:
        if self.out is not None and not self.out.is_closing():
            self.out.write(data)

    def _close(self) -> None:
        """Close once what was written has been sent. On a socket, a lingering close: the
        write side is shut first and unread input discarded until the client closes too (or
        briefly), since closing with unread input would reset the connection and could destroy
        the answer before the client reads it."""
        if self.state in (State.CLOSING, State.CLOSED):
            return
        self.state = State.CLOSING
        self._drop_upstream()
        out = self.out
        now = self.loop.time()
        if out is None:
            return
        pending = out.get_write_buffer_size() > 0
        self.deadline = now + (
            self.ctx.timeouts.send if pending else min(LINGER, self.ctx.timeouts.send)
        )
        if self.split:
            out.close()
            if self.inp is not None:
                self.inp.close()
        elif out.can_write_eof() and not self._eof:
            out.write_eof()
            self._resume_reading()
        else:
            out.close()

    def abort(self) -> None:
        """Drop the connection now, with a reset: what the kernel still holds for a client that
        stopped reading is discarded instead of lingering in its buffers."""
        if self.state is not State.CLOSED and not self.split and self.out is not None:
            sock = self.out.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self._gone()

    # -- reading requests ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.state in (State.CLOSING, State.CLOSED):
            return
        reader = self._reader
        was_between = not reader.in_progress
        reader.feed(data)
        if reader.take_continue():
            self._write(CONTINUE)
        if was_between and reader.in_progress and self.state is State.IDLE:
            self.state = State.READING
            self.deadline = self.loop.time() + self.ctx.timeouts.request
        if self.state in (State.UPSTREAM, State.RELAYING):
            self._pause_reading()  # pipelined: parsed ones wait their turn, the rest waits
            return
        self._advance()

    def _advance(self) -> None:
        """Between requests: start the next one, refuse a bad one, or wait for more bytes."""
        reader = self._reader
        request = reader.pop()
        if request is not None:
            self._start(request)
            return
        if reader.failure is not None:
            self._refuse(reader.failure)
            return
        if reader.finished or self._eof or self.hub.draining:
            self._close()
            return
        self._resume_reading()
        if reader.in_progress:
            if self.state is not State.READING:
                self.state = State.READING
                self.deadline = self.loop.time() + self.ctx.timeouts.request
        else:
            self._idle()

    def _idle(self) -> None:
        self.state = State.IDLE
        self.deadline = self.loop.time() + self.ctx.timeouts.keepalive

    def _refuse(self, err: RequestError) -> None:
        self._request = None
        self._write_log(b"", b"", err.status.value, 0.0, 0, 0, "not-sent")
        self._write(error_response(err.status, err.detail, close=True))
        self._close()

    def drain(self) -> None:
        """Shutdown: an idle connection closes now; a busy one after its answer."""
        if self.state in (State.IDLE, State.READING):
            self._close()

    # -- forwarding ------------------------------------------------------------------------------
    def _start(self, request: Request) -> None:
        ctx = self.ctx
        self._request = request
        self._started = time.perf_counter()
        self._keep_alive = request.keep_alive and not request.upgrade
        self._head, self._head_sent, self._chunked = None, False, False
        self._body_bytes, self._status, self._retried = 0, 0, False
        self._instance = None
        self._wire = serialize_request(
            request.method,
            request.target,
            stamp_request(request.headers, ctx.identity, self.source),
            request.body,
        )
        self.state = State.UPSTREAM
        self.deadline = self.loop.time() + ctx.timeouts.upstream
        idempotent = request.method in IDEMPOTENT
        conn = ctx.upstream.take_idle() if idempotent else None
        if conn is not None:
            self._dispatch(conn, reused=True)
        else:
            self._connecting = self.loop.create_task(self._connect(fresh=not idempotent))

    async def _connect(self, *, fresh: bool) -> None:
        try:
            conn = await self.ctx.upstream.open(fresh=fresh)
        except UpstreamUnavailable as err:
            self._connecting = None
            _warn_throttled(str(err))
            self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable")
            return
        except asyncio.CancelledError:
            self._connecting = None
            return
        self._connecting = None
        if self.state is not State.UPSTREAM:
            self.ctx.upstream.release(conn, reusable=True)  # the client left meanwhile
            return
        self._dispatch(conn, reused=False)

    def _dispatch(self, conn: UpstreamConnection, *, reused: bool) -> None:
        assert self._request is not None
        self._upstream = conn
        self._reused = reused
        conn.begin(self, self._wire, head_only=self._request.method == b"HEAD")

    def _drop_upstream(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        conn, self._upstream = self._upstream, None
        if conn is not None:
            conn.sink = None
            conn.close()

    # ResponseSink: called by the upstream connection
    def upstream_head(self, conn: UpstreamConnection) -> None:
        request = self._request
        assert request is not None
        self._status = conn.status
        keep_alive = self._keep_alive and not self.hub.draining
        headers, self._instance = response_headers(conn.headers)
        if conn.content_length is not None and conn.status not in (204, 304):
            headers.append((b"Content-Length", str(conn.content_length).encode("ascii")))
        elif conn.has_body:
            if request.version == b"1.1":
                headers.append((b"Transfer-Encoding", b"chunked"))
                self._chunked = True
            else:
                keep_alive = False  # HTTP/1.0: the close delimits the body
        if not keep_alive:
            headers.append((b"Connection", b"close"))
        elif request.version == b"1.0":
            headers.append((b"Connection", b"keep-alive"))
        self._keep_alive = keep_alive
        self._head = response_head(conn.status, reason_phrase(conn.status), headers)
        self.state = State.RELAYING
        self.deadline = self.loop.time() + self.ctx.timeouts.send

    def upstream_body(self, chunk: bytes) -> None:
        if not chunk or self.state is not State.RELAYING:
            return
        self._body_bytes += len(chunk)
        if self._chunked:
            chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        if self._head is not None:
            chunk, self._head = self._head + chunk, None
            self._head_sent = True
        self._write(chunk)
        self.deadline = self.loop.time() + self.ctx.timeouts.send

    def upstream_done(self) -> None:
        self._upstream = None
        if self.state is not State.RELAYING:
            return
        tail = b"0\r\n\r\n" if self._chunked else b""
        if self._head is not None:
            tail, self._head = self._head + tail, None
            self._head_sent = True
        if tail:
            self._write(tail)
        self._log(self._status, "ok")
        self._finish_exchange()

    def upstream_lost(self, conn: UpstreamConnection, got_bytes: bool) -> None:
        self._upstream = None
        request = self._request
        if request is None or self.state not in (State.UPSTREAM, State.RELAYING):
            return
        if (
            self.state is State.UPSTREAM
            and not got_bytes
            and self._reused
            and not self._retried
            and request.method in IDEMPOTENT
        ):
            # An idle connection the service had just closed: once more, on a fresh one.
            self._retried = True
            self._connecting = self.loop.create_task(self._connect(fresh=True))
            return
        if got_bytes or self._head_sent or self.state is State.RELAYING:
            self._fail(HTTPStatus.BAD_GATEWAY, "bad-response")
        else:
            self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable")

    def upstream_bad(self, conn: UpstreamConnection, why: str) -> None:
        self._upstream = None
        _warn_throttled(f"invalid answer from {self.ctx.upstream.target}: {why}")
        self._fail(HTTPStatus.BAD_GATEWAY, "bad-response")

    def _fail(self, status: HTTPStatus, outcome: str) -> None:
        """The exchange failed: tell the client if nothing of the answer went out yet."""
        if self.state not in (State.UPSTREAM, State.RELAYING):
            return
        self._drop_upstream()
        self._status = status.value
        self._log(status.value, outcome)
        if self._head_sent:
            self._close()  # the head is out: the only honest signal left is to close
            return
        retry = None if status == HTTPStatus.BAD_GATEWAY else self.ctx.retry_after
        self._write(
            error_response(status, _DETAIL[outcome], close=not self._keep_alive, retry_after=retry)
        )
        self._finish_exchange()

    def _finish_exchange(self) -> None:
        self._request = None
        self._wire = b""
        if not self._keep_alive or self.hub.draining:
            self._close()
            return
        self._idle()
        self._advance()

    # -- deadlines ---------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        if self.write_deadline <= now:
            self.abort()  # the client stopped reading
            return
        state = self.state
        if state is State.IDLE:
            self._close()
        elif state is State.READING:
            self._refuse(RequestError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time"))
        elif state is State.UPSTREAM:
            if self._connecting is not None:
                self._fail(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable")
            else:
                self._fail(HTTPStatus.GATEWAY_TIMEOUT, "timeout")
        elif state is State.RELAYING:
            self._fail(HTTPStatus.GATEWAY_TIMEOUT, "timeout")
        elif state is State.CLOSING:
            self.abort()

    # -- logging -------------------------------------------------------------------------------
    def _log(self, status: int, outcome: str) -> None:
        request = self._request
        if request is None:
            return
        self._write_log(
            request.method,
            request.target,
            status,
            self._started,
            len(request.body),
            self._body_bytes,
            outcome,
        )

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
        access_log = self.ctx.access_log
        if not access_log.enabled:
            return
        identity = self.ctx.identity
        access_log.write(
            AccessRecord(
                identity_key=identity.log_key,
                identity=identity.id,
                instance=self._instance,
                source=self.source,
                method=method.decode("ascii", "replace"),
                path=log_path(target),
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                upstream=upstream,
            )
        )


_last_warning = [0.0, 0]  # when the last one was logged, how many were held back since


def _warn_throttled(message: str, every: float = 5.0) -> None:
    """A service outage fails every request of a boot storm: say so once every few seconds,
    with a count, rather than once per request."""
    now = time.monotonic()
    if now - _last_warning[0] < every:
        _last_warning[1] += 1
        return
    held = _last_warning[1]
    _last_warning[0], _last_warning[1] = now, 0
    log.warning("%s%s", message, f" (and {held} more like it)" if held else "")


_DETAIL = {
    "unavailable": "the metadata service is unavailable",
    "timeout": "the metadata service did not answer in time",
    "bad-response": "the metadata service gave an invalid answer",
}
