"""The agent's HTTP client against real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from metaboot.guest.http import (
    RetryPolicy,
    TransportError,
    close_idle,
    fetch,
    get_pipelined,
    request,
    split_url,
)
from tests.guest.helpers import UUID, ServerState, dead_url, metadata_server, tree


@contextmanager
def accepting(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A TCP listener on loopback whose accepted connections go to ``handle`` (with the event
    that says the server is stopping); stopped and closed on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handle(conn, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@contextmanager
def raw_server(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """A one-request-at-a-time TCP server that writes ``answer(request)`` verbatim."""

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            conn.sendall(answer(data))

    with accepting(handle) as url:
        yield url


def test_split_url_handles_ipv6_zones() -> None:
    assert split_url("http://[fe80::a9fe:a9fe%25eth0]/openstack") == (
        "http",
        "fe80::a9fe:a9fe%eth0",
        80,
        "/openstack",
    )
    assert split_url("http://[fe80::a9fe:a9fe%ens3]:8775") == (
        "http",
        "fe80::a9fe:a9fe%ens3",
        8775,
        "/",
    )
    assert split_url("http://127.0.0.1:81/a?b=1") == ("http", "127.0.0.1", 81, "/a?b=1")
    with pytest.raises(TransportError, match="only http"):
        split_url("file:///etc/passwd")


def reference_split(url: str) -> tuple[str, str, int, str]:
    """What split_url gave when it was built on urllib.parse (the stdlib as the oracle)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        host = urllib.parse.unquote(host)
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    port = int(port_text) if port_text else (443 if parts.scheme == "https" else 80)
    return (
        parts.scheme,
        host,
        port,
        (parts.path or "/") + ("?" + parts.query if parts.query else ""),
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254",
        "http://169.254.169.254/openstack/latest/meta_data.json",
        "HTTP://Example.COM:8080/a/b?c=d&e=f#frag",
        "https://host/?q",
        "http://host?only=query",
        "http://host#only-fragment",
        "http://user:pw@host:81/p",
        "http://[fe80::a9fe:a9fe%25eth0]/openstack",
        "http://[fe80::a9fe:a9fe%ens3]:8775",
        "http://[::1]:8775/x?y#z",
        "  \x01http://host/path",
        "http://ho\tst/pa\nth?q\r=1",
        "http://host/a%20b?c=%2F",
        "http://host:80",
    ],
)
def test_split_url_splits_as_urllib_does(url: str) -> None:
    assert split_url(url) == reference_split(url)


def test_content_length_chunked_and_close_delimited_bodies() -> None:
    bodies = {
        b"/cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
        b"/close": b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        b"/nothttp": b"SSH-2.0-OpenSSH\r\n",
    }

    def answer(req: bytes) -> bytes:
        return bodies[req.split(b" ")[1]]

    with raw_server(answer) as url:
        assert request("GET", url + "/cl").body == b"hello"
        assert request("GET", url + "/chunked").body == b"abcdefg"
        assert request("GET", url + "/close").body == b"until the end"
        with pytest.raises(TransportError, match="not an HTTP response"):
            request("GET", url + "/nothttp")


def test_body_limit_is_enforced() -> None:
    with (
        raw_server(lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100) as url,
        pytest.raises(TransportError, match="exceeds 10"),
    ):
        request("GET", url, max_body=10)


def test_request_sends_host_and_custom_headers() -> None:
    seen: list[bytes] = []

    def answer(req: bytes) -> bytes:
        seen.append(req)
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    with raw_server(answer) as url:
        response = request("PUT", url + "/latest/api/token", headers={"X-Test": "1"})
    assert response.status == 204
    head = seen[0].decode()
    assert head.startswith("PUT /latest/api/token HTTP/1.1\r\n")
    assert f"Host: {url.removeprefix('http://')}" in head
    assert "X-Test: 1" in head and "Content-Length: 0" in head
    with pytest.raises(TransportError, match="line break"):
        request("GET", url, headers={"X": "a\r\nInjected: 1"})


def test_503_retry_after_is_honoured_then_succeeds() -> None:
    sleeps: list[float] = []
    state = ServerState(tree(), fail_first=2, retry_after=3)
    with metadata_server(state) as (url, _):
        policy = RetryPolicy(timeout=2, retries=5, sleep=sleeps.append)
        response = fetch("GET", url + "/openstack", policy)
    assert response.status == 200
    assert sleeps == [3.0, 3.0]
    assert len(state.log) == 3


def test_retries_are_bounded_by_count_and_deadline() -> None:
    sleeps: list[float] = []
    state = ServerState(tree(), fail_first=100)
    with metadata_server(state) as (url, _):
        response = fetch("GET", url + "/openstack", RetryPolicy(retries=3, sleep=sleeps.append))
        assert response.status == 503
        assert sleeps == [0.1, 0.2, 0.4]
        now = [0.0]

        def advance(seconds: float) -> None:
            now[0] += seconds

        policy = RetryPolicy(retries=50, deadline=1.0, sleep=advance, clock=lambda: now[0])
        fetch("GET", url + "/openstack", policy)
        assert now[0] <= 1.0


def test_connection_refused_raises_after_retries() -> None:
    sleeps: list[float] = []
    with pytest.raises(TransportError, match="refused"):
        fetch("GET", dead_url() + "/x", RetryPolicy(retries=2, sleep=sleeps.append))
    assert sleeps == [0.1, 0.2]


def test_an_absurd_retry_after_is_capped() -> None:
    sleeps: list[float] = []
    state = ServerState(tree(), fail_first=1, retry_after=3600)
    with metadata_server(state) as (url, _):
        response = fetch("GET", url + "/openstack", RetryPolicy(retries=2, sleep=sleeps.append))
    assert response.status == 200 and sleeps == [30.0]


@contextmanager
def keepalive_server() -> Iterator[tuple[str, list[list[bytes]]]]:
    """An HTTP/1.1 server that keeps each connection open for more requests; records, per
    connection, the requests it read."""
    connections: list[list[bytes]] = []

    def handle(conn: socket.socket, seen: list[bytes], stop: threading.Event) -> None:
        buffer = b""
        with conn:
            while not stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                seen.append(head)
                body = head.split(b" ", 2)[1]
                closing = b"connection: close" in head.lower()
                extra = b"Connection: close\r\n" if closing else b""
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)
                )
                if closing:
                    return

    def accept(conn: socket.socket, stop: threading.Event) -> None:
        seen: list[bytes] = []
        connections.append(seen)
        threading.Thread(target=handle, args=(conn, seen, stop), daemon=True).start()

    with accepting(accept) as url:
        try:
            yield url, connections
        finally:
            close_idle()


def test_gets_share_one_connection_puts_get_their_own() -> None:
    with keepalive_server() as (url, connections):
        bodies = [request("GET", f"{url}/doc/{i}").body for i in range(3)]
        assert bodies == [b"/doc/0", b"/doc/1", b"/doc/2"]
        assert len(connections) == 1 and len(connections[0]) == 3
        assert request("PUT", f"{url}/token").body == b"/token"
        assert len(connections) == 2
        assert b"connection: close" in connections[1][0].lower()
        close_idle()
        assert request("GET", f"{url}/again").body == b"/again"
        assert len(connections) == 3  # close_idle closed the kept one


def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    """raw_server answers with a Content-Length and closes: the kept connection is dead by the
    next request, which goes out again on a new one."""
    with raw_server(lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") as url:
        assert [request("GET", url).body for _ in range(3)] == [b"ok", b"ok", b"ok"]
    close_idle()


@contextmanager
def batch_server(batch: int, close_after: int | None = None) -> Iterator[str]:
    """A server that reads ``batch`` whole requests before it answers any — a client that waits
    for each answer before sending the next request would wait forever — then answers them in
    order, each with its path as the body; with ``close_after`` it closes the connection after
    that many answers (``Connection: close`` on the last)."""

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while data.count(b"\r\n\r\n") < batch:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            heads = data.split(b"\r\n\r\n")[:batch]
            for index, head in enumerate(heads, 1):
                body = head.split(b" ", 2)[1]
                last = close_after is not None and index == close_after
                extra = b"Connection: close\r\n" if last else b""
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)
                )
                if last:
                    return

    with accepting(handle) as url:
        try:
            yield url
        finally:
            close_idle()


def test_pipelined_gets_are_all_sent_before_the_first_answer_is_read() -> None:
    with batch_server(4) as url:
        urls = [f"{url}/doc/{i}" for i in range(4)]
        answers = get_pipelined(urls, timeout=5)
        assert [answers[u].body for u in urls] == [b"/doc/0", b"/doc/1", b"/doc/2", b"/doc/3"]


def test_pipelined_gets_stop_where_the_server_closes_and_the_rest_can_be_asked_again() -> None:
    with batch_server(3, close_after=1) as url:
        urls = [f"{url}/a", f"{url}/b", f"{url}/c"]
        answers = get_pipelined(urls, timeout=5)
        assert list(answers) == [f"{url}/a"] and answers[f"{url}/a"].body == b"/a"


def test_pipelining_is_not_tried_across_hosts_or_for_https_and_never_raises() -> None:
    assert get_pipelined(["http://127.0.0.1:1/a", "http://127.0.0.2:1/b"]) == {}
    assert get_pipelined(["https://127.0.0.1/a", "https://127.0.0.1/b"]) == {}
    assert get_pipelined([f"{dead_url()}/a", f"{dead_url()}/b"], timeout=1) == {}


def test_the_openstack_source_reads_its_documents_in_one_round_trip() -> None:
    """The service answers /openstack at once, then holds every document request until all
    five are in: only a source that writes them together (on the connection it probed with)
    gets its instance data, from one connection."""
    import os

    from metaboot.guest import log as logger
    from metaboot.guest.sources import openstack
    from metaboot.guest.sources.detect import SourceContext
    from metaboot.guest.system import Root

    documents = tree()
    connections: list[list[str]] = []

    def answer(conn: socket.socket, path: str) -> None:
        doc = documents.lookup(path)
        body = doc.render(os.urandom) if doc is not None else b"not found"
        status = b"200 OK" if doc is not None else b"404 Not Found"
        conn.sendall(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        seen: list[str] = []
        connections.append(seen)
        held: list[str] = []
        data = b""
        with conn:
            conn.settimeout(0.2)
            while not stop.is_set():
                while b"\r\n\r\n" in data:
                    head, _, data = data.partition(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1].decode()
                    seen.append(path)
                    if path == "/openstack":
                        answer(conn, path)
                    else:
                        held.append(path)
                if len(held) == len(openstack.DOCUMENTS):
                    for path in held:
                        answer(conn, path)
                    held.clear()
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                data += chunk

    settings = {"metadata_urls": [], "timeout": 2, "retries": 0, "max_wait": 0}
    with accepting(handle) as url:
        settings["metadata_urls"] = [url]
        ctx = SourceContext(Root("/nonexistent"), settings, logger.get("test"))
        data = openstack.read(ctx)
        close_idle()
    assert data is not None and data.instance_id == UUID
    assert len(connections) == 1
    names = [p.rsplit("/", 1)[1] for p in connections[0][1:]]
    assert connections[0][0] == "/openstack" and names == list(openstack.DOCUMENTS)
    assert data.user_data is not None and data.network_data is not None
