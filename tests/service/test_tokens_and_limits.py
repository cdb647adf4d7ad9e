"""IMDSv2 session tokens (the AWS semantics table), per-instance endpoint policy, rate limits."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from metaboot.registry import Registry
from metaboot.service.tokens import TokenAuthority, parse_ttl
from tests.service.harness import Running, instance

TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


def _token(svc: Running, ttl: str = "60", **kwargs: object) -> str:
    status, headers, body = svc.request("PUT", "/latest/api/token", headers={TTL: ttl}, **kwargs)  # type: ignore[arg-type]
    assert status == 200, body
    assert headers[TTL.lower()] == ttl
    return body.decode()


def test_token_semantics(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("127.0.0.2",))
    other = instance(ips=("127.0.0.3",))
    registry.add(me)
    registry.add(other)
    svc = start_service(db_url)
    mine = dict(source="127.0.0.2")

    # TTL bounds: 1..21600, an integer, present
    for ttl in ("1", "21600", "300"):
        _token(svc, ttl, **mine)
    for bad in ("0", "21601", "-5", "1.5", "abc", ""):
        assert svc.request("PUT", "/latest/api/token", headers={TTL: bad}, **mine)[0] == 400
    assert svc.request("PUT", "/latest/api/token", **mine)[0] == 400
    # other methods on the token path: 405 with Allow: OPTIONS, PUT
    for method in ("GET", "POST", "DELETE", "HEAD"):
        status, headers, _ = svc.request(method, "/latest/api/token", headers={TTL: "60"}, **mine)
        assert status == 405 and headers["allow"] == "OPTIONS, PUT"
    # a dated token path: 403
    assert svc.request("PUT", "/2021-03-23/api/token", headers={TTL: "60"}, **mine)[0] == 403
    # a PUT carrying X-Forwarded-For or Forwarded from the VM side: 403
    for header in ("X-Forwarded-For", "Forwarded"):
        status, _, _ = svc.request(
            "PUT", "/latest/api/token", headers={TTL: "60", header: "127.0.0.2"}, **mine
        )
        assert status == 403

    token = _token(svc, **mine)
    assert token != _token(svc, **mine)  # CSPRNG nonce: never the same twice
    # reads with a valid token work on EC2 and OpenStack paths
    assert svc.get("/latest/meta-data/instance-id", headers={TOKEN: token}, **mine)[0] == 200
    status, _ = svc.get("/openstack/latest/meta_data.json", headers={TOKEN: token}, **mine)
    assert status == 200
    # a token is bound to its instance: the other VM cannot use it
    assert (
        svc.get("/latest/meta-data/instance-id", headers={TOKEN: token}, source="127.0.0.3")[0]
        == 401
    )
    # a forged or mangled token: 401 (even under the optional policy)
    for forged in ("x" + token[1:], token[:-2], "AAAA", ""):
        assert svc.get("/latest/meta-data/", headers={TOKEN: forged}, **mine)[0] == 401
    # an expired token: 401
    short = _token(svc, "1", **mine)
    time.sleep(2.1)
    assert svc.get("/latest/meta-data/", headers={TOKEN: short}, **mine)[0] == 401


def test_token_put_via_trusted_proxy_respects_client_forwarded_flag(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    me = instance(ips=("10.0.0.5",), network="net-a")
    registry.add(me)
    svc = start_service(db_url)
    via = {"X-Neutron-Network-ID": "net-a", "X-Forwarded-For": "10.0.0.5", TTL: "60"}
    status, _, body = svc.request("PUT", "/latest/api/token", headers=via, unix=True)
    assert status == 200
    token = body.decode()
    status, _, _ = svc.request(
        "PUT",
        "/latest/api/token",
        headers={**via, "X-Metaboot-Client-Forwarded": "1"},
        unix=True,
    )
    assert status == 403
    read = {"X-Neutron-Network-ID": "net-a", "X-Forwarded-For": "10.0.0.5", TOKEN: token}
    assert svc.get("/latest/meta-data/instance-id", unix=True, headers=read)[0] == 200


def test_required_tokens_and_disabled_endpoint(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    strict = instance(ips=("127.0.0.2",), metadata_options={"http_tokens": "required"})
    off = instance(ips=("127.0.0.3",), metadata_options={"http_endpoint": "disabled"})
    registry.add(strict)
    registry.add(off)
    svc = start_service(db_url)
    paths = [
        "/",
        "/latest/meta-data/instance-id",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/password",
        "/openstack",
    ]
    for path in paths:
        assert svc.get(path, source="127.0.0.2")[0] == 401, path
    token = _token(svc, source="127.0.0.2")
    for path in paths:
        assert svc.get(path, source="127.0.0.2", headers={TOKEN: token})[0] == 200, path
    # disabled: every path and the token PUT are 403
    for path in paths:
        assert svc.get(path, source="127.0.0.3")[0] == 403, path
    assert (
        svc.request("PUT", "/latest/api/token", headers={TTL: "60"}, source="127.0.0.3")[0] == 403
    )


def test_rate_limits_per_instance_ipv4(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    a = instance(ips=("127.0.0.2",))
    b = instance(ips=("127.0.0.3",))
    registry.add(a)
    registry.add(b)
    svc = start_service(db_url, rate_limit_requests=5, rate_limit_window=60.0)
    for _ in range(5):
        assert svc.get("/latest/meta-data/", source="127.0.0.2")[0] == 200
    status, headers, _ = svc.request("GET", "/latest/meta-data/", source="127.0.0.2")
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 60
    # another instance has its own budget
    assert svc.get("/latest/meta-data/", source="127.0.0.3")[0] == 200


def test_rate_limits_per_instance_ipv6(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    direct = instance(ips=("::1",), network="v6")
    a = instance(ips=("2001:db8::a",), network="v6-net")
    b = instance(ips=("2001:db8::b",), network="v6-net")
    for inst in (direct, a, b):
        registry.add(inst)
    svc = start_service(db_url, v6=True, rate_limit_requests=3, rate_limit_window=60.0)
    for _ in range(3):
        assert svc.get("/latest/meta-data/", v6=True)[0] == 200
    assert svc.get("/latest/meta-data/", v6=True)[0] == 429
    # distinct IPv6 clients behind a trusted proxy (UNIX socket), each limited separately
    for ip in ("2001:db8::a", "2001:db8::b"):
        headers = {"X-Neutron-Network-ID": "v6-net", "X-Forwarded-For": ip}
        for _ in range(3):
            assert svc.get("/latest/meta-data/", unix=True, headers=headers)[0] == 200
        status, hdrs, _ = svc.request("GET", "/latest/meta-data/", unix=True, headers=headers)
        assert status == 429 and int(hdrs["retry-after"]) >= 1


def test_sliding_window_admits_again_as_requests_age() -> None:
    from metaboot.service.ratelimit import RateLimiter

    now = [100.0]
    limiter = RateLimiter(3, 10.0, clock=lambda: now[0])
    assert [limiter.check("i") for _ in range(3)] == [0, 0, 0]
    assert limiter.check("i") == 10
    now[0] += 4.0
    assert limiter.check("i") == 6  # the oldest leaves the window at 110
    now[0] = 110.01  # all three left the window
    assert [limiter.check("i") for _ in range(3)] == [0, 0, 0]
    assert limiter.check("i") == 10


def test_token_authority_unit() -> None:
    now = [1000.0]
    authority = TokenAuthority(b"k" * 32, clock=lambda: now[0])
    token = authority.issue("vm-1", 10)
    assert authority.verify(token, "vm-1")
    assert not authority.verify(token, "vm-2")
    assert not TokenAuthority(b"j" * 32, clock=lambda: now[0]).verify(token, "vm-1")
    now[0] += 10
    assert not authority.verify(token, "vm-1")
    assert parse_ttl("21600") == 21600 and parse_ttl("0") is None and parse_ttl(None) is None
    with pytest.raises(ValueError):
        TokenAuthority(b"short")
