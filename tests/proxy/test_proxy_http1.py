"""Request framing and bounds on the client side of the proxy."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from metaboot.proxy.http1 import Limits, RequestReader, error_response, serialize_request

SMALL = Limits(max_header_bytes=1024, max_headers=10, max_url_bytes=200, max_body_bytes=100)


def read_all(data: bytes, limits: Limits = SMALL, step: int = 0) -> RequestReader:
    reader = RequestReader(limits)
    if step:
        for i in range(0, len(data), step):
            reader.feed(data[i : i + step])
    else:
        reader.feed(data)
    return reader


def test_pipelined_requests_come_out_in_order_with_bodies() -> None:
    data = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    for step in (0, 1, 7):
        reader = read_all(data, step=step)
        got = [reader.pop() for _ in range(3)]
        assert [(r.method, r.target, r.body) for r in got if r] == [
            (b"GET", b"/a", b""),
            (b"POST", b"/b", b"hello"),
            (b"PUT", b"/c", b"abc"),
        ]
        assert reader.pop() is None and reader.failure is None


def test_absolute_form_is_reduced_to_the_path() -> None:
    reader = read_all(b"GET http://169.254.169.254/latest/meta-data/?x=1 HTTP/1.1\r\n\r\n")
    request = reader.pop()
    assert request is not None and request.target == b"/latest/meta-data/?x=1"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (
            b"GET /a HTTP/1.1\r\nX: " + b"y" * 2000 + b"\r\n\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (
            b"GET /a HTTP/1.1\r\n" + b"X: y\r\n" * 11 + b"\r\n",
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n\r\n", HTTPStatus.REQUEST_URI_TOO_LONG),
        (b"POST /a HTTP/1.1\r\nContent-Length: 101\r\n\r\n", HTTPStatus.REQUEST_ENTITY_TOO_LARGE),
        (
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n"
            + b"z" * 101
            + b"\r\n0\r\n\r\n",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        ),
        (b"GET /a HTTP/1.1\nHost: x\n\n", HTTPStatus.BAD_REQUEST),
        (b"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"GET /a HTTP/1.1\r\nX : a\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            HTTPStatus.BAD_REQUEST,
        ),
        (
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            HTTPStatus.BAD_REQUEST,
        ),
        (b"GET * HTTP/1.1\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"CONNECT 10.0.0.1:22 HTTP/1.1\r\n\r\n", HTTPStatus.METHOD_NOT_ALLOWED),
        (
            b"POST /a HTTP/1.1\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx",
            HTTPStatus.EXPECTATION_FAILED,
        ),
    ],
)
def test_bad_requests_are_refused_with_the_right_status(data: bytes, status: HTTPStatus) -> None:
    for step in (0, 1):
        reader = read_all(data, step=step)
        assert reader.pop() is None
        assert reader.failure is not None and reader.failure.status == status
        assert reader.finished


def test_unterminated_header_is_cut_off_before_it_is_buffered() -> None:
    # llhttp keeps a header until its CRLF; the bound applies to what has been fed so far.
    reader = RequestReader(SMALL)
    reader.feed(b"GET /a HTTP/1.1\r\nX-Long: ")
    for _ in range(3):
        reader.feed(b"y" * 500)
    assert reader.failure is not None
    assert reader.failure.status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


def test_requests_before_a_fault_are_still_served() -> None:
    reader = read_all(b"GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\nX: y\n\n")
    first = reader.pop()
    assert first is not None and first.target == b"/ok"
    assert reader.failure is not None and reader.failure.status == HTTPStatus.BAD_REQUEST


def test_expect_continue_is_announced_once() -> None:
    reader = RequestReader(SMALL)
    reader.feed(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert reader.take_continue() is True
    assert reader.take_continue() is False
    reader.feed(b"abc")
    request = reader.pop()
    assert request is not None and request.body == b"abc"


def test_upgrade_request_is_served_then_parsing_stops() -> None:
    reader = read_all(
        b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x00\x01"
    )
    request = reader.pop()
    assert request is not None and request.upgrade
    assert reader.finished and reader.failure is None


def test_keep_alive_follows_the_version_and_connection_header() -> None:
    for data, keep in [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ]:
        request = read_all(data).pop()
        assert request is not None and request.keep_alive is keep


def test_serialized_request_has_its_own_framing() -> None:
    wire = serialize_request(b"POST", b"/p", [(b"Host", b"h")], b"abc")
    assert wire == b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    assert serialize_request(b"GET", b"/", [], b"") == b"GET / HTTP/1.1\r\n\r\n"
    assert b"Content-Length: 0" in serialize_request(b"PUT", b"/latest/api/token", [], b"")


def test_error_response_with_retry_after() -> None:
    wire = error_response(HTTPStatus.SERVICE_UNAVAILABLE, "down", close=True, retry_after=2)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nRetry-After: 2" in head and b"\r\nConnection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
