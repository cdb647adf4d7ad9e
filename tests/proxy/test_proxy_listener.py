"""The listening proxy on loopback: stamping, framing, bounds, timeouts, upstream faults, TLS.

The namespace topologies (tests/proxy/test_proxy_netns.py) repeat the essentials from inside
real tenant networks; these tests pin the HTTP behaviour quickly and without root.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest

from tests.proxy.helpers import EchoUpstream, ProxyProcess, echoed_headers, parse_replies


def start_proxy(
    proxies: list[ProxyProcess],
    upstream: str,
    *extra: str,
    listen: str = "127.0.0.1:0",
    log: Path | None = None,
    identity: tuple[str, str] = ("--network-id", "net-a"),
) -> ProxyProcess:
    proxy = ProxyProcess(
        [*identity, "--listen", listen, "--upstream", upstream, *extra], log_path=log
    )
    proxies.append(proxy)
    return proxy.start()


def raw_exchange(port: int, data: bytes, timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Send ``data``, half-close, and read until the proxy closes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_stamps_the_real_source_and_network(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request(
        "GET",
        "/openstack/latest/meta_data.json",
        headers={
            "X-Forwarded-For": "10.0.0.99",
            "Forwarded": "for=10.0.0.99",
            "X-Neutron-Network-ID": "net-b",
            "X-Neutron-Router-ID": "router-b",
            "X-Instance-ID": "other-instance",
            "X-Instance-ID-Signature": "00" * 32,
            "X-Tenant-ID": "other-project",
            "X-OVN-Network-ID": "net-b",
            "X_Forwarded_For": "10.0.0.98",
        },
    )
    response = conn.getresponse()
    echo = json.loads(response.read())
    assert response.status == 200
    headers = [(k.lower(), v) for k, v in echo["headers"]]
    assert [h for h in headers if h[0] not in ("host", "accept-encoding")] == [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-neutron-network-id", "net-a"),
        ("x-metaboot-client-forwarded", "1"),
    ]
    # Hop-by-hop headers of the upstream (Connection and what it names) stop at the proxy.
    assert response.getheader("X-Upstream-Hop") is None
    assert response.getheader("Connection") is None


def test_router_style_identity(echo_upstream: EchoUpstream, proxies: list[ProxyProcess]) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, identity=("--router-id", "router-1"))
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/", headers={"X-Neutron-Network-ID": "net-b"})
    headers = dict((k.lower(), v) for k, v in json.loads(conn.getresponse().read())["headers"])
    assert headers["x-neutron-router-id"] == "router-1"
    assert "x-neutron-network-id" not in headers
    assert "x-metaboot-client-forwarded" not in headers


def test_keep_alive_pipelining_chunked_head_and_http10(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    wire = raw_exchange(
        proxy.port,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
        b"HEAD /two HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /chunked/5 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"PUT /latest/api/token HTTP/1.1\r\nHost: a\r\n"
        b"X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"
        b"GET /status/404 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        b"GET /never HTTP/1.1\r\n\r\n",
    )
    replies = parse_replies(wire, ["GET", "HEAD", "GET", "PUT", "GET"])
    assert [r.status for r in replies] == [200, 200, 200, 200, 404]
    assert replies[0].json()["target"] == "/one"
    assert replies[1].body == b""
    assert replies[2].headers["transfer-encoding"] == "chunked"
    assert replies[2].json()["target"] == "/chunked/5"
    token_put = replies[3].json()
    assert token_put["method"] == "PUT"
    assert ["Content-Length", "0"] in token_put["headers"]
    assert replies[4].headers["connection"] == "close"
    # HTTP/1.0: no chunked framing possible, so the body is delimited by the close.
    wire10 = raw_exchange(proxy.port, b"GET /chunked/3 HTTP/1.0\r\n\r\n")
    [reply10] = parse_replies(wire10)
    assert "transfer-encoding" not in reply10.headers
    assert reply10.json()["target"] == "/chunked/3"


def test_close_delimited_answer_is_relayed_whole(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for _ in range(2):  # the client's connection survives: re-framed as chunked
        conn.request("GET", "/close-delimited")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(response.read())["target"] == "/close-delimited"


def test_expect_continue(echo_upstream: EchoUpstream, proxies: list[ProxyProcess]) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /pw HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abcd")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    echo = parse_replies(data, ["POST"])[0].json()
    assert echo["body"] == "abcd"
    assert all(k.lower() != "expect" for k, _ in echo["headers"])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 431),
        (b"GET /" + b"p" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
        (b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n", 405),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS hello
    ],
)
def test_bounds_and_malformed_requests(
    echo_upstream: EchoUpstream,
    proxies: list[ProxyProcess],
    request_bytes: bytes,
    status: int,
    tmp_path: Path,
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, log=tmp_path / "access.log")
    [reply] = parse_replies(raw_exchange(proxy.port, request_bytes))
    assert reply.status == status
    assert reply.headers["connection"] == "close"
    assert any(r["status"] == status for r in proxy.access_log())


def test_upstream_down_503_then_recovers(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--retry-after", "2")
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/a")
    assert conn.getresponse().read() and True
    echo_upstream.stop()
    conn.request("GET", "/b")  # same client connection: the proxy keeps it
    down = conn.getresponse()
    down.read()
    assert down.status == 503
    assert down.getheader("Retry-After") == "2"
    echo_upstream.start()
    conn.request("GET", "/c")
    back = conn.getresponse()
    assert back.status == 200 and json.loads(back.read())["target"] == "/c"


def test_upstream_silent_gives_504_in_bounded_time(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--upstream-timeout", "1")
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    started = time.monotonic()
    conn.request("GET", "/slow/5")
    response = conn.getresponse()
    response.read()
    assert response.status == 504
    assert response.getheader("Retry-After") == "1"
    assert time.monotonic() - started < 4.5


def test_upstream_dropping_the_connection_is_503(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/drop")
    response = conn.getresponse()
    response.read()
    assert response.status == 503


def test_reused_connection_dropped_by_the_service_is_retried_once(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--upstream-connections", "1")
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for path in ("/flaky/1", "/flaky/2", "/flaky/3"):
        # each GET finds the previous one's upstream connection idle; the service drops it on
        # use, and the proxy sends the GET again on a fresh connection
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["target"] == path
    # A POST is never sent down a reused connection, so it is never in that position.
    conn.request("GET", "/warm-up")
    conn.getresponse().read()
    conn.request("POST", "/flaky/password", body=b"once")
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["body"] == "once"


def test_pipelined_requests_before_a_malformed_one_are_answered(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    wire = raw_exchange(
        proxy.port, b"GET /first HTTP/1.1\r\n\r\nGET /second HTTP/1.1\r\nBad Header: x\r\n\r\n"
    )
    first, second = parse_replies(wire)
    assert (first.status, first.json()["target"]) == (200, "/first")
    assert second.status == 400 and second.headers["connection"] == "close"


def test_client_that_does_not_read_is_dropped_without_harm(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--send-timeout", "1")
    with socket.socket() as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", proxy.port))
        stuck.sendall(b"GET /big/20000000 HTTP/1.1\r\n\r\n")  # 20 MB, never read
        time.sleep(0.5)
        conn = HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/others-still-served")
        assert conn.getresponse().status == 200
        time.sleep(2.5)
        stuck.settimeout(5)
        received = 0
        reset = False
        try:
            while chunk := stuck.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            reset = True
    # cut off with a reset, not delivered in full to a client that stalled
    assert reset and received < 20_000_000


def test_slow_loris_is_cut_off_and_does_not_block_others(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--client-timeout", "1.5")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as loris:
        loris.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        # Meanwhile an honest client is served at once.
        conn = HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/honest")
        assert conn.getresponse().status == 200
        answer = b""
        loris.settimeout(0.2)
        while time.monotonic() - started < 8 and not answer:
            try:
                loris.sendall(b"X-Drip: 1\r\n")  # one header line every 0.2 s, never the end
                answer = loris.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                answer = b"reset"
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert elapsed < 4, f"slow client held its connection for {elapsed:.1f}s"


def test_idle_keep_alive_connection_is_closed(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--keepalive-timeout", "1")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started < 4


def test_per_source_connection_cap(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--max-connections-per-source", "3")
    held = [socket.create_connection(("127.0.0.1", proxy.port), timeout=10) for _ in range(3)]
    try:
        time.sleep(0.3)
        [refused] = parse_replies(raw_exchange(proxy.port, b"GET / HTTP/1.1\r\n\r\n"))
        assert refused.status == 503 and "retry-after" in refused.headers
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    [served] = parse_replies(
        raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    )
    assert served.status == 200


def test_many_concurrent_clients(echo_upstream: EchoUpstream, proxies: list[ProxyProcess]) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, "--upstream-connections", "8")
    failures: list[str] = []

    def client(n: int) -> None:
        try:
            conn = HTTPConnection("127.0.0.1", proxy.port, timeout=20)
            for i in range(5):
                conn.request("GET", f"/c{n}/r{i}")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200 or json.loads(body)["target"] != f"/c{n}/r{i}":
                    failures.append(f"{n}/{i}: {response.status} {body[:80]!r}")
            conn.close()
        except Exception as err:
            failures.append(f"{n}: {err!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []


def test_access_log_has_the_fields_and_no_secrets(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess], tmp_path: Path
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, log=tmp_path / "access.log")
    token = "AQAEAL-secret-token-value"
    password = "s3cret-password-body"
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for method, path, headers, body in [
        ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, None),
        ("GET", "/latest/meta-data/?token=" + token, {"X-aws-ec2-metadata-token": token}, None),
        ("POST", "/openstack/latest/password", {}, password),
        ("GET", "/openstack/latest/user_data", {"Authorization": "Bearer " + token}, None),
    ]:
        conn.request(method, path, body=body, headers=headers)
        conn.getresponse().read()
    proxy.stop()
    text = (tmp_path / "access.log").read_text()
    assert token not in text and password not in text
    records = proxy.access_log()
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("PUT", "/latest/api/token", 200),
        ("GET", "/latest/meta-data/", 200),
        ("POST", "/openstack/latest/password", 200),
        ("GET", "/openstack/latest/user_data", 200),
    ]
    first = records[0]
    assert first["network_id"] == "net-a" and first["source"] == "127.0.0.1"
    assert first["upstream"] == "ok" and first["latency_ms"] >= 0 and first["bytes_out"] > 0
    assert records[2]["bytes_in"] == len(password)


def test_ipv6_listener(echo_upstream: EchoUpstream, proxies: list[ProxyProcess]) -> None:
    proxy = start_proxy(proxies, echo_upstream.address, listen="[::1]:0")
    assert proxy.listening[0].startswith("[::1]:")
    [reply] = parse_replies(
        raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", host="::1")
    )
    assert ("x-forwarded-for", "::1") in echoed_headers(reply)


def test_tls_upstream_verified(proxies: list[ProxyProcess], tmp_path: Path) -> None:
    ca_key, ca_cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    key, csr, cert = tmp_path / "svc.key", tmp_path / "svc.csr", tmp_path / "svc.pem"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca_cert), "-days", "2", "-subj", "/CN=metaboot test CA")  # fmt: skip
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    upstream = EchoUpstream("tcp:127.0.0.1:0", tls=(str(cert), str(key)))
    upstream.start()
    try:
        good = start_proxy(proxies, upstream.address, "--upstream-ca", str(ca_cert))
        conn = HTTPConnection("127.0.0.1", good.port, timeout=10)
        conn.request("GET", "/over-tls")
        assert json.loads(conn.getresponse().read())["target"] == "/over-tls"
        # Without the CA the service's certificate is not trusted: no request goes out.
        untrusted = start_proxy(proxies, upstream.address)
        conn = HTTPConnection("127.0.0.1", untrusted.port, timeout=10)
        conn.request("GET", "/over-tls")
        assert conn.getresponse().status == 503
    finally:
        upstream.stop()


def test_sigterm_lets_an_open_request_finish(
    echo_upstream: EchoUpstream, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(proxies, echo_upstream.address)
    conn = HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/slow/1")
    time.sleep(0.3)
    assert proxy.proc is not None
    proxy.proc.send_signal(signal.SIGTERM)
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["target"] == "/slow/1"
    assert response.getheader("Connection") == "close"
    assert proxy.proc.wait(10) == 0


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("[fe80::a9fe:a9fe]:80", "needs its interface"),
        ("[fe80::a9fe:a9fe%no-such-if0]:80", "no interface 'no-such-if0'"),
        ("169.254.169.254", "expected ADDR:PORT"),
        ("10.0.0.1:99999", "out of range"),
        ("example.org:80", "not an IP address"),
        ("192.0.2.77:8080", "must be configured on an interface"),
    ],
)
def test_bad_listen_addresses_are_named(
    echo_upstream: EchoUpstream, listen: str, message: str
) -> None:
    from tests.proxy.helpers import METABOOT

    done = subprocess.run(
        [
            *METABOOT,
            "proxy",
            "--network-id",
            "n",
            "--listen",
            listen,
            "--upstream",
            echo_upstream.address,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert message in done.stderr and "--listen" in done.stderr
