"""The CLI's HTTP client against the admin API served on loopback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from metaboot.admin.client import AdminClient
from metaboot.errors import ConflictError, MetabootError, NotFoundError, SpecError
from metaboot.metadata.instance import instance_to_spec, parse_spec
from metaboot.registry import Registry
from tests.admin.harness import TOKEN, serve_unix
from tests.registry.specs import spec


def test_client_round_trip(base_url: str, registry: Registry) -> None:
    client = AdminClient(base_url, TOKEN)
    data = spec("web", ports=[("net-a", "10.0.0.5")])
    canonical = instance_to_spec(parse_spec(data))
    created = client.create(canonical)
    assert created["spec"] == canonical and created["generation"] == 1
    assert [i["uuid"] for i in client.list_instances()] == [data["uuid"]]
    assert client.list_instances(name="other") == []
    assert client.show(data["uuid"])["spec"] == canonical
    replaced = client.replace(data["uuid"], {**canonical, "name": "web2"}, generation=1)
    assert replaced["name"] == "web2" and replaced["generation"] == 2
    patched = client.patch(data["uuid"], {"meta": {"k": "v"}})
    assert patched["spec"]["meta"] == {"k": "v"}
    registry.password_set_once(data["uuid"], "cipher")
    assert client.password(data["uuid"]) == "cipher"
    client.clear_password(data["uuid"])
    assert client.password(data["uuid"]) == ""
    assert client.set_router("r/1", ["b", "a"]) == ["a", "b"]
    assert client.attach("r/1", ["c"]) == ["a", "b", "c"]
    client.detach("r/1", "b")
    assert client.router("r/1") == ["a", "c"]
    assert client.routers() == {"r/1": ["a", "c"]}
    client.delete_router("r/1")
    client.delete(data["uuid"])
    assert registry.list() == []


def test_client_errors_are_the_registry_s_errors(base_url: str) -> None:
    client = AdminClient(base_url, TOKEN)
    data = instance_to_spec(parse_spec(spec("web")))
    client.create(data)
    with pytest.raises(ConflictError, match="already exists"):
        client.create(data)
    with pytest.raises(NotFoundError, match="no instance"):
        client.show("00000000-0000-0000-0000-000000000000")
    with pytest.raises(ConflictError, match="generation 1, not 7"):
        client.replace(data["uuid"], data, generation=7)
    with pytest.raises(SpecError) as err:
        client.replace(data["uuid"], {**data, "hostname": "no spaces allowed"})
    assert err.value.field == "hostname"
    assert str(err.value).startswith("hostname: ")
    with pytest.raises(NotFoundError, match="no router"):
        client.router("nothing")


def test_bad_token_and_unreachable_api_say_so(base_url: str) -> None:
    with pytest.raises(MetabootError, match="refused the token: invalid bearer token"):
        AdminClient(base_url, "wrong").list_instances()
    with pytest.raises(MetabootError, match="refused the token: missing bearer token"):
        AdminClient(base_url, "").list_instances()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(MetabootError, match="cannot reach the admin API"):
            AdminClient(f"http://127.0.0.1:{port}", TOKEN, timeout=5).list_instances()
    with pytest.raises(MetabootError, match="must be http"):
        AdminClient("127.0.0.1:8776", TOKEN)
    with pytest.raises(MetabootError, match="cannot reach the admin API at unix:"):
        AdminClient("unix:/nonexistent/admin.sock", TOKEN).list_instances()


def test_client_over_a_unix_socket(app: Any, tmp_path: Path) -> None:
    """The service may put the admin API on a UNIX socket; the client follows it there."""
    path = tmp_path / "admin.sock"
    with serve_unix(app, path):
        client = AdminClient(f"unix:{path}", TOKEN)
        created = client.create(instance_to_spec(parse_spec(spec("sock"))))
        assert client.show(created["uuid"])["name"] == "sock"
