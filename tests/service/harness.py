"""Helpers for the service tests: instance specs and an HTTP client for the running service."""

from __future__ import annotations

import asyncio
import http.client
import secrets
import socket
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metaboot.metadata.instance import Instance, parse_spec
from metaboot.service.server import Service


def instance(
    uuid: str | None = None,
    *,
    ips: tuple[str, ...] = ("127.0.0.1",),
    network: str = "net-a",
    **fields: Any,
) -> Instance:
    """A small instance spec holding ``ips`` on ``network``."""
    uuid = uuid or str(uuidlib.uuid4())
    spec: dict[str, Any] = {
        "uuid": uuid,
        "name": f"vm-{uuid[:8]}",
        "hostname": f"vm-{uuid[:8]}",
        "project_id": "project-1",
        "keys": [{"name": "k1", "type": "ssh", "data": f"ssh-ed25519 AAAAC3Nza{uuid[:8]} u@h"}],
        "meta": {"owner": uuid},
        "user_data": f"#cloud-config\n# for {uuid}\n",
        "ports": [
            {
                "network_id": network,
                "mac": "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)),
                "fixed_ips": [ip + ("/128" if ":" in ip else "/8") for ip in ips],
            }
        ],
    }
    spec.update(fields)
    return parse_spec(spec)


@dataclass
class Running:
    """A service running in a background thread; ``url`` is its TCP base URL."""

    service: Service
    url: str
    host: str
    port: int
    unix_path: str | None
    v6_port: int | None
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    admin_port: int | None = None

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the service's loop (to look at its state consistently)."""
        fut: Any = asyncio.run_coroutine_threadsafe(_call(fn), self.loop)
        return fut.result(10)

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        source: str | None = None,
        unix: bool = False,
        v6: bool = False,
    ) -> tuple[int, dict[str, str], bytes]:
        conn: http.client.HTTPConnection
        if unix:
            assert self.unix_path is not None
            conn = UnixHTTPConnection(self.unix_path)
        elif v6:
            assert self.v6_port is not None
            conn = http.client.HTTPConnection("::1", self.v6_port, timeout=10)
        else:
            conn = http.client.HTTPConnection(
                self.host, self.port, timeout=10, source_address=(source, 0) if source else None
            )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path, **kwargs)
        return status, body


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a UNIX socket: how the metadata proxy reaches the service."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self._path)
        self.sock = sock
