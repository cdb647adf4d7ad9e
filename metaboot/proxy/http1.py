"""HTTP/1.1 framing on both sides of the proxy, on httptools (llhttp, node.js's parser).

Why httptools rather than a hand-written parser: llhttp is strict where request smuggling
lives — it refuses bare LF line endings, obs-folded headers, whitespace before a colon,
duplicate ``Content-Length`` and ``Content-Length`` together with ``Transfer-Encoding`` — and it
is fast. What llhttp does not bound, we do: header bytes, header count, URL length and body size
are counted here, and an over-long request is refused before it is buffered.

The proxy never relays the client's framing: a request is read whole (bodies are small and
bounded) and re-sent with its own ``Content-Length``, so upstream and proxy cannot disagree about
where one request ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

from metaboot.proxy.headers import Headers


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may weigh. Defaults fit metadata traffic with room to spare: the largest
    request a guest sends is a password POST of at most 1020 bytes."""

    max_header_bytes: int = 16384
    max_headers: int = 100
    max_url_bytes: int = 4096
    max_body_bytes: int = 65536


class RequestError(Exception):
    """The client's request cannot be served; ``status`` is what the client is told. After one
    of these the connection's framing is unknown, so it is closed."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    version: bytes  # b"1.0" or b"1.1"
    headers: Headers
    body: bytes
    keep_alive: bool
    upgrade: bool = False


@dataclass(slots=True)
class _Partial:
    url: bytearray = field(default_factory=bytearray)
    headers: Headers = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    header_bytes: int = 0


def _origin_form(url: bytes) -> bytes:
    """The request target as the service expects it: a path and query. A client that believes it
    talks to a forward proxy sends the absolute form; that is reduced to its path."""
    if url.startswith(b"/"):
        return url
    if url[:7].lower() == b"http://" or url[:8].lower() == b"https://":
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError as err:
            raise RequestError(HTTPStatus.BAD_REQUEST, "invalid request target") from err
        path = parsed.path or b"/"
        return path + (b"?" + parsed.query if parsed.query else b"")
    raise RequestError(HTTPStatus.BAD_REQUEST, "request target must be a path")


class RequestReader:
    """Turns a byte stream into complete, bounded requests (pipelined ones queue up in order)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._partial: _Partial | None = None
        self._ready: deque[Request] = deque()
        self._header_phase_bytes = 0
        self._in_headers = False
        self._continue_due = False
        self._upgraded = False
        self.failure: RequestError | None = None

    # -- feeding ---------------------------------------------------------------------------
    @property
    def in_progress(self) -> bool:
        """A request has begun arriving and is not complete yet."""
        return self._partial is not None

    @property
    def finished(self) -> bool:
        """Nothing more can be parsed on this connection (a fault, an upgrade or CONNECT)."""
        return self._upgraded or self.failure is not None

    def feed(self, data: bytes) -> None:
        """Parse ``data``. A fault does not raise: the requests complete before it are still
        served, in order, and then ``failure`` says what to answer before closing."""
        if self._upgraded or self.failure is not None:
            return
        if self._partial is None or self._in_headers:
            self._header_phase_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded = True
            if self._ready and self._ready[-1].method == b"CONNECT":
                self._ready.pop()
                self.failure = RequestError(
                    HTTPStatus.METHOD_NOT_ALLOWED, "CONNECT is not served here"
                )
            elif self._ready:
                self._ready[-1].upgrade = True
            return
        except httptools.HttpParserCallbackError as err:
            cause = err.__context__
            self.failure = (
                cause
                if isinstance(cause, RequestError)
                else RequestError(HTTPStatus.BAD_REQUEST, "malformed request")
            )
            return
        except httptools.HttpParserError as err:
            self.failure = RequestError(HTTPStatus.BAD_REQUEST, f"malformed request: {err}")
            return
        if (self._partial is None or self._in_headers) and (
            self._header_phase_bytes > self._limits.max_header_bytes
        ):
            # llhttp buffers a header until its end; a never-ending one is cut off here.
            self.failure = RequestError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large"
            )

    def pop(self) -> Request | None:
        return self._ready.popleft() if self._ready else None

    def take_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` before sending its body (once)."""
        due, self._continue_due = self._continue_due, False
        return due

    # -- httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._partial = _Partial()
        self._in_headers = True

    def on_url(self, url: bytes) -> None:
        assert self._partial is not None
        self._partial.url += url
        if len(self._partial.url) > self._limits.max_url_bytes:
            raise RequestError(HTTPStatus.REQUEST_URI_TOO_LONG, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        partial = self._partial
        assert partial is not None
        partial.headers.append((name, value))
        partial.header_bytes += len(name) + len(value) + 4
        if len(partial.headers) > self._limits.max_headers:
            raise RequestError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
        if partial.header_bytes + len(partial.url) > self._limits.max_header_bytes:
            raise RequestError(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large"
            )

    def on_headers_complete(self) -> None:
        partial = self._partial
        assert partial is not None
        self._in_headers = False
        self._header_phase_bytes = 0
        length = -1
        expects_continue = False
        for name, value in partial.headers:
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)  # llhttp has validated it
            elif lname == b"expect":
                if value.strip().lower() != b"100-continue":
                    raise RequestError(HTTPStatus.EXPECTATION_FAILED, "unsupported expectation")
                expects_continue = True
        if length > self._limits.max_body_bytes:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        self._continue_due = expects_continue and length != 0

    def on_body(self, body: bytes) -> None:
        partial = self._partial
        assert partial is not None
        partial.body += body
        if len(partial.body) > self._limits.max_body_bytes:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")

    def on_message_complete(self) -> None:
        partial = self._partial
        assert partial is not None
        parser = self._parser
        method = parser.get_method()
        target = bytes(partial.url) if method == b"CONNECT" else _origin_form(bytes(partial.url))
        self._ready.append(
            Request(
                method=method,
                target=target,
                version=parser.get_http_version().encode("ascii"),
                headers=partial.headers,
                body=bytes(partial.body),
                keep_alive=parser.should_keep_alive(),
            )
        )
        self._partial = None
        self._in_headers = False
        self._header_phase_bytes = 0
        self._continue_due = False


# -- writing ---------------------------------------------------------------------------------
def serialize_request(method: bytes, target: bytes, headers: Headers, body: bytes) -> bytes:
    """An upstream request with explicit framing; ``headers`` carry no framing headers."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    if body or method in (b"POST", b"PUT", b"PATCH"):
        lines += [b"Content-Length: ", str(len(body)).encode("ascii"), b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines) + body


def response_head(status: int, reason: bytes, headers: Headers) -> bytes:
    lines = [b"HTTP/1.1 ", str(status).encode("ascii"), b" ", reason, b"\r\n"]
    for name, value in headers:
        lines += [name, b": ", value, b"\r\n"]
    lines.append(b"\r\n")
    return b"".join(lines)


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def error_response(
    status: HTTPStatus, detail: str, *, close: bool, retry_after: int | None = None
) -> bytes:
    """A response the proxy writes itself (the upstream never saw the request)."""
    body = f"{status.value} {status.phrase}: {detail}\n".encode()
    headers: Headers = [
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode("ascii")),
        (b"Cache-Control", b"no-store"),
    ]
    if retry_after is not None:
        headers.append((b"Retry-After", str(retry_after).encode("ascii")))
    if close:
        headers.append((b"Connection", b"close"))
    return response_head(status.value, status.phrase.encode("ascii"), headers) + body


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
