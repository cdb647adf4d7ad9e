"""The proxy's side of the conversation with the metadata service.

A small pool of keep-alive connections (UNIX socket, TCP or TLS) shared by every VM connection,
so a boot storm of a thousand guests costs a handful of upstream sockets, not a thousand.
Failures are told apart because the guest is told different things: the service cannot be
reached (503 + ``Retry-After``: cloud-init retries it), it accepted the request but did not
answer in time (504 + ``Retry-After``), or it answered garbage (502).

A request that is not idempotent (a password POST) always gets a fresh connection: it is never
sent down an idle socket that the service may be closing at that very moment, so it is never
replayed. An idempotent one that hits such a socket is retried once on a fresh one.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from metaboot.errors import ConfigError
from metaboot.proxy.headers import Headers

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
READ_SIZE = 65536
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
    response_timeout: float = 30.0
    max_connections: int = 64
    max_idle: int = 32
    idle_ttl: float = 4.0


class UpstreamUnavailable(Exception):
    """The service could not be reached (refused, absent socket, pool exhausted, reset before
    answering)."""


class UpstreamTimeout(Exception):
    """The service took the request but did not answer within the response timeout."""


class UpstreamBadResponse(Exception):
    """The service's answer could not be parsed or was cut short."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class Response:
    """An upstream response being received: head first, body as it arrives."""

    status: int = 0
    reason: bytes = b""
    headers: Headers = field(default_factory=list)
    content_length: int | None = None
    chunked: bool = False
    head_done: bool = False
    complete: bool = False
    pending: list[bytes] = field(default_factory=list)
    head_bytes: int = 0
    informational: bool = False

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_RESPONSE_HEAD:
            raise UpstreamBadResponse("response head too large")

    def on_body(self, body: bytes) -> None:
        self.pending.append(body)

    def on_message_complete(self) -> None:
        if self.informational:
            # A stray 1xx (we never send Expect upstream): forget it and wait for the real one.
            self.informational = False
            self.status, self.reason, self.headers = 0, b"", []
            self.head_bytes = 0
            self.head_done = False
            return
        self.complete = True


class Upstream:
    """A pool of connections to one service endpoint."""

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
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(settings.max_connections)

    async def _connect(self) -> _Connection:
        """A new connection. A full listen queue on a UNIX socket fails at once with EAGAIN
        (a TCP SYN would just wait); that is retried until the connect timeout, whereas a
        refused or absent service is reported at once."""
        target = self.target
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                pause = 0.005
                while True:
                    try:
                        if target.scheme == "unix":
                            reader, writer = await asyncio.open_unix_connection(
                                target.path, limit=READ_SIZE
                            )
                        else:
                            reader, writer = await asyncio.open_connection(
                                target.host, target.port, ssl=self._tls, limit=READ_SIZE
                            )
                        return _Connection(reader, writer)
                    except BlockingIOError:
                        await asyncio.sleep(pause)
                        pause = min(pause * 2, 0.1)
        except TimeoutError as err:
            raise UpstreamUnavailable(f"connect to {target} timed out") from err
        except (OSError, ssl.SSLError) as err:
            raise UpstreamUnavailable(f"connect to {target}: {err}") from err

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self.settings.idle_ttl and not conn.reader.at_eof():
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Connection) -> None:
        if len(self._idle) >= self.settings.max_idle or conn.reader.at_eof():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    @asynccontextmanager
    async def exchange(self, method: bytes, request: bytes) -> AsyncIterator[ResponseStream]:
        """Send one serialised request and yield its response once the head has arrived."""
        try:
            # Queueing behind other VMs' requests is normal in a boot storm; only a queue that
            # does not move within the response timeout is an outage.
            async with asyncio.timeout(self.settings.response_timeout):
                await self._slots.acquire()
        except TimeoutError as err:
            raise UpstreamUnavailable("all upstream connections busy") from err
        try:
            stream = await self._send(method, request)
            try:
                yield stream
            finally:
                if stream.reusable:
                    self._give_back(stream.conn)
                else:
                    stream.conn.close()
        finally:
            self._slots.release()

    async def _send(self, method: bytes, request: bytes) -> ResponseStream:
        retry_allowed = method in IDEMPOTENT
        while True:
            conn = self._take_idle() if retry_allowed else None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            stream = ResponseStream(conn, head_only=method == b"HEAD")
            try:
                conn.writer.write(request)
                async with asyncio.timeout(self.settings.response_timeout):
                    await conn.writer.drain()
                    await stream.read_head()
                return stream
            except TimeoutError as err:
                conn.close()
                raise UpstreamTimeout(f"no answer from {self.target}") from err
            except (OSError, EOFError, ssl.SSLError) as err:
                conn.close()
                if reused:
                    retry_allowed = False  # one retry, on a fresh connection
                    continue
                raise UpstreamUnavailable(f"{self.target}: {err or type(err).__name__}") from err
            except UpstreamBadResponse:
                conn.close()
                raise


class ResponseStream:
    """The response on one upstream connection."""

    def __init__(self, conn: _Connection, *, head_only: bool) -> None:
        self.conn = conn
        self.response = Response()
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._saw_bytes = False
        self._keep_alive = False
        self.reusable = False

    # httptools callbacks, delegated to the Response being filled
    def on_status(self, reason: bytes) -> None:
        self.response.on_status(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.on_header(name, value)

    def on_headers_complete(self) -> None:
        response = self.response
        response.status = self._parser.get_status_code()
        if 100 <= response.status < 200:
            response.informational = True
            return
        response.head_done = True
        for name, value in response.headers:
            lname = name.lower()
            if lname == b"content-length":
                response.content_length = int(value)
            elif lname == b"transfer-encoding":
                response.chunked = True
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.response.on_body(body)

    def on_message_complete(self) -> None:
        self.response.on_message_complete()

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            if isinstance(err.__context__, UpstreamBadResponse):
                raise err.__context__ from None
            raise UpstreamBadResponse(str(err)) from err
        except httptools.HttpParserError as err:
            raise UpstreamBadResponse(f"unparsable response: {err}") from err

    async def read_head(self) -> None:
        while not self.response.head_done:
            data = await self.conn.reader.read(READ_SIZE)
            if not data:
                if self._saw_bytes:
                    raise UpstreamBadResponse("connection closed inside the response head")
                raise EOFError("closed before answering")
            self._saw_bytes = True
            self._feed(data)
        if self._head_only or self.response.status in (204, 304):
            # A HEAD answer has no body whatever its Content-Length says; llhttp cannot know
            # that, so this connection's framing is not trusted for reuse.
            self.response.complete = True
            self.reusable = False

    @property
    def has_body(self) -> bool:
        return not (self._head_only or self.response.status in (204, 304))

    async def body(self, timeout: float) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; each wait for more is bounded by ``timeout``."""
        response = self.response
        while True:
            if response.pending:
                chunks, response.pending = response.pending, []
                for chunk in chunks:
                    yield chunk
            if response.complete or not self.has_body:
                self.reusable = self.has_body and self._keep_alive and not response.pending
                return
            try:
                async with asyncio.timeout(timeout):
                    data = await self.conn.reader.read(READ_SIZE)
            except TimeoutError as err:
                raise UpstreamTimeout("response body stalled") from err
            if not data:
                if response.content_length is None and not response.chunked:
                    response.complete = True  # delimited by the close
                    self._keep_alive = False
                    continue
                raise UpstreamBadResponse("connection closed inside the response body")
            self._feed(data)
