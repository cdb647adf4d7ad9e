"""The EC2-style metadata service: IMDSv2 token first, plain requests if there is none."""

from __future__ import annotations

import json
from collections.abc import Callable

from metaboot.errors import SourceError
from metaboot.guest.http import Response, RetryPolicy, TransportError, fetch
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.sources.service import candidate_urls, probe

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# Names of the IMDSv2 session-token protocol, not secrets.
TOKEN_PATH = "/latest/api/token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL = "21600"
MAX_ENTRIES = 1000
MAX_DEPTH = 10


def read(ctx: SourceContext) -> InstanceData | None:
    # A token answer (200) or a definite "no tokens here" (404/405/400) both mean a service is
    # there; 403 means the endpoint refuses us, which is final too.
    found = probe(
        candidate_urls(ctx),
        TOKEN_PATH,
        ctx,
        lambda r: r.status in (200, 400, 403, 404, 405),
        method="PUT",
        headers={TOKEN_TTL_HEADER: TOKEN_TTL},
    )
    if found is None:
        return None
    base, answer = found
    if answer.status == 403:
        raise SourceError(f"{base}{TOKEN_PATH}: the service refused a session token (HTTP 403)")
    token = answer.body.decode("ascii", "replace").strip() if answer.status == 200 else None
    policy = RetryPolicy(
        timeout=float(ctx.settings.get("timeout", 5.0)),
        retries=int(ctx.settings.get("retries", 3)),
        sleep=ctx.sleep,
        clock=ctx.clock,
    )
    session = _Session(base, token, policy)
    version = str(ctx.settings.get("api_version", "2009-04-04"))
    if session.get(f"{version}/meta-data/instance-id") is None:
        version = "latest"
    meta = crawl_metadata(session.get, version)
    instance_id = meta.get("instance-id")
    if not isinstance(instance_id, str) or not instance_id:
        raise SourceError(f"{base}/{version}/meta-data/: no instance-id")
    hostname = meta.get("local-hostname") or meta.get("hostname")
    placement = meta.get("placement")
    zone = placement.get("availability-zone") if isinstance(placement, dict) else None
    return InstanceData(
        source="Ec2",
        instance_id=instance_id,
        local_hostname=hostname if isinstance(hostname, str) else None,
        public_keys=_keys(meta.get("public-keys")),
        availability_zone=zone if isinstance(zone, str) else None,
        metadata=meta,
        user_data=session.get(f"{version}/user-data"),
        ec2_metadata=meta,
        platform="ec2",
        subplatform=f"metadata ({base})",
        service_url=base,
    )


class _Session:
    def __init__(self, base: str, token: str | None, policy: RetryPolicy) -> None:
        self.base = base
        self.token = token
        self.policy = policy

    def _refresh(self) -> None:
        response = fetch(
            "PUT", self.base + TOKEN_PATH, self.policy, headers={TOKEN_TTL_HEADER: TOKEN_TTL}
        )
        self.token = response.body.decode("ascii", "replace").strip() if response.ok else None

    def get(self, path: str) -> bytes | None:
        url = f"{self.base}/{path}"
        try:
            response = self._get(url)
            if response.status == 401 and self.token is not None:
                self._refresh()
                response = self._get(url)
        except TransportError as err:
            raise SourceError(str(err)) from None
        if response.status == 404:
            return None
        if not response.ok:
            raise SourceError(f"{url}: HTTP {response.status}")
        return response.body

    def _get(self, url: str) -> Response:
        headers = {TOKEN_HEADER: self.token} if self.token else None
        return fetch("GET", url, self.policy, headers=headers)


def crawl_metadata(get: Callable[[str], bytes | None], version: str) -> dict[str, Any]:
    """The ``<version>/meta-data/`` tree as nested dicts: one GET per listing and per leaf."""
    budget = [MAX_ENTRIES]

    def walk(path: str, depth: int) -> dict[str, Any]:
        listing = get(path)
        if listing is None:
            return {}
        tree: dict[str, Any] = {}
        for line in listing.decode("utf-8", "replace").splitlines():
            entry = line.strip()
            if not entry or "/" in entry.rstrip("/") or entry.startswith("."):
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise SourceError(f"{path}: more than {MAX_ENTRIES} entries")
            if entry.endswith("/"):
                if depth < MAX_DEPTH:
                    tree[entry[:-1]] = walk(f"{path}{entry}", depth + 1)
            elif "=" in entry:
                # public-keys lists "0=keyname": a directory named by the part before "=".
                index, _, _name = entry.partition("=")
                if depth < MAX_DEPTH:
                    tree[index] = walk(f"{path}{index}/", depth + 1)
            else:
                value = get(f"{path}{entry}")
                if value is not None:
                    tree[entry] = _leaf(value)
        return tree

    return walk(f"{version}/meta-data/", 0)


def _leaf(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "\n" in text.strip():
        return text.strip().splitlines()
    return text


def _keys(value: Any) -> list[str]:
    keys: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            if isinstance(item, dict):
                key = item.get("openssh-key")
                if isinstance(key, str) and key.strip():
                    keys.append(key.strip())
                elif isinstance(key, list):
                    keys += [k.strip() for k in key if isinstance(k, str) and k.strip()]
    return keys
