"""The registry's operations, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import logging
import uuid as uuidlib

import pytest

from metaboot.errors import ConflictError, MetabootError, NotFoundError
from metaboot.metadata.instance import instance_to_spec
from metaboot.registry import PASSWORD_MAX_BYTES, GenerationMismatch, Registry
from tests.registry.specs import instance


def test_add_get_list_round_trip(registry: Registry) -> None:
    a = instance("alpha", ports=[("net-a", "10.0.0.5")], meta={"role": "db"})
    b = instance("beta")
    assert registry.add(a).generation == 1
    registry.add(b)
    assert registry.get(a.uuid) == a
    assert instance_to_spec(registry.get(a.uuid)) == instance_to_spec(a)
    assert [i.uuid for i in registry.list()] == [a.uuid, b.uuid]  # ordered by name
    record = registry.get_record(a.uuid)
    assert record.generation == 1 and not record.password_set
    assert record.created_at == record.updated_at and record.created_at.endswith("Z")


def test_add_refuses_a_duplicate_uuid_and_keeps_the_first(registry: Registry) -> None:
    first = instance("first")
    registry.add(first)
    with pytest.raises(ConflictError, match=first.uuid):
        registry.add(instance("second", uuid=first.uuid))
    assert registry.get(first.uuid).name == "first"


def test_unknown_uuid_is_not_found_everywhere(registry: Registry) -> None:
    ghost = str(uuidlib.uuid4())
    for call in (
        lambda: registry.get(ghost),
        lambda: registry.get_record(ghost),
        lambda: registry.generation(ghost),
        lambda: registry.update(instance(uuid=ghost)),
        lambda: registry.delete(ghost),
        lambda: registry.password_get(ghost),
        lambda: registry.password_set_once(ghost, "x"),
        lambda: registry.password_set_once(ghost, ""),
        lambda: registry.password_clear(ghost),
    ):
        with pytest.raises(NotFoundError, match=ghost):
            call()


def test_update_replaces_spec_and_addresses_and_bumps_generation(registry: Registry) -> None:
    old = instance("web", ports=[("net-a", "10.0.0.5")])
    registry.add(old)
    new = instance("web2", uuid=old.uuid, ports=[("net-b", "10.0.1.7")])
    written = registry.update(new)
    assert written.generation == 2
    assert registry.get(old.uuid) == new
    assert registry.lookup("10.0.0.5") == []
    assert registry.lookup("10.0.1.7", network_id="net-b") == [old.uuid]
    record = registry.get_record(old.uuid)
    assert record.generation == 2 and record.updated_at >= record.created_at


def test_update_with_a_stale_generation_is_refused(registry: Registry) -> None:
    inst = instance("web")
    registry.add(inst)
    registry.update(inst, expected_generation=1)
    with pytest.raises(GenerationMismatch, match="generation 2, not 1"):
        registry.update(instance("lost", uuid=inst.uuid), expected_generation=1)
    assert registry.get(inst.uuid).name == "web"


def test_delete_removes_the_instance_and_its_addresses(registry: Registry) -> None:
    inst = instance("gone", ports=[("net-a", "10.0.0.9")])
    registry.add(inst)
    registry.delete(inst.uuid)
    with pytest.raises(NotFoundError):
        registry.get(inst.uuid)
    assert registry.lookup("10.0.0.9") == []
    registry.add(inst)  # the uuid is free again
    assert registry.lookup("10.0.0.9") == [inst.uuid]


def test_lookup_direct_network_and_router_modes(registry: Registry) -> None:
    a = instance("a", ports=[("net-a", "10.0.0.5")])
    b = instance("b", ports=[("net-b", "10.0.0.5")])
    c = instance("c", ports=[("net-c", "10.0.0.6")])
    for inst in (a, b, c):
        registry.add(inst)
    # Direct mode sees every network: the overlapping address is ambiguous.
    assert registry.lookup("10.0.0.5") == sorted([a.uuid, b.uuid])
    assert registry.lookup("10.0.0.5", network_id="net-a") == [a.uuid]
    assert registry.lookup("10.0.0.5", network_id="net-b") == [b.uuid]
    assert registry.lookup("10.0.0.5", network_id="net-c") == []
    registry.add_router("r-1", ["net-b", "net-c"])
    assert registry.lookup("10.0.0.5", router_id="r-1") == [b.uuid]
    assert registry.lookup("10.0.0.6", router_id="r-1") == [c.uuid]
    assert registry.lookup("10.0.0.5", router_id="r-unknown") == []
    assert registry.lookup("not an address") == []
    with pytest.raises(ValueError, match="not both"):
        registry.lookup("10.0.0.5", network_id="net-a", router_id="r-1")


def test_lookup_normalises_address_spellings(registry: Registry) -> None:
    v6 = instance("v6", ports=[("net-6", "2001:DB8:0:0::0010"), ("net-4", "192.0.2.10")])
    registry.add(v6)
    assert registry.lookup("2001:db8::10") == [v6.uuid]
    assert registry.lookup("2001:0db8::0:10", network_id="net-6") == [v6.uuid]
    assert registry.lookup("::ffff:192.0.2.10") == [v6.uuid]  # IPv4-mapped from a v6 socket
    assert registry.lookup("fe80::1%eth0") == []


def test_duplicate_addresses_are_stored_with_a_warning(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    a = instance("a", ports=[("net-a", "10.0.0.5")])
    b = instance("b", ports=[("net-a", "10.0.0.5")])
    assert registry.add(a).warnings == ()
    with caplog.at_level(logging.INFO, logger="metaboot.registry"):
        written = registry.add(b)
    assert len(written.warnings) == 1
    assert "10.0.0.5" in written.warnings[0] and a.uuid in written.warnings[0]
    # The writer gets the warning; the service's log keeps a note at info (a CLI user would
    # otherwise see it twice: once printed, once through logging's last-resort handler).
    [note] = [r for r in caplog.records if a.uuid in r.getMessage()]
    assert note.levelno == logging.INFO
    assert registry.lookup("10.0.0.5", network_id="net-a") == sorted([a.uuid, b.uuid])
    # Moving b away clears the clash; the update reports nothing.
    assert registry.update(instance("b", uuid=b.uuid, ports=[("net-b", "10.0.0.5")])).warnings == ()


def test_routers_add_set_remove_list(registry: Registry) -> None:
    assert registry.routers() == {}
    assert registry.add_router("r-1", ["net-b", "net-a"]) == ["net-a", "net-b"]
    assert registry.add_router("r-1", ["net-a", "net-c"]) == ["net-a", "net-b", "net-c"]
    registry.add_router("r-2", ["net-a"])
    assert registry.routers() == {"r-1": ["net-a", "net-b", "net-c"], "r-2": ["net-a"]}
    assert registry.set_router("r-2", ["net-z"]) == ["net-z"]
    registry.remove_router("r-1", ["net-b"])
    assert registry.router("r-1") == ["net-a", "net-c"]
    with pytest.raises(NotFoundError, match="has no network net-b"):
        registry.remove_router("r-1", ["net-b"])
    registry.remove_router("r-1")
    with pytest.raises(NotFoundError, match="no router r-1"):
        registry.router("r-1")
    with pytest.raises(NotFoundError, match="no router r-1"):
        registry.remove_router("r-1")
    with pytest.raises(MetabootError, match="at least one network"):
        registry.add_router("r-3", [])
    assert registry.routers() == {"r-2": ["net-z"]}


def test_password_is_set_once_read_and_cleared(registry: Registry) -> None:
    inst = instance("pw")
    registry.add(inst)
    assert registry.password_get(inst.uuid) == ""
    assert registry.password_set_once(inst.uuid, "") is True  # empty means unset, nothing stored
    assert registry.password_set_once(inst.uuid, "c2VjcmV0") is True
    assert registry.password_set_once(inst.uuid, "other") is False
    assert registry.password_get(inst.uuid) == "c2VjcmV0"
    assert registry.get_record(inst.uuid).password_set
    # Replacing the spec keeps the password; clearing lets the guest post again.
    registry.update(instance("pw2", uuid=inst.uuid))
    assert registry.password_get(inst.uuid) == "c2VjcmV0"
    registry.password_clear(inst.uuid)
    assert registry.password_get(inst.uuid) == ""
    assert registry.password_set_once(inst.uuid, "again") is True


def test_password_limit_is_nova_s_1020_bytes(registry: Registry) -> None:
    inst = instance("pw")
    registry.add(inst)
    with pytest.raises(MetabootError, match="1020 bytes"):
        registry.password_set_once(inst.uuid, "x" * (PASSWORD_MAX_BYTES + 1))
    assert registry.password_get(inst.uuid) == ""
    assert registry.password_set_once(inst.uuid, "x" * PASSWORD_MAX_BYTES)
    assert registry.password_get(inst.uuid) == "x" * PASSWORD_MAX_BYTES


def test_every_write_bumps_the_generation(registry: Registry) -> None:
    inst = instance("gen")
    registry.add(inst)
    seen = [registry.generation(inst.uuid)]
    registry.update(inst)
    seen.append(registry.generation(inst.uuid))
    registry.password_set_once(inst.uuid, "pw")
    seen.append(registry.generation(inst.uuid))
    registry.password_set_once(inst.uuid, "lost")  # refused: no write
    seen.append(registry.generation(inst.uuid))
    registry.password_clear(inst.uuid)
    seen.append(registry.generation(inst.uuid))
    assert seen == [1, 2, 3, 3, 4]


def test_database_errors_do_not_carry_secrets(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing statement's message must not include its parameters (user-data, passwords)."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from metaboot.registry.schema import instances

    inst = instance("secretive", user_data="#cloud-config\npassword: hunter2\n")
    registry.add(inst)
    with pytest.raises(IntegrityError) as err, registry.engine.begin() as conn:
        conn.execute(
            insert(instances).values(
                uuid=inst.uuid,
                name="dup",
                project_id="",
                spec='{"user_data": "hunter2"}',
                password="hunter2",
                generation=1,
                created_at="x",
                updated_at="x",
            )
        )
    assert "hunter2" not in str(err.value)
