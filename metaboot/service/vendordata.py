"""DynamicJSON vendor data: POST nova's fields to each ``name@url`` target, key the answers by
name in vendor_data2.json.

Why it is shaped this way: a target is someone else's web service and may be slow or down. The
fetch runs in its own small thread pool with separate connect and read timeouts, a failing
target contributes ``{}`` (and a log line) instead of failing the request, results are cached per
instance for ``cache_seconds``, and concurrent requests for one instance share one fetch
(single-flight) — so a boot storm costs each target one call per instance, and a hung target
delays only the vendor_data2.json of the instances asking for it, never other paths or other
instances.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from metaboot.metadata.instance import Instance
from metaboot.service.config import DynamicTarget

log = logging.getLogger("metaboot.service.vendordata")


def request_body(instance: Instance) -> dict[str, Any]:
    """The fields nova's DynamicJSON provider sends (``user-data`` base64, as nova stores it;
    ``hostname`` bare, without the DHCP domain)."""
    user_data = instance.user_data
    return {
        "project-id": instance.project_id,
        "instance-id": instance.uuid,
        "image-id": instance.image_id,
        "user-data": base64.b64encode(user_data).decode("ascii") if user_data else None,
        "hostname": instance.hostname,
        "metadata": dict(instance.meta),
        # nova keeps the roles as one comma-joined string in system_metadata
        "boot-roles": ",".join(instance.boot_roles),
    }


def post_json(url: str, body: bytes, connect_timeout: float, read_timeout: float) -> bytes:
    """POST and return the response body; raises OSError/HTTPException/ValueError on failure."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, parts.port, timeout=connect_timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=connect_timeout)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "metaboot-vendordata",
            },
        )
        response = conn.getresponse()
        data = response.read(1 << 20)
        if response.status >= 400:
            raise ValueError(f"HTTP {response.status}")
        return data
    finally:
        conn.close()


Fetch = Callable[[str, bytes, float, float], bytes]


class DynamicVendorData:
    def __init__(
        self,
        targets: tuple[DynamicTarget, ...],
        connect_timeout: float,
        read_timeout: float,
        cache_seconds: float,
        fetch: Fetch = post_json,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.targets = targets
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.cache_seconds = cache_seconds
        self._fetch = fetch
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(4, 4 * len(targets)), thread_name_prefix="vendordata"
        )
        self.fetches = 0  # target calls made, for the curious (and the tests)

    @property
    def enabled(self) -> bool:
        return bool(self.targets)

    def cached(self, uuid: str) -> dict[str, Any] | None:
        hit = self._cache.get(uuid)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return None

    def invalidate(self, uuid: str | None) -> None:
        if uuid is None:
            self._cache.clear()
        else:
            self._cache.pop(uuid, None)

    async def get(self, instance: Instance) -> dict[str, Any]:
        hit = self.cached(instance.uuid)
        if hit is not None:
            return hit
        pending = self._inflight.get(instance.uuid)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[instance.uuid] = future
        try:
            result = await self._fetch_all(instance)
            self._cache[instance.uuid] = (self._clock() + self.cache_seconds, result)
            future.set_result(result)
            return result
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: waiters (if any) get it through shield
            raise
        finally:
            del self._inflight[instance.uuid]

    async def _fetch_all(self, instance: Instance) -> dict[str, Any]:
        body = json.dumps(request_body(instance)).encode("utf-8")
        loop = asyncio.get_running_loop()
        calls = [
            loop.run_in_executor(self._pool, self._one, target, body, instance.uuid)
            for target in self.targets
        ]
        answers = await asyncio.gather(*calls)
        return {t.name: a for t, a in zip(self.targets, answers, strict=True)}

    def _one(self, target: DynamicTarget, body: bytes, uuid: str) -> Any:
        self.fetches += 1
        try:
            raw = self._fetch(target.url, body, self.connect_timeout, self.read_timeout)
            if not raw.strip():
                return {}
            return json.loads(raw)
        except (OSError, http.client.HTTPException, ValueError) as err:
            log.warning(
                "vendor data target %s (%s) failed for instance %s: %s",
                target.name,
                target.url,
                uuid,
                err or type(err).__name__,
            )
            return {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
