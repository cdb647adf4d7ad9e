"""The OpenStack-format documents, per version, with nova's keys, order and encoding.

JSON is encoded as nova encodes it (``json.dumps`` defaults: ``", "``/``": "`` separators,
ASCII escapes, insertion order), so a guest that compares bytes sees no difference.
``random_seed`` is left as a gap (see :func:`meta_data`) that the transport fills per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from metaboot.metadata import versions as v
from metaboot.metadata.instance import Instance

META_DATA = "meta_data.json"
USER_DATA = "user_data"
PASSWORD = "password"
VENDOR_DATA = "vendor_data.json"
NETWORK_DATA = "network_data.json"
VENDOR_DATA2 = "vendor_data2.json"
CONTENT_DIR = "content"


def full_hostname(instance: Instance, dhcp_domain: str) -> str:
    """nova appends ``dhcp_domain`` (default ``novalocal``); ours is empty unless configured."""
    return f"{instance.hostname}.{dhcp_domain}" if dhcp_domain else instance.hostname


def content_key(index: int) -> str:
    return f"{index:04d}"


def version_listing(instance: Instance, version: str) -> list[str]:
    """What ``/openstack/<version>`` lists, in nova's order."""
    names = [META_DATA]
    if instance.user_data is not None:
        names.append(USER_DATA)
    if v.since(version, v.GRIZZLY):
        names.append(PASSWORD)
    if v.since(version, v.HAVANA):
        names.append(VENDOR_DATA)
    if v.since(version, v.LIBERTY):
        names.append(NETWORK_DATA)
    if v.since(version, v.NEWTON_TWO):
        names.append(VENDOR_DATA2)
    return names


def files_in(version: str, instance: Instance, *, drive: bool) -> list[str]:
    """The documents a version has as files (a drive has no ``password``)."""
    return [name for name in version_listing(instance, version) if not (drive and name == PASSWORD)]


def _devices(instance: Instance, version: str) -> list[dict[str, Any]]:
    expose_vlan = v.since(version, v.OCATA)
    expose_trusted = v.since(version, v.ROCKY)
    out: list[dict[str, Any]] = []
    for device in instance.devices:
        kind = device["type"]
        entry: dict[str, Any] = {}
        if kind == "nic":
            if expose_vlan and device.get("vlan") is not None:
                entry["vlan"] = device["vlan"]
            if expose_trusted:
                entry["vf_trusted"] = bool(device.get("vf_trusted", False))
            entry["type"] = "nic"
            entry["mac"] = device["mac"]
            # A nic with nothing to tell (no tags, vlan or vf_trusted) is not exposed.
            if not ("tags" in device or "vlan" in entry or "vf_trusted" in entry):
                continue
        elif kind == "disk":
            entry["type"] = "disk"
            for key in ("serial", "path"):
                if key in device:
                    entry[key] = device[key]
        elif kind == "share" and v.since(version, v.EPOXY):
            entry["type"] = "share"
            entry["share_id"] = device["share_id"]
            entry["tag"] = device["tag"]
        else:
            continue
        entry["bus"] = device.get("bus", "none")
        entry["address"] = device.get("address", "none")
        if "tags" in device:
            entry["tags"] = list(device["tags"])
        out.append(entry)
    return out


def meta_data(
    instance: Instance,
    version: str,
    *,
    dhcp_domain: str,
    admin_pass: str | None = None,
) -> tuple[bytes, int | None]:
    """meta_data.json for a resolved version, as (body, seed_at).

    From Grizzly on, the document carries ``random_seed``: 512 random bytes, fresh on every
    read. The body is returned with an empty string value there and ``seed_at`` is the byte
    offset, inside the quotes, where the base64 text goes; None for Folsom.
    """
    head: dict[str, Any] = {"uuid": instance.uuid}
    if instance.meta:
        head["meta"] = dict(instance.meta)
    if instance.files:
        head["files"] = [
            {"path": f.path, "content_path": f"/{CONTENT_DIR}/{content_key(i)}"}
            for i, f in enumerate(instance.files)
        ]
    if admin_pass is not None:
        head["admin_pass"] = admin_pass
    if instance.keys:
        first = instance.keys[0]
        head["public_keys"] = {first.name: first.data}
        head["keys"] = [{"name": k.name, "type": k.type, "data": k.data} for k in instance.keys]
    head["hostname"] = full_hostname(instance, dhcp_domain)
    head["name"] = instance.name
    head["launch_index"] = instance.launch_index
    head["availability_zone"] = instance.availability_zone

    tail: dict[str, Any] = {}
    if v.since(version, v.LIBERTY):
        tail["project_id"] = instance.project_id
    if v.since(version, v.NEWTON_ONE):
        tail["devices"] = _devices(instance, version)
    if v.since(version, v.VICTORIA):
        tail["dedicated_cpus"] = list(instance.dedicated_cpus)

    if not v.since(version, v.GRIZZLY):
        return json.dumps(head).encode("ascii"), None
    prefix = json.dumps(head)[:-1] + ', "random_seed": "'
    suffix = '"' + ((", " + json.dumps(tail)[1:]) if tail else "}")
    return (prefix + suffix).encode("ascii"), len(prefix)


def vendor_data(static: Mapping[str, Any], instance: Instance) -> dict[str, Any]:
    """The StaticJSON provider's document: the deployment's file, then the instance's own
    ``vendor_data`` keys over it."""
    merged = dict(static)
    merged.update(instance.vendor_data)
    return merged


def vendor_data2(static: Mapping[str, Any] | None, dynamic: Mapping[str, Any]) -> dict[str, Any]:
    """vendor_data2.json: ``static`` first (when that provider is on), then one key per
    dynamic target in configured order; a name already present is not overwritten."""
    doc: dict[str, Any] = {}
    if static is not None:
        doc["static"] = dict(static)
    for name, value in dynamic.items():
        doc.setdefault(name, value)
    return doc


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode("ascii")
