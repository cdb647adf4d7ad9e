"""The JSON shapes of registry objects, shared by the admin API and the CLI's direct ``--db``
mode so that both print exactly the same thing."""

from __future__ import annotations

from typing import Any

from metaboot.metadata.instance import instance_to_spec
from metaboot.registry import Record, Written


def summary(record: Record) -> dict[str, Any]:
    """An instance in a list: identity, addresses and bookkeeping, without the (large) spec."""
    inst = record.instance
    return {
        "uuid": inst.uuid,
        "name": inst.name,
        "hostname": inst.hostname,
        "project_id": inst.project_id,
        "addresses": [{"network_id": net, "ip": ip} for net, ip in inst.addresses()],
        "generation": record.generation,
        "password_set": record.password_set,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def detail(record: Record, written: Written | None = None) -> dict[str, Any]:
    """One instance in full: the summary plus its canonical spec (and any write warnings)."""
    view = summary(record)
    view["spec"] = instance_to_spec(record.instance)
    if written is not None:
        view["warnings"] = list(written.warnings)
    return view


def router(router_id: str, network_ids: list[str]) -> dict[str, Any]:
    return {"router_id": router_id, "network_ids": list(network_ids)}
