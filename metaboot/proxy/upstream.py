"""The proxy's side of the conversation with the metadata service.

A pool of keep-alive connections (UNIX socket, TCP or TLS) shared by every VM connection, so a
boot storm of a thousand guests costs a handful of upstream sockets, not a thousand. Each
upstream connection is an asyncio protocol that parses the service's answer with httptools and
hands it, piece by piece, to the client connection that owns the exchange (no task, no future
per request on the fast path).

A request that is not idempotent (a password POST) always gets a fresh connection: it is never
sent down an idle socket that the service may be closing at that very moment, so it is never
replayed. An idempotent one that hits such a socket is retried once on a fresh one (the client
side decides, from :meth:`ResponseSink.upstream_lost`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

from metaboot.errors import ConfigError
from metaboot.proxy.headers import Headers

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
MAX_RESPONSE_HEAD = 65536


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where the service listens: ``unix:PATH``, ``http://HOST[:PORT]`` or ``https://…``."""

    scheme: str  # "unix" | "http" | "https"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_upstream(text: str) -> UpstreamTarget:
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/"):
            raise ConfigError(f"--upstream {text!r}: a UNIX socket needs an absolute path")
        return UpstreamTarget("unix", path=path)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--upstream {text!r}: expected unix:/PATH, http://HOST:PORT or https://…"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"--upstream {text!r}: give only scheme, host and port")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise ConfigError(f"--upstream {text!r}: bad port") from err
    return UpstreamTarget(parts.scheme, host=parts.hostname, port=port)


def client_tls_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    """TLS towards the service: the server is always verified (system CAs or ``ca_file``);
    ``cert_file``/``key_file`` present a client certificate when the service asks for one."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"upstream TLS files: {err}") from err
    return context


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout: float = 3.0
    max_connections: int = 64
    max_idle: int = 64
    idle_ttl: float = 4.0


class UpstreamUnavailable(Exception):
    """The service could not be reached (refused, absent socket, pool exhausted)."""


class ResponseSink(Protocol):
    """What an upstream connection reports to the client connection that owns its exchange."""

    def upstream_head(self, conn: UpstreamConnection) -> None: ...
    def upstream_body(self, chunk: bytes) -> None: ...
    def upstream_done(self) -> None: ...
    def upstream_lost(self, conn: UpstreamConnection, got_bytes: bool) -> None: ...
    def upstream_bad(self, conn: UpstreamConnection, why: str) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One connection to the service, carrying one exchange at a time."""

    def __init__(self, pool: Upstream) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._head_only = False
        self._done = False
        self._extra = False
        self._informational = False
        self.got_bytes = False
        # the response being received
        self.status = 0
        self.headers: Headers = []
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive = False
        self._head_bytes = 0

    # -- transport -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.upstream_lost(self, self.got_bytes)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.close()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- one exchange ----------------------------------------------------------------------
    def begin(self, sink: ResponseSink, request: bytes, *, head_only: bool) -> None:
        self.sink = sink
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._done = self._extra = self._informational = self.got_bytes = False
        self.status, self.headers, self._head_bytes = 0, [], 0
        self.content_length, self.chunked, self.keep_alive = None, False, False
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.sink is None or self._parser is None:
            # Bytes nobody asked for: this connection's framing cannot be trusted any more.
            self.close()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            self._bad(str(err.__context__ or err))
            return
        except httptools.HttpParserError as err:
            self._bad(f"unparsable response: {err}")
            return
        if self._done:
            self._finish(reusable=self.keep_alive and not self._extra)

    def eof_received(self) -> bool | None:
        if (
            self.sink is not None
            and self.status
            and self.content_length is None
            and not self.chunked
            and self.has_body
        ):
            # A body delimited by the close (no length, not chunked): this is its end.
            self._finish(reusable=False)
        return False  # close; connection_lost reports an exchange cut short

    def _bad(self, why: str) -> None:
        sink, self.sink = self.sink, None
        self.close()
        if sink is not None:
            sink.upstream_bad(self, why)

    def _finish(self, *, reusable: bool) -> None:
        sink, self.sink = self.sink, None
        self._parser = None
        self.pool.release(self, reusable=reusable)
        if sink is not None:
            sink.upstream_done()

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._done:
            self._extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._done:
            return
        self.headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_RESPONSE_HEAD:
            raise ValueError("response head too large")

    def on_headers_complete(self) -> None:
        if self._done:
            return
        assert self._parser is not None
        status = self._parser.get_status_code()
        if status < 200:
            # A stray 1xx (Expect is never sent upstream): forget it, wait for the answer.
            self._informational = True
            self.headers, self._head_bytes = [], 0
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"content-length":
                self.content_length = int(value)
            elif lname == b"transfer-encoding":
                self.chunked = True
        if self.sink is not None:
            self.sink.upstream_head(self)
        if self._head_only:
            # A HEAD answer has no body whatever its Content-Length says; llhttp cannot know
            # that, so this connection's framing is not trusted for reuse.
            self._done, self.keep_alive = True, False

    def on_body(self, body: bytes) -> None:
        if not self._done and self.sink is not None:
            self.sink.upstream_body(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self._done = True

    @property
    def has_body(self) -> bool:
        return not (self._head_only or self.status in (204, 304))


class Upstream:
    """The pool of connections to one service endpoint."""

    def __init__(
        self,
        target: UpstreamTarget,
        settings: UpstreamSettings,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if target.scheme == "https" and tls is None:
            tls = client_tls_context(None, None, None)
        self.target = target
        self.settings = settings
        self._tls = tls if target.scheme == "https" else None
        self._idle: deque[UpstreamConnection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_idle(self) -> UpstreamConnection | None:
        """A kept-alive connection, at once, or None (the fast path of a boot storm)."""
        loop_time = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if loop_time - conn.idle_since < self.settings.idle_ttl and not conn.closed:
                return conn
            conn.close()
        return None

    async def open(self, *, fresh: bool = False) -> UpstreamConnection:
        """A connection for a request that found no idle one (or must not use one: ``fresh``),
        waiting for a free slot while ``max_connections`` are open."""
        while self._open >= self.settings.max_connections:
            if fresh and self._idle:
                self._idle.popleft().close()  # its slot frees when the close completes
            elif not fresh:
                conn = self.take_idle()
                if conn is not None:
                    return conn
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    async def _connect(self) -> UpstreamConnection:
        """A full listen queue on a UNIX socket fails at once with EAGAIN (a TCP SYN would just
        wait); that is retried until the connect timeout, whereas a refused or absent service
        is reported at once."""
        loop = asyncio.get_running_loop()
        target = self.target
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                pause = 0.005
                while True:
                    try:
                        if target.scheme == "unix":
                            _, conn = await loop.create_unix_connection(
                                lambda: UpstreamConnection(self), target.path
                            )
                        else:
                            _, conn = await loop.create_connection(
                                lambda: UpstreamConnection(self),
                                target.host,
                                target.port,
                                ssl=self._tls,
                            )
                        return conn
                    except BlockingIOError:
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 0.1)
        except TimeoutError as err:
            raise UpstreamUnavailable(f"connect to {target} timed out") from err
        except (OSError, ssl.SSLError) as err:
            raise UpstreamUnavailable(f"connect to {target}: {err}") from err

    def release(self, conn: UpstreamConnection, *, reusable: bool) -> None:
        if not reusable or conn.closed or len(self._idle) >= self.settings.max_idle:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.append(conn)
        self._wake()

    def forget(self, conn: UpstreamConnection) -> None:
        """A connection closed (by either side): its slot is free."""
        self._open -= 1
        if conn in self._idle:
            self._idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
