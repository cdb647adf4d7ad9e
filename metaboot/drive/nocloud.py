"""The NoCloud seed: ``meta-data``, ``user-data`` and ``network-config`` for cloud-init.

Its values come from the same documents the service and the config drive serve (the latest
``meta_data.json`` and ``network_data.json``), so a guest reads the same instance-id, hostname,
keys, user-data and network whichever source it finds. Like cloud-init's own OpenStack reader,
the keys are meta_data's ``public_keys`` (nova puts only the first keypair there).
cloud-init requires ``user-data`` to exist, so it is written empty when the instance has none.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from metaboot.drive.netconfig import network_config_v1
from metaboot.metadata.tree import DocumentTree

META_DATA = "meta-data"
USER_DATA = "user-data"
NETWORK_CONFIG = "network-config"
LABEL = "cidata"


def _no_seed(n: int) -> bytes:
    return bytes(n)


def _json_document(tree: DocumentTree, path: str) -> dict[str, Any]:
    doc = tree.lookup(path)
    if doc is None:
        return {}
    value = json.loads(doc.render(_no_seed))
    return value if isinstance(value, dict) else {}


def _dump(value: Any) -> bytes:
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True)
    return text.encode("utf-8")


def nocloud_files(tree: DocumentTree) -> dict[str, bytes]:
    """The seed's files for the instance behind ``tree``."""
    meta = _json_document(tree, "/openstack/latest/meta_data.json")
    meta_data: dict[str, Any] = {
        "instance-id": meta.get("uuid", tree.instance.uuid),
        "local-hostname": meta.get("hostname", tree.instance.hostname),
    }
    keys = meta.get("public_keys")
    if isinstance(keys, dict) and keys:
        meta_data["public-keys"] = [str(key) for key in keys.values()]
    files = {
        META_DATA: _dump(meta_data),
        USER_DATA: tree.instance.user_data or b"",
    }
    network = network_config_v1(_json_document(tree, "/openstack/latest/network_data.json"))
    if network is not None:
        files[NETWORK_CONFIG] = _dump(network)
    return files
