"""``metaboot proxy --stdio``: one guest connection on stdin/stdout, as QEMU's guestfwd gives it."""

from __future__ import annotations

import socket
import subprocess
from http.client import HTTPConnection

from tests.proxy.helpers import METABOOT, EchoUpstream, echoed_headers, parse_replies, stop_process

FORGED_GET = (
    b"GET /openstack/latest/meta_data.json HTTP/1.1\r\n"
    b"Host: 169.254.169.254\r\n"
    b"X-Forwarded-For: 10.9.9.9\r\n"
    b"X-Neutron-Router-ID: forged-router\r\n"
    b"X-Instance-ID: forged-instance\r\n"
    b"X_Instance_ID_Signature: deadbeef\r\n"
    b"\r\n"
)


def stdio_args(upstream: str, *extra: str) -> list[str]:
    return [
        *METABOOT,
        "proxy",
        "--stdio",
        "--network-id",
        "net-qemu",
        "--forwarded-for",
        "10.0.2.15",
        "--upstream",
        upstream,
        *extra,
    ]


def test_pipes_keep_alive_stamp_and_exit_on_eof(echo_upstream: EchoUpstream) -> None:
    requests = (
        FORGED_GET
        + b"POST /openstack/2013-04-04/password HTTP/1.1\r\nContent-Length: 6\r\n\r\nsecret"
        + b"HEAD /latest/meta-data/ HTTP/1.1\r\n\r\n"
        + b"GET /chunked/4 HTTP/1.1\r\nConnection: close\r\n\r\n"
    )
    done = subprocess.run(
        stdio_args(echo_upstream.address), input=requests, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    replies = parse_replies(done.stdout, ["GET", "POST", "HEAD", "GET"])
    assert [r.status for r in replies] == [200, 200, 200, 200]
    first = echoed_headers(replies[0])
    identity = [(k, v) for k, v in first if k.startswith(("x-", "forwarded"))]
    assert identity == [
        ("x-forwarded-for", "10.0.2.15"),
        ("x-neutron-network-id", "net-qemu"),
        ("x-metaboot-client-forwarded", "1"),
    ]
    assert replies[1].json()["body"] == "secret"
    assert ("x-metaboot-client-forwarded", "1") not in echoed_headers(replies[1])
    assert replies[2].body == b"" and int(replies[2].headers["content-length"]) > 0
    assert replies[3].json()["target"] == "/chunked/4"
    assert replies[3].headers["transfer-encoding"] == "chunked"
    assert replies[3].headers["connection"] == "close"


def test_one_socket_for_stdin_stdout_stderr_as_qemu_does(echo_upstream: EchoUpstream) -> None:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        stdio_args(echo_upstream.address), stdin=theirs, stdout=theirs, stderr=theirs
    )
    theirs.close()
    try:
        conn = HTTPConnection("169.254.169.254")
        conn.sock = ours  # no connect: the socket pair is the guest's connection
        for path in ("/openstack", "/latest/meta-data/instance-id", "/openstack/latest/user_data"):
            conn.request("GET", path, headers={"X-Forwarded-For": "1.2.3.4"})
            response = conn.getresponse()
            echo = response.read()
            assert response.status == 200
            assert b'["X-Forwarded-For", "10.0.2.15"]' in echo and b"1.2.3.4" not in echo
        ours.shutdown(socket.SHUT_WR)
        assert proc.wait(10) == 0
        assert ours.recv(100) == b""  # nothing else (no stderr noise) came down the wire
    finally:
        ours.close()
        stop_process(proc)


def test_half_closed_guest_still_gets_its_answer(echo_upstream: EchoUpstream) -> None:
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(
        stdio_args(echo_upstream.address), stdin=theirs, stdout=theirs, stderr=theirs
    )
    theirs.close()
    try:
        ours.sendall(b"GET /slow/0.3 HTTP/1.1\r\n\r\n")
        ours.shutdown(socket.SHUT_WR)
        ours.settimeout(10)
        data = b""
        while chunk := ours.recv(65536):
            data += chunk
        assert parse_replies(data)[0].json()["target"] == "/slow/0.3"
        assert proc.wait(10) == 0
    finally:
        ours.close()
        stop_process(proc)


def test_upstream_down_gives_503_with_retry_after(tmp_path: object) -> None:
    done = subprocess.run(
        stdio_args(f"unix:{tmp_path}/nobody-here.sock", "--retry-after", "3"),
        input=FORGED_GET,
        capture_output=True,
        timeout=30,
    )
    [reply] = parse_replies(done.stdout)
    assert reply.status == 503
    assert reply.headers["retry-after"] == "3"
    assert done.returncode == 0


def test_stdio_needs_the_guest_address(echo_upstream: EchoUpstream) -> None:
    args = [
        a for a in stdio_args(echo_upstream.address) if a not in ("--forwarded-for", "10.0.2.15")
    ]
    done = subprocess.run(args, input=b"", capture_output=True, timeout=30)
    assert done.returncode == 1
    assert b"--forwarded-for" in done.stderr


def test_stdout_may_be_a_character_device(echo_upstream: EchoUpstream) -> None:
    """/dev/null as stdout (libuv would abort on it; the stdio mode runs on asyncio's loop)."""
    done = subprocess.run(
        stdio_args(echo_upstream.address),
        input=b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
