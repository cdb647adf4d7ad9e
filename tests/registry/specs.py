"""Instance specs for the registry and admin tests, in the documented spec format."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from metaboot.metadata.instance import Instance, parse_spec


def spec(
    name: str = "vm",
    *,
    uuid: str | None = None,
    ports: list[tuple[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A small valid spec; ``ports`` is a list of (network_id, ip), one port each."""
    data: dict[str, Any] = {
        "uuid": uuid or str(uuidlib.uuid4()),
        "name": name,
        "hostname": name,
        "project_id": "p-1",
        "ports": [
            {
                "network_id": net,
                "mac": f"fa:16:3e:00:00:{i:02x}",
                "fixed_ips": [ip if "/" in ip else ip + ("/64" if ":" in ip else "/24")],
            }
            for i, (net, ip) in enumerate(ports or [])
        ],
    }
    data.update(extra)
    return data


def instance(name: str = "vm", **kw: Any) -> Instance:
    return parse_spec(spec(name, **kw))
