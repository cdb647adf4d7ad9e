"""The admin API mounted on its own listener: changes made through it are served at once."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

from metaboot.metadata.instance import instance_to_spec
from metaboot.registry import Registry
from tests.service.harness import Running, instance

TOKEN = "admin-token-for-tests"


def _admin(
    svc: Running, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> tuple[int, bytes]:
    assert svc.admin_port is not None
    conn = http.client.HTTPConnection("127.0.0.1", svc.admin_port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_admin_changes_are_served_on_the_next_request(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    svc = start_service(db_url, admin=True, admin_token=TOKEN)
    me = instance(ips=("127.0.0.1",), meta={"v": "1"})
    spec = instance_to_spec(me)
    assert _admin(svc, "POST", "/v1/instances", spec, token=None)[0] == 401
    assert svc.get("/openstack/latest/meta_data.json")[0] == 404
    status, _ = _admin(svc, "POST", "/v1/instances", spec)
    assert status == 201
    # no waiting, no polling: the very next request sees it
    status, body = svc.get("/openstack/latest/meta_data.json")
    assert status == 200 and json.loads(body)["meta"] == {"v": "1"}
    for version in ("2", "3"):
        status, _ = _admin(svc, "PUT", f"/v1/instances/{me.uuid}", {**spec, "meta": {"v": version}})
        assert status == 200
        assert json.loads(svc.get("/openstack/latest/meta_data.json")[1])["meta"] == {"v": version}
    # the guest's password, read and cleared by the admin
    assert svc.request("POST", "/openstack/latest/password", body=b"pw")[0] == 200
    status, body = _admin(svc, "GET", f"/v1/instances/{me.uuid}/password")
    assert status == 200 and b"pw" in body
    assert _admin(svc, "DELETE", f"/v1/instances/{me.uuid}/password")[0] == 204
    assert svc.get("/openstack/latest/password") == (200, b"")
    assert _admin(svc, "DELETE", f"/v1/instances/{me.uuid}")[0] == 204
    assert svc.get("/openstack/latest/meta_data.json")[0] == 404
    # the OpenAPI document is served; the data listener has no admin routes
    assert _admin(svc, "GET", "/openapi.json", token=None)[0] == 200
    assert svc.get("/v1/instances")[0] == 404


def test_status_lines_carry_the_standard_reason_phrase(
    registry: Registry, db_url: str, start_service: Callable[..., Running]
) -> None:
    """201, 412 and 415 are the admin API's alone; they used to go out as '201 Unknown'."""
    svc = start_service(db_url, admin=True, admin_token=TOKEN)
    me = instance(ips=("127.0.0.9",))
    spec = json.dumps(instance_to_spec(me))
    assert svc.admin_port is not None
    seen = []
    for method, path, ctype, extra in [
        ("POST", "/v1/instances", "application/json", {}),
        ("POST", "/v1/instances", "application/json", {}),
        ("PUT", f"/v1/instances/{me.uuid}", "application/json", {"If-Match": '"7"'}),
        ("PUT", f"/v1/instances/{me.uuid}", "application/xml", {}),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", svc.admin_port, timeout=10)
        headers = {"Content-Type": ctype, "Authorization": f"Bearer {TOKEN}", **extra}
        try:
            conn.request(method, path, body=spec, headers=headers)
            resp = conn.getresponse()
            resp.read()
            seen.append((resp.status, resp.reason))
        finally:
            conn.close()
    assert seen == [
        (201, "Created"),
        (409, "Conflict"),
        (412, "Precondition Failed"),
        (415, "Unsupported Media Type"),
    ]
