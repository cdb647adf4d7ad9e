"""A small HTTP/1.1 client for the metadata service, with retries inside a deadline.

Why not ``http.client``/``urllib``: importing them pulls in ``email`` and ``ssl`` — about a
third of the agent's whole start-up budget — for talking plain HTTP to a link-local address.
This module speaks just what a metadata service needs (GET/PUT/POST, Content-Length, chunked,
close-delimited bodies) and hands ``https://`` URLs (only ever an ``#include`` in user-data) to
``http.client``, imported then and only then.

GETs keep their connection open for the next GET to the same host (HTTP/1.1 keep-alive): a
source reads half a dozen documents, and each new connection costs a handshake — and, behind a
per-connection metadata proxy such as a QEMU ``guestfwd`` command, a process start on the host.
A kept connection the server has closed meanwhile is replaced by a new one, once, before
anything of the request was answered; PUT and POST always use a connection of their own.
:func:`close_idle` closes what is kept (a source does it when it is done, and the ephemeral
lease before its address goes away).
"""

from __future__ import annotations

import _socket
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence

from metaboot.errors import SourceError
from metaboot.guest.records import dataclass, field

MAX_BODY = 16 * 1024 * 1024
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "metaboot-agent"


class TransportError(SourceError):
    """The service could not be reached, or answered something that is not HTTP."""


@dataclass
class Response:
    url: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    version: bytes = b"HTTP/1.1"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# What urllib.parse.urlsplit drops before it splits: leading C0 controls and spaces, and tabs
# and line breaks anywhere (WHATWG's URL rules, which CPython follows).
_LEADING_JUNK = "".join(map(chr, range(33)))


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path+query); an IPv6 zone may be written ``%eth0`` or ``%25eth0``.

    The split ``urllib.parse.urlsplit`` makes of an ``http(s)://`` URL, without importing
    ``urllib.parse``, which with the ``ipaddress`` it loads and the named tuples it builds is
    a larger import than this whole client (tests/guest/test_http.py holds the two to the
    same answers)."""
    text = url.lstrip(_LEADING_JUNK).replace("\t", "").replace("\r", "").replace("\n", "")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("http", "https"):
        raise TransportError(f"{url}: only http:// and https:// URLs are supported")
    ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    netloc, tail = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    netloc = netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        host = _unquote(host)
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise TransportError(f"{url}: no host")
    try:
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    except ValueError:
        raise TransportError(f"{url}: bad port {port_text!r}") from None
    path = path or "/"
    if query:
        path += "?" + query
    return scheme, host, port, path


def _unquote(text: str) -> str:
    """``urllib.parse.unquote``: runs of ``%XX`` decoded as UTF-8, bad bytes replaced."""
    if "%" not in text:
        return text
    return re.sub(
        "(?:%[0-9A-Fa-f]{2})+",
        lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8", "replace"),
        text,
    )


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    max_body: int = MAX_BODY,
) -> Response:
    """One request, no retries. Raises TransportError for anything below HTTP."""
    scheme, host, port, path = split_url(url)
    if scheme == "https":
        return _https(method, url, host, port, path, headers, body, timeout, max_body)
    reuse = method in ("GET", "HEAD")
    payload = _message(method, url, host, port, path, headers, body)
    key = (host, port)
    kept = _idle.pop(key, None) if reuse else None
    if kept is not None:
        try:
            kept.sock.settimeout(timeout)
            kept.sock.sendall(payload)
            response = _read_response(kept.stream, url, method, max_body)
        except TimeoutError:
            kept.close()  # a slow server, not a stale connection: asking again would double it
            raise TransportError(f"{url}: timed out") from None
        except (OSError, ValueError, TransportError):
            kept.close()  # closed by the server while idle: a new connection below
        else:
            _keep_or_close(key, kept, response, reuse)
            return response
    try:
        sock = _connect(host, port, timeout)
    except (OSError, ValueError) as err:
        raise TransportError(f"{url}: {_reason(err)}") from None
    conn = _Connection(sock)
    try:
        sock.sendall(payload)
        response = _read_response(conn.stream, url, method, max_body)
    except TransportError:
        conn.close()
        raise
    except (OSError, ValueError) as err:
        conn.close()
        raise TransportError(f"{url}: {_reason(err)}") from None
    _keep_or_close(key, conn, response, reuse)
    return response


def _message(
    method: str,
    url: str,
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {_host_header(host, port)}"]
    lines += [f"User-Agent: {USER_AGENT}", "Accept: */*"]
    if method not in ("GET", "HEAD"):
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        if "\r" in name + value or "\n" in name + value:
            raise TransportError(f"{url}: header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    if body is not None or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body or b'')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def get_pipelined(
    urls: Sequence[str], *, timeout: float = 5.0, max_body: int = MAX_BODY
) -> dict[str, Response]:
    """GET every URL (all of one ``http://`` host) on one connection, every request written
    before the first answer is read: HTTP/1.1 pipelining, which servers must support (nova's,
    neutron's proxy and ``metaboot serve`` answer in order). A source's five documents then
    cost one round trip instead of five, which behind a per-connection metadata proxy under
    emulation is tens of milliseconds each.

    Returns the answers that came before anything went wrong (an answer that ends the
    connection, a timeout, something that is not HTTP), keyed by URL; the caller asks again,
    one request at a time and with its retries, for the others. Never raises for the network.
    """
    if len(urls) < 2:
        return {}
    split = [split_url(url) for url in urls]
    scheme, host, port, _ = split[0]
    if scheme != "http" or any(s[:3] != (scheme, host, port) for s in split):
        return {}
    payload = b"".join(
        _message("GET", url, host, port, path, None, None)
        for url, (_, _, _, path) in zip(urls, split, strict=True)
    )
    key = (host, port)
    conn = _idle.pop(key, None)
    if conn is None:
        try:
            conn = _Connection(_connect(host, port, timeout))
        except (OSError, ValueError):
            return {}
    answers: dict[str, Response] = {}
    try:
        conn.sock.settimeout(timeout)
        conn.sock.sendall(payload)
        for url in urls:
            response = _read_response(conn.stream, url, "GET", max_body)
            answers[url] = response
            if not _reusable(response):
                break  # the server ends the connection here: the rest go unanswered
    except (OSError, ValueError, TransportError):
        conn.close()
        return answers
    if len(answers) == len(urls) and _reusable(answers[urls[-1]]):
        _idle[key] = conn
    else:
        conn.close()
    return answers


def _connect(host: str, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection`` without ``socket.py``, whose enums and ``selectors`` cost
    more to import than this whole client: each address of ``host`` in turn, until one
    connects; the last error if none does."""
    # An ASCII host goes to getaddrinfo as bytes: given a str, CPython first loads the IDNA
    # codec (with stringprep and unicodedata), ~1 ms of every boot.
    target = host.encode("ascii") if host.isascii() else host
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(
        target, port, 0, _socket.SOCK_STREAM
    ):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as err:
            sock.close()
            error = err
            continue
        return sock
    raise error or OSError(f"no address for {host!r}")


class _SocketReader(io.RawIOBase):
    """The raw stream under a connection's buffered reader (what ``socket.makefile("rb")``
    builds on, from ``socket.py``)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


class _Connection:
    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.stream = io.BufferedReader(_SocketReader(sock))

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


_idle: dict[tuple[str, int], _Connection] = {}


def _keep_or_close(
    key: tuple[str, int], conn: _Connection, response: Response, reuse: bool
) -> None:
    """Keep the connection for the next GET if the answer left it usable: a framed body
    (length or chunked) and no ``Connection: close``."""
    if reuse and _reusable(response):
        old = _idle.pop(key, None)
        if old is not None:
            old.close()
        _idle[key] = conn
    else:
        conn.close()


def _reusable(response: Response) -> bool:
    """The connection can carry another request after this answer: a framed body (length or
    chunked), HTTP/1.1, and no ``Connection: close``."""
    framed = (
        "content-length" in response.headers
        or "chunked" in response.headers.get("transfer-encoding", "").lower()
    )
    closing = "close" in response.headers.get("connection", "").lower()
    return response.version == b"HTTP/1.1" and framed and not closing


def close_idle() -> None:
    """Close every kept connection."""
    while _idle:
        _idle.popitem()[1].close()


def _host_header(host: str, port: int) -> str:
    shown = f"[{host.split('%', 1)[0]}]" if ":" in host else host
    return shown if port == 80 else f"{shown}:{port}"


def _reason(err: BaseException) -> str:
    if isinstance(err, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__


def _read_response(stream: object, url: str, method: str, max_body: int) -> Response:
    readline: Callable[[int], bytes] = stream.readline  # type: ignore[attr-defined]
    read: Callable[[int], bytes] = stream.read  # type: ignore[attr-defined]
    status_line = readline(65537)
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise TransportError(f"{url}: not an HTTP response: {status_line[:60]!r}")
    status = int(fields[1])
    headers: dict[str, str] = {}
    for _ in range(200):
        line = readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise TransportError(f"{url}: too many response headers")
    version = fields[0]
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(url, status, headers, version=version)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(readline, read, url, max_body)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise TransportError(f"{url}: bad Content-Length") from None
        if length > max_body:
            raise TransportError(f"{url}: body of {length} bytes exceeds {max_body}")
        body = read(length)
        if len(body) != length:
            raise TransportError(f"{url}: connection closed after {len(body)} of {length} bytes")
    else:
        body = read(max_body + 1)
        if len(body) > max_body:
            raise TransportError(f"{url}: body exceeds {max_body} bytes")
    return Response(url, status, headers, body, version)


def _read_chunked(
    readline: Callable[[int], bytes], read: Callable[[int], bytes], url: str, max_body: int
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = readline(1026).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise TransportError(f"{url}: bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            while readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise TransportError(f"{url}: body exceeds {max_body} bytes")
        chunk = read(size)
        if len(chunk) != size:
            raise TransportError(f"{url}: connection closed inside a chunk")
        chunks.append(chunk)
        readline(3)


def _https(
    method: str,
    url: str,
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    timeout: float,
    max_body: int,
) -> Response:
    import http.client

    conn = http.client.HTTPSConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        answer = conn.getresponse()
        data = answer.read(max_body + 1)
        if len(data) > max_body:
            raise TransportError(f"{url}: body exceeds {max_body} bytes")
        return Response(url, answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
    except (OSError, http.client.HTTPException) as err:
        raise TransportError(f"{url}: {_reason(err)}") from None
    finally:
        conn.close()


@dataclass
class RetryPolicy:
    """How hard to try one request: ``retries`` more attempts after the first, with a doubling
    pause, and never past ``deadline`` (a ``time.monotonic()`` value; None = no limit)."""

    timeout: float = 5.0
    retries: int = 3
    deadline: float | None = None
    first_pause: float = 0.1
    max_pause: float = 2.0
    max_retry_after: float = 30.0  # a longer Retry-After is treated as this
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()


def retry_after(response: Response) -> float | None:
    """Seconds from a ``Retry-After: N`` header (an HTTP-date is ignored: clocks are not trusted
    this early in boot)."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    return None


def fetch(
    method: str,
    url: str,
    policy: RetryPolicy,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    max_body: int = MAX_BODY,
) -> Response:
    """A request retried on transport errors and on 408/429/5xx, honouring ``Retry-After``.

    Returns the last response (the caller decides what a 404 means); raises TransportError when
    no HTTP answer came at all."""
    attempt = 0
    pause = policy.first_pause
    while True:
        remaining = policy.remaining()
        timeout = policy.timeout if remaining is None else max(0.05, min(policy.timeout, remaining))
        outcome: Response | TransportError
        try:
            outcome = request(
                method, url, headers=headers, body=body, timeout=timeout, max_body=max_body
            )
        except TransportError as err:
            outcome = err
        if isinstance(outcome, Response) and outcome.status not in RETRY_STATUSES:
            return outcome
        attempt += 1
        hinted = retry_after(outcome) if isinstance(outcome, Response) else None
        wait = pause if hinted is None else min(hinted, policy.max_retry_after)
        remaining = policy.remaining()
        if attempt > policy.retries or (remaining is not None and remaining <= wait):
            if isinstance(outcome, TransportError):
                raise outcome
            return outcome
        policy.sleep(wait)
        pause = min(pause * 2, policy.max_pause)
