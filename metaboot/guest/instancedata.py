"""instance-data JSON: what ``metaboot query`` and jinja templates see.

The same shape as cloud-init's ``/run/cloud-init/instance-data.json`` — standardised ``v1``
keys (with the hyphenated aliases), the raw documents under ``ds`` — so scripts written for
``cloud-init query`` carry over. Two files: the full one readable by root only, and a
world-readable one with sensitive values replaced.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from metaboot.guest import layout, volatile
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

REDACTED = "redacted for non-root user"
# Paths (slash-separated) that only root may read.
SENSITIVE_KEYS = [
    "ds/meta_data/admin_pass",
    "ds/vendor_data",
    "ds/vendor_data2",
    "ds/ec2_metadata/iam/security-credentials",
    "ds/meta_data/iam/security-credentials",
]
_CLOUD_NAMES = {"openstack": "openstack", "ec2": "ec2", "nocloud": "nocloud"}


def os_release(root: Root) -> dict[str, str]:
    values: dict[str, str] = {}
    text = root.read_text("/etc/os-release", default="") or root.read_text(
        "/usr/lib/os-release", default=""
    )
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def build(data: InstanceData, root: Root) -> dict[str, Any]:
    """The full (sensitive) instance-data document."""
    release = os_release(root)
    uname = os.uname()
    cloud = _CLOUD_NAMES.get(data.platform, data.platform)
    v1: dict[str, Any] = {
        "_beta_keys": ["subplatform"],
        "availability_zone": data.availability_zone,
        "cloud_id": cloud,
        "cloud_name": cloud,
        "distro": release.get("ID", ""),
        "distro_release": release.get("VERSION_CODENAME", ""),
        "distro_version": release.get("VERSION_ID", ""),
        "instance_id": data.instance_id,
        "kernel_release": uname.release,
        "local_hostname": data.local_hostname,
        "machine": uname.machine,
        "platform": data.platform,
        "public_ssh_keys": list(data.public_keys),
        "python_version": ".".join(str(p) for p in sys.version_info[:3]),
        "region": data.metadata.get("region") if isinstance(data.metadata, dict) else None,
        "subplatform": data.subplatform,
        "system_platform": f"{uname.sysname}-{uname.release}-{uname.machine}",
        "variant": release.get("ID", ""),
        "source": data.source,
        "service_url": data.service_url,
    }
    for key in ("availability_zone", "cloud_name", "instance_id", "local_hostname"):
        v1[key.replace("_", "-")] = v1[key]
    ds: dict[str, Any] = {
        "_doc": "EXPERIMENTAL: the source's documents as read; their shape may change.",
        "meta_data": data.metadata,
    }
    if data.network_data is not None:
        ds["network_json"] = data.network_data
    if data.network_config is not None:
        ds["network_config"] = data.network_config
    if data.ec2_metadata is not None:
        ds["ec2_metadata"] = data.ec2_metadata
    if data.vendor_data is not None and not isinstance(data.vendor_data, bytes):
        ds["vendor_data"] = data.vendor_data
    if data.vendor_data2 is not None:
        ds["vendor_data2"] = data.vendor_data2
    return {
        "_doc": "metaboot instance data; 'metaboot query KEY' reads it (v1.* keys are stable).",
        "base64_encoded_keys": [],
        "ds": ds,
        "sensitive_keys": list(SENSITIVE_KEYS),
        "v1": v1,
    }


def redact(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every sensitive path that is present replaced by a notice."""
    out: dict[str, Any] = dict(json.loads(json.dumps(doc, default=str)))
    for path in doc.get("sensitive_keys", SENSITIVE_KEYS):
        parts = path.split("/")
        node: Any = out
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            node[parts[-1]] = REDACTED
    return out


def write(root: Root, doc: Mapping[str, Any]) -> None:
    root.makedirs(layout.RUN_DIR, mode=0o755)
    full = json.dumps(doc, default=str)
    volatile.write(root, layout.INSTANCE_DATA_SENSITIVE, full, 0o600)
    volatile.write(root, layout.INSTANCE_DATA, json.dumps(redact(doc)), 0o644)


def template_variables(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a jinja template sees: the document, the v1 keys at the top level too, and
    ``_`` aliases for keys with ``-``, ``.`` or ``/`` (which jinja cannot name)."""
    variables: dict[str, Any] = dict(_aliased(dict(doc)))
    for key, value in doc.get("v1", {}).items():
        variables.setdefault(key, value)
        variables.setdefault(_alias(key), value)
    return variables


def _alias(key: str) -> str:
    return key.replace("-", "_").replace(".", "_").replace("/", "_")


def _aliased(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            converted = _aliased(item)
            out[key] = converted
            if isinstance(key, str):
                out.setdefault(_alias(key), converted)
        return out
    if isinstance(value, list):
        return [_aliased(v) for v in value]
    return value


_MISSING = object()


def lookup(doc: Mapping[str, Any], key: str) -> Any:
    """A dotted key (``v1.instance_id``, ``ds.meta_data.meta.role``, ``instance_id``); list
    items by index (``v1.public_ssh_keys.0``). Raises KeyError naming the first missing part."""
    node: Any = doc
    parts = key.split(".") if key else []
    if parts and parts[0] not in doc and parts[0] in doc.get("v1", {}):
        node = doc["v1"]
    walked: list[str] = []
    for part in parts:
        value: Any = _MISSING
        if isinstance(node, Mapping):
            value = node.get(part, node.get(part.replace("_", "-"), _MISSING))
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            value = node[int(part)]
        if value is _MISSING:
            where = ".".join(walked) or "the top level"
            raise KeyError(f"no key {part!r} under {where}")
        walked.append(part)
        node = value
    return node


def list_keys(node: Any) -> list[str]:
    if isinstance(node, Mapping):
        return sorted(str(k) for k in node)
    return []
