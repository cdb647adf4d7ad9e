"""One JSON line per request the proxy answered.

What is logged is chosen so that nothing secret can be: the network, the instance the service
answered for (its ``X-Metaboot-Instance-ID`` response header, which the proxy removes), the
method, the path (never the query string), sizes, status and timing — never another header
(tokens travel in headers) and never a body (passwords and user-data travel in bodies).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TextIO

MAX_PATH_CHARS = 256


@dataclass(frozen=True, slots=True)
class AccessRecord:
    identity_key: str  # "network_id" | "router_id"
    identity: str
    instance: str | None  # as the service named it; None when it identified nobody
    source: str
    method: str
    path: str
    status: int
    latency_ms: float
    bytes_in: int
    bytes_out: int
    upstream: str  # "ok" | "unavailable" | "timeout" | "bad-response" | "not-sent"


def log_path(target: bytes) -> str:
    """The request path, without the query, bounded and made printable."""
    path = target.split(b"?", 1)[0][:MAX_PATH_CHARS]
    return path.decode("ascii", "backslashreplace")


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def render(record: AccessRecord, now: float) -> str:
    return json.dumps(
        {
            "ts": _timestamp(now),
            record.identity_key: record.identity,
            "instance": record.instance,
            "source": record.source,
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "latency_ms": round(record.latency_ms, 3),
            "bytes_in": record.bytes_in,
            "bytes_out": record.bytes_out,
            "upstream": record.upstream,
        },
        separators=(",", ":"),
    )


class AccessLog:
    """Writes records to a text stream (a file, stderr) or nowhere."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def write(self, record: AccessRecord) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(render(record, time.time()) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            # A full disk or a closed log must not take the data path down with it.
            pass
