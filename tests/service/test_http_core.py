"""The HTTP/1.1 core: keep-alive, pipelining order, limits and deadlines, with raw sockets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

from metaboot.registry import Registry
from metaboot.service.http import normalise_address
from tests.service.harness import Running, instance


def _read_responses(sock: socket.socket, count: int, timeout: float = 10) -> list[bytes]:
    """Read ``count`` complete responses (Content-Length framed) off the socket."""
    sock.settimeout(timeout)
    buffer = b""
    out: list[bytes] = []
    while len(out) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        out.append(head + b"\r\n\r\n" + rest[:length])
        buffer = rest[length:]
    return out


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _body(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def test_keep_alive_and_pipelining_keep_order(
    sqlite_registry: Registry, sqlite_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.1",))
    sqlite_registry.add(me)
    svc = start_service(sqlite_url)
    # a password GET waits on the database; the requests after it must still come back after it
    paths = [
        "/latest/meta-data/instance-id",
        "/openstack/latest/password",
        "/openstack/latest/meta_data.json",
        "/nope",
        "/latest/meta-data/hostname",
    ]
    raw = b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths)
    with socket.create_connection((svc.host, svc.port)) as sock:
        sock.sendall(raw)
        replies = _read_responses(sock, len(paths))
        assert [_status(r) for r in replies] == [200, 200, 200, 404, 200]
        assert _body(replies[0]) == me.ec2_instance_id.encode()
        assert _body(replies[1]) == b""
        assert json.loads(_body(replies[2]))["uuid"] == me.uuid
        assert _body(replies[4]) == me.hostname.encode()
        # the connection stays open for more
        sock.sendall(b"GET /latest/meta-data/hostname HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _body(_read_responses(sock, 1)[0]) == me.hostname.encode()
        # Connection: close is honoured
        sock.sendall(b"GET /latest/meta-data/hostname HTTP/1.1\r\nConnection: close\r\n\r\n")
        last = _read_responses(sock, 1)[0]
        assert b"Connection: close" in last
        assert sock.recv(10) == b""
    # HTTP/1.0 closes unless asked to keep alive
    with socket.create_connection((svc.host, svc.port)) as sock:
        sock.sendall(b"GET /latest/meta-data/hostname HTTP/1.0\r\n\r\n")
        assert _status(_read_responses(sock, 1)[0]) == 200
        assert sock.recv(10) == b""


def test_limits_and_malformed_requests(
    sqlite_registry: Registry, sqlite_url: str, start_service: Callable[..., Running]
) -> None:
    sqlite_registry.add(instance(ips=("127.0.0.1",)))
    svc = start_service(sqlite_url, max_header_bytes=2048, max_body_bytes=4096)
    cases = [
        (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n", 431),
        (b"POST /openstack/latest/password HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ]
    for raw, expected in cases:
        with socket.create_connection((svc.host, svc.port)) as sock:
            sock.sendall(raw)
            replies = _read_responses(sock, 1)
            assert replies and _status(replies[0]) == expected, raw[:40]
            assert sock.recv(10) == b""  # and the connection is closed
    # the service still answers afterwards
    assert svc.get("/latest/meta-data/")[0] == 200


def test_slow_clients_are_cut_off_and_do_not_block_others(
    sqlite_registry: Registry, sqlite_url: str, start_service: Callable[..., Running]
) -> None:
    sqlite_registry.add(instance(ips=("127.0.0.1",)))
    svc = start_service(sqlite_url, request_timeout=1.0, keepalive_timeout=1.5)
    loris = socket.create_connection((svc.host, svc.port))
    idle = socket.create_connection((svc.host, svc.port))
    try:
        loris.sendall(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n")  # never finished
        # meanwhile others are served at once
        assert svc.get("/latest/meta-data/")[0] == 200
        loris.settimeout(10)
        idle.settimeout(10)
        started = time.monotonic()
        reply = loris.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert idle.recv(10) == b""  # an idle keep-alive connection is closed too
        assert time.monotonic() - started < 9
    finally:
        loris.close()
        idle.close()


def test_address_normalisation() -> None:
    assert normalise_address("::ffff:10.0.0.5") == "10.0.0.5"
    assert normalise_address("[2001:DB8:0::5]") == "2001:db8::5"
    assert normalise_address("fe80::1%eth0") == "fe80::1"
    assert normalise_address(" 10.0.0.5 ") == "10.0.0.5"
    assert normalise_address("unknown") == "unknown"


def test_idle_connection_after_a_request_is_closed_quietly(
    sqlite_registry: Registry, sqlite_url: str, start_service: Callable[..., Running]
) -> None:
    """After a complete exchange an idle connection is simply closed, not answered 408."""
    sqlite_registry.add(instance(ips=("127.0.0.1",)))
    svc = start_service(sqlite_url, keepalive_timeout=1.0)
    with socket.create_connection((svc.host, svc.port)) as sock:
        sock.sendall(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(_read_responses(sock, 1)[0]) == 200
        sock.settimeout(10)
        assert sock.recv(100) == b""
