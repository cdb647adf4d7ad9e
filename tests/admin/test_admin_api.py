"""The admin API: behaviour, errors and conformance to its own OpenAPI document."""

from __future__ import annotations

import hmac
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from metaboot.admin import api as api_module
from metaboot.admin.api import AdminApp
from metaboot.admin.openapi import SPEC, document
from metaboot.admin.routes import ROUTES
from metaboot.errors import ConfigError
from metaboot.metadata.instance import instance_to_spec, parse_spec
from metaboot.registry import Registry
from tests.admin.harness import TOKEN, Api
from tests.registry.specs import spec


def _fill(template: str, uuid: str) -> str:
    return (
        template.replace("{uuid}", uuid)
        .replace("{router_id}", "r-1")
        .replace("{network_id}", "net-a")
    )


def test_every_documented_status_is_produced(registry: Registry) -> None:
    api = Api(AdminApp(registry, TOKEN, max_body=4096))
    data = spec("web", ports=[("net-a", "10.0.0.5")])
    uuid = data["uuid"]
    ghost = str(uuidlib.uuid4())
    big = {"network_ids": ["n" * 5000]}
    yaml_type = {"Content-Type": "application/yaml"}
    xml = {"Content-Type": "application/xml"}
    inst = f"/v1/instances/{uuid}"

    assert api("GET", "/openapi.json", auth=False).status == 200
    assert api("POST", "/v1/instances", data).status == 201
    assert api("POST", "/v1/instances", data).status == 409
    assert api("POST", "/v1/instances", {**data, "uuid": "nope"}).status == 400
    assert api("POST", "/v1/instances", {**data, "meta": {"k": "v" * 5000}}).status == 413
    assert api("POST", "/v1/instances", raw=b"<spec/>", headers=xml).status == 415
    assert api("GET", "/v1/instances").status == 200
    assert api("GET", inst).status == 200
    assert api("GET", f"/v1/instances/{ghost}").status == 404
    for method in ("PUT", "PATCH"):
        assert api(method, inst, {"name": "web2"}).status == 200
        assert api(method, inst, {"hostname": "bad host"}).status == 400
        assert api(method, f"/v1/instances/{ghost}", {"name": "x"}).status == 404
        stale = {"If-Match": '"1"'}
        assert api(method, inst, {"name": "x"}, headers=stale).status == 412
        assert api(method, inst, {"meta": {"k": "v" * 5000}}).status == 413
        assert api(method, inst, raw=b"<spec/>", headers=xml).status == 415
    assert (
        api("PUT", inst, raw=f"uuid: {uuid}\nname: y\n".encode(), headers=yaml_type).status == 200
    )
    assert api("GET", f"{inst}/password").status == 200
    assert api("GET", f"/v1/instances/{ghost}/password").status == 404
    assert api("DELETE", f"{inst}/password").status == 204
    assert api("DELETE", f"/v1/instances/{ghost}/password").status == 404
    assert api("GET", "/v1/routers").status == 200
    assert api("GET", "/v1/routers/r-1").status == 404
    assert api("PUT", "/v1/routers/r-1", {"network_ids": ["net-a"]}).status == 200
    assert api("PUT", "/v1/routers/r-1", {"network_ids": []}).status == 400
    assert api("PUT", "/v1/routers/r-1", big).status == 413
    assert api("PUT", "/v1/routers/r-1", raw=b"<r/>", headers=xml).status == 415
    assert api("POST", "/v1/routers/r-1/networks", {"network_ids": ["net-b"]}).status == 200
    assert api("POST", "/v1/routers/r-1/networks", {"networks": ["x"]}).status == 400
    assert api("POST", "/v1/routers/r-1/networks", big).status == 413
    assert api("POST", "/v1/routers/r-1/networks", raw=b"<r/>", headers=xml).status == 415
    assert api("GET", "/v1/routers/r-1").status == 200
    assert api("DELETE", "/v1/routers/r-1/networks/net-b").status == 204
    assert api("DELETE", "/v1/routers/r-1/networks/net-b").status == 404
    assert api("DELETE", "/v1/routers/r-1").status == 204
    assert api("DELETE", "/v1/routers/r-1").status == 404
    assert api("DELETE", inst).status == 204
    assert api("DELETE", inst).status == 404
    for route in ROUTES:
        if route.auth:
            assert api(route.method, _fill(route.template, uuid), auth=False).status == 401

    documented = {
        (route.handler, int(status))
        for route in ROUTES
        for status in document()["paths"][route.template][route.method.lower()]["responses"]
    }
    assert documented - api.seen == set(), "documented but never produced"
    assert api.seen - documented == set()


def test_create_show_list_and_the_canonical_spec(api: Api, registry: Registry) -> None:
    data = spec("web", ports=[("net-a", "10.0.0.5")], user_data="#cloud-config\n")
    created = api("POST", "/v1/instances", data)
    assert created.status == 201
    assert created.headers["Location"] == f"/v1/instances/{data['uuid']}"
    assert created.headers["ETag"] == '"1"'
    assert created.json["warnings"] == []
    assert created.json["addresses"] == [{"network_id": "net-a", "ip": "10.0.0.5"}]
    assert created.json["spec"] == instance_to_spec(parse_spec(data))
    assert registry.get(data["uuid"]) == parse_spec(data)
    shown = api("GET", f"/v1/instances/{data['uuid'].upper()}")  # any uuid spelling
    assert shown.json == {k: v for k, v in created.json.items() if k != "warnings"}
    listed = api("GET", "/v1/instances").json["instances"]
    assert [i["uuid"] for i in listed] == [data["uuid"]] and "spec" not in listed[0]
    assert created.headers["Cache-Control"] == "no-store"


def test_list_filters_by_name_and_project(api: Api) -> None:
    for name, project in (("a", "p1"), ("b", "p1"), ("c", "p2")):
        assert api("POST", "/v1/instances", spec(name, project_id=project)).status == 201
    names = lambda q: [i["name"] for i in api("GET", f"/v1/instances?{q}").json["instances"]]  # noqa: E731
    assert names("project_id=p1") == ["a", "b"]
    assert names("name=c") == ["c"]
    assert names("name=a&name=c") == ["a", "c"]
    assert names("project_id=nobody") == []


def test_yaml_body_is_accepted(api: Api) -> None:
    uuid = str(uuidlib.uuid4())
    body = f"uuid: {uuid}\nname: yaml-vm\nmeta:\n  role: db\n".encode()
    for ctype in ("application/yaml", "text/yaml", "application/x-www-form-urlencoded", ""):
        answer = api("POST", "/v1/instances", raw=body, headers={"Content-Type": ctype})
        assert answer.status in (201, 409)
    assert api("GET", f"/v1/instances/{uuid}").json["spec"]["meta"] == {"role": "db"}


def test_spec_errors_name_the_field(api: Api) -> None:
    data = spec("web")
    data["ports"] = [{"network_id": "n", "mac": "zz", "fixed_ips": []}]
    answer = api("POST", "/v1/instances", data)
    assert answer.status == 400
    assert answer.json["field"] == "ports[0].mac"
    assert "MAC" in answer.json["error"]
    answer = api("POST", "/v1/instances", {**spec(), "colour": "blue"})
    assert answer.json["field"] == "colour" and "unknown field" in answer.json["error"]


@pytest.mark.parametrize(
    ("raw", "ctype", "message"),
    [
        (b"", "application/json", "body is empty"),
        (b"{", "application/json", "not valid JSON: Expecting property name"),
        (b"a: [1\n", "application/yaml", "line 2"),
        (b"a: &x [1]\nb: *x\n", "application/yaml", "aliases"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
        (b"[1, 2]", "application/json", "must be a mapping"),
    ],
)
def test_unreadable_bodies_are_400(api: Api, raw: bytes, ctype: str, message: str) -> None:
    answer = api("POST", "/v1/instances", raw=raw, headers={"Content-Type": ctype})
    assert answer.status == 400
    assert message in answer.json["error"]
    assert answer.json["field"] == ""


def test_user_data_file_is_never_read_on_the_server(api: Api, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("server-side secret")
    answer = api("POST", "/v1/instances", {**spec(), "user_data_file": str(secret)})
    assert answer.status == 400 and answer.json["field"] == "user_data_file"
    assert api("GET", "/v1/instances").json["instances"] == []


def test_put_replaces_keeps_password_and_checks_uuid_and_generation(
    api: Api, registry: Registry
) -> None:
    data = spec("web", ports=[("net-a", "10.0.0.5")])
    uuid = data["uuid"]
    api("POST", "/v1/instances", data)
    registry.password_set_once(uuid, "encrypted")
    body = {k: v for k, v in data.items() if k != "uuid"}  # the URL supplies the uuid
    answer = api("PUT", f"/v1/instances/{uuid}", {**body, "name": "renamed"})
    assert answer.status == 200 and answer.json["generation"] == 3
    assert answer.headers["ETag"] == '"3"'
    assert answer.json["password_set"] is True
    assert registry.password_get(uuid) == "encrypted"
    other = api("PUT", f"/v1/instances/{uuid}", {**data, "uuid": str(uuidlib.uuid4())})
    assert other.status == 400 and other.json["field"] == "uuid"
    assert api("PUT", f"/v1/instances/{uuid}", data, headers={"If-Match": '"3"'}).status == 200
    assert api("PUT", f"/v1/instances/{uuid}", data, headers={"If-Match": "*"}).status == 200
    assert api("PUT", f"/v1/instances/{uuid}", data, headers={"If-Match": 'W/"5"'}).status == 200
    bad = api("PUT", f"/v1/instances/{uuid}", data, headers={"If-Match": "yesterday"})
    assert bad.status == 400 and bad.json["field"] == "If-Match"
    assert api("PUT", "/v1/instances/not-a-uuid", data).status == 404


def test_patch_merges_into_the_stored_spec(api: Api, registry: Registry) -> None:
    data = spec("web", meta={"a": "1", "b": "2"}, user_data="#!/bin/sh\necho hi\n")
    uuid = data["uuid"]
    api("POST", "/v1/instances", data)
    answer = api(
        "PATCH",
        f"/v1/instances/{uuid}",
        {"meta": {"b": None, "c": "3"}, "user_data": "#cloud-config\n"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert answer.status == 200, answer.json
    inst = registry.get(uuid)
    assert dict(inst.meta) == {"a": "1", "c": "3"}
    assert inst.user_data == b"#cloud-config\n"
    assert inst.name == "web"
    # null removes a field back to its default
    api("PATCH", f"/v1/instances/{uuid}", {"user_data_b64": None})
    assert registry.get(uuid).user_data is None
    bad = api("PATCH", f"/v1/instances/{uuid}", {"ports": [{"network_id": "n"}]})
    assert bad.status == 400 and bad.json["field"] == "ports[0].mac"
    assert api("PATCH", f"/v1/instances/{uuid}", [1]).status == 400


def test_password_routes_follow_nova(api: Api, registry: Registry) -> None:
    data = spec("pw")
    uuid = data["uuid"]
    api("POST", "/v1/instances", data)
    assert api("GET", f"/v1/instances/{uuid}/password").json == {"password": ""}
    registry.password_set_once(uuid, "b64-ciphertext")
    assert api("GET", f"/v1/instances/{uuid}/password").json == {"password": "b64-ciphertext"}
    answer = api("DELETE", f"/v1/instances/{uuid}/password")
    assert answer.status == 204 and answer.body == b""
    assert registry.password_get(uuid) == ""
    assert registry.password_set_once(uuid, "new") is True


def test_routers_over_the_api(api: Api, registry: Registry) -> None:
    assert api("PUT", "/v1/routers/r%2F1", {"network_ids": ["b", "a"]}).json == {
        "router_id": "r/1",
        "network_ids": ["a", "b"],
    }
    assert api("POST", "/v1/routers/r%2F1/networks", {"network_ids": ["c"]}).json[
        "network_ids"
    ] == ["a", "b", "c"]
    assert registry.routers() == {"r/1": ["a", "b", "c"]}
    assert api("DELETE", "/v1/routers/r%2F1/networks/b").status == 204
    assert api("GET", "/v1/routers").json == {
        "routers": [{"router_id": "r/1", "network_ids": ["a", "c"]}]
    }
    bad = api("PUT", "/v1/routers/r2", {"network_ids": ["", "x"]})
    assert bad.status == 400 and bad.json["field"] == "network_ids"


def test_duplicate_addresses_come_back_as_warnings(api: Api) -> None:
    first = spec("a", ports=[("net-a", "10.0.0.5")])
    api("POST", "/v1/instances", first)
    answer = api("POST", "/v1/instances", spec("b", ports=[("net-a", "10.0.0.5")]))
    assert answer.status == 201
    assert len(answer.json["warnings"]) == 1 and first["uuid"] in answer.json["warnings"][0]


def test_unknown_paths_and_methods(api: Api) -> None:
    assert api("GET", "/v2/instances").status == 404
    answer = api("PATCH", "/v1/routers")
    assert answer.status == 405 and answer.headers["Allow"] == "GET"
    assert api("GET", "/v1/instances/").status == 200  # trailing slash is the same resource


def test_internal_errors_are_500_without_details(
    api: Api, registry: Registry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> Any:
        raise RuntimeError("database exploded: password=hunter2")

    monkeypatch.setattr(registry, "list_records", boom)
    api.allow_500 = True
    answer = api("GET", "/v1/instances")
    assert answer.status == 500
    assert "hunter2" not in answer.body.decode()
    assert "database exploded" in caplog.text  # the operator sees it in the log


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_missing_or_bad_token_is_401(api: Api, headers: dict[str, str]) -> None:
    answer = api("GET", "/v1/instances", headers=headers, auth=False)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in answer.body.decode()
    # Unauthenticated callers cannot tell existing routes from missing ones.
    assert api("GET", "/v1/secret-route", headers=headers, auth=False).status == 401


def test_token_is_accepted_in_any_header_case(api: Api) -> None:
    for name, scheme in (("authorization", "bearer"), ("AUTHORIZATION", "BEARER")):
        answer = api("GET", "/v1/instances", headers={name: f"{scheme} {TOKEN}"}, auth=False)
        assert answer.status == 200


def test_token_comparison_is_constant_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_module.hmac, "compare_digest", spy)
    assert (
        api("GET", "/v1/instances", headers={"Authorization": "Bearer x"}, auth=False).status == 401
    )
    assert api("GET", "/v1/instances").status == 200
    assert len(calls) == 2
    # Fixed-length digests are compared, never the raw token (whose length would leak).
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_openapi_is_public_and_everything_else_is_not(api: Api) -> None:
    answer = api("GET", "/openapi.json", auth=False)
    assert answer.status == 200 and answer.json["openapi"].startswith("3.1")


def test_an_empty_token_is_refused_unless_explicitly_allowed(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="bearer token"):
        AdminApp(registry, "")
    open_app = Api(AdminApp(registry, "", allow_unauthenticated=True))
    assert open_app("GET", "/v1/instances", auth=False).status == 200


# -- the document itself ----------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1() -> None:
    from jsonschema import Draft202012Validator

    doc = document()
    for name, schema in doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema), name
    assert set(doc["paths"]) == {r.template for r in ROUTES}
    operations = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operations) == len(set(operations)) == len(ROUTES)


def test_spec_schema_lists_exactly_the_spec_fields() -> None:
    canonical = instance_to_spec(parse_spec(spec()))
    assert set(SPEC["properties"]) == set(canonical) | {"user_data"}
    # and the canonical form of a rich spec validates against it
    from jsonschema import Draft202012Validator

    rich = parse_spec(
        spec(
            "rich",
            ports=[("net-a", "10.0.0.5"), ("net-b", "2001:db8::5")],
            keys=[{"name": "k", "type": "ssh", "data": "ssh-ed25519 AAAA k"}],
            files=[{"path": "/etc/motd", "content": "hi"}],
            devices=[{"type": "disk", "bus": "scsi", "address": "0:0", "serial": "x"}],
            user_data="#cloud-config\n",
            vendor_data={"a": {"b": 1}},
            block_device_mapping={"ephemeral0": "/dev/vdb"},
            dedicated_cpus=[1],
            ec2_id=5,
        )
    )
    Draft202012Validator(SPEC).validate(instance_to_spec(rich))
