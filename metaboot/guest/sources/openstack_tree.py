"""Reading nova's ``openstack/<version>/`` documents, whatever carries them.

The config drive and the metadata service hold the same files at the same paths, so both
sources hand this module a ``get(path) -> bytes | None`` (None: the file is absent) and it does
the rest: pick the version, read the five documents, and turn them into InstanceData.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from metaboot.errors import SourceError
from metaboot.guest.sources.base import InstanceData

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# Newest last. "latest" is used when the carrier offers none of these (a future format we
# would rather read as "latest" than guess at).
KNOWN_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "2025-04-04",
)

Getter = Callable[[str], bytes | None]


# The documents of openstack/<version>/ that read_tree reads from every source (a service is
# asked for them all at once); injected files and, from a drive, the EC2 tree come after.
DOCUMENTS = (
    "meta_data.json",
    "network_data.json",
    "user_data",
    "vendor_data.json",
    "vendor_data2.json",
)


def pick_version(available: Iterable[str]) -> str:
    offered = {v.strip().strip("/") for v in available}
    for version in reversed(KNOWN_VERSIONS):
        if version in offered:
            return version
    return "latest"


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise SourceError(f"{what}: not valid JSON ({err})") from None


def read_tree(
    get: Getter,
    version: str,
    *,
    source: str,
    subplatform: str,
    warnings: list[str],
    service_url: str | None = None,
    drive: bool = False,
) -> InstanceData:
    """Read ``openstack/<version>/…`` through ``get`` (and, from a drive,
    ``ec2/latest/meta-data.json``). Only meta_data.json is required; a broken optional
    document is a warning."""
    prefix = f"openstack/{version}"
    raw_meta = get(f"{prefix}/meta_data.json")
    if raw_meta is None:
        raise SourceError(f"{subplatform}: {prefix}/meta_data.json is missing")
    meta = _json(raw_meta, f"{prefix}/meta_data.json")
    if not isinstance(meta, dict):
        raise SourceError(f"{prefix}/meta_data.json: expected a JSON object")
    uuid = meta.get("uuid")
    if not isinstance(uuid, str) or not uuid.strip():
        raise SourceError(f"{prefix}/meta_data.json: no 'uuid' (the instance-id)")

    def optional_json(name: str) -> Any:
        raw = get(f"{prefix}/{name}")
        if raw is None:
            return None
        try:
            return _json(raw, f"{prefix}/{name}")
        except SourceError as err:
            warnings.append(f"{err}; ignored")
            return None

    network_data = optional_json("network_data.json")
    if network_data is not None and not isinstance(network_data, dict):
        warnings.append(f"{prefix}/network_data.json: expected a JSON object; ignored")
        network_data = None
    hostname = meta.get("hostname")
    zone = meta.get("availability_zone")
    data = InstanceData(
        source=source,
        instance_id=uuid.strip(),
        local_hostname=hostname if isinstance(hostname, str) and hostname else None,
        public_keys=public_keys(meta),
        availability_zone=zone if isinstance(zone, str) and zone else None,
        metadata=meta,
        user_data=get(f"{prefix}/user_data"),
        vendor_data=optional_json("vendor_data.json"),
        vendor_data2=optional_json("vendor_data2.json"),
        network_data=network_data,
        platform="openstack",
        subplatform=subplatform,
        service_url=service_url,
    )
    data.injected_files = injected_files(get, meta, warnings)
    ec2 = get("ec2/latest/meta-data.json") if drive else None
    if ec2 is not None:
        try:
            parsed = _json(ec2, "ec2/latest/meta-data.json")
            data.ec2_metadata = parsed if isinstance(parsed, dict) else None
        except SourceError as err:
            warnings.append(f"{err}; ignored")
    return data


MAX_INJECTED_BYTES = 1024 * 1024  # nova's default quota is 10 KiB a file, 5 files


def injected_files(get: Getter, meta: dict[str, Any], warnings: list[str]) -> list[dict[str, str]]:
    """nova's file injection: meta_data.json ``files`` lists ``{path, content_path}``; the
    content is ``openstack/<content_path>`` (``/content/0000``) on the drive and the service
    alike. A bad entry is a warning and the others are kept."""
    import base64

    listed = meta.get("files")
    if listed is None:
        return []
    if not isinstance(listed, list):
        warnings.append("meta_data.json files: expected a list; ignored")
        return []
    found: list[dict[str, str]] = []
    for index, entry in enumerate(listed):
        where = f"meta_data.json files[{index}]"
        path = entry.get("path") if isinstance(entry, dict) else None
        content_path = entry.get("content_path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not isinstance(content_path, str) or not path:
            warnings.append(f"{where}: expected {{path, content_path}} strings; ignored")
            continue
        relative = content_path.lstrip("/")
        if not relative.startswith("content/") or ".." in relative.split("/"):
            warnings.append(
                f"{where}: content_path {content_path!r} is not under /content; ignored"
            )
            continue
        content = get(f"openstack/{relative}")
        if content is None:
            warnings.append(f"{where}: {content_path} is missing; {path} not written")
            continue
        if len(content) > MAX_INJECTED_BYTES:
            warnings.append(f"{where}: {content_path} is over {MAX_INJECTED_BYTES} bytes; ignored")
            continue
        found.append({"path": path, "content_base64": base64.b64encode(content).decode("ascii")})
    return found


def public_keys(meta: dict[str, Any]) -> list[str]:
    """Keys from ``public_keys`` (name → key) then ``keys`` (type ssh), without repeats."""
    found: list[str] = []
    named = meta.get("public_keys")
    if isinstance(named, dict):
        found += [v for v in named.values() if isinstance(v, str)]
    listed = meta.get("keys")
    if isinstance(listed, list):
        found += [
            k["data"]
            for k in listed
            if isinstance(k, dict)
            and k.get("type", "ssh") == "ssh"
            and isinstance(k.get("data"), str)
        ]
    unique: list[str] = []
    for key in (k.strip() for k in found):
        if key and key not in unique:
            unique.append(key)
    return unique
