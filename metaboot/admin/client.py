"""A small client for the admin API (standard library only), used by ``metaboot instance``.

Errors come back as the same ``metaboot.errors`` the registry raises, so the CLI handles the
API and a direct ``--db`` alike.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from metaboot.errors import ConflictError, MetabootError, NotFoundError, SpecError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MetabootError(f"admin API URL must be http(s)://HOST[:PORT], not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        handlers: list[urllib.request.BaseHandler] = []
        if _is_loopback(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # never via a proxy to loopback
        self._opener = urllib.request.build_opener(*handlers)

    # -- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        req.add_header("Accept", "application/json")
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                return resp.status, dict(resp.headers), _decode(resp.read())
        except urllib.error.HTTPError as err:
            body = _decode(err.read())
            raise self._error(err.code, body) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise MetabootError(
                f"cannot reach the admin API at {self.base_url}: {reason}"
            ) from None

    def _error(self, status: int, body: Any) -> MetabootError:
        message = body.get("error") if isinstance(body, dict) else None
        message = str(message or body or f"HTTP {status}")
        if status == 401:
            return MetabootError(f"the admin API at {self.base_url} refused the token: {message}")
        if status == 404:
            return NotFoundError(message)
        if status in (409, 412):  # 412: If-Match named a generation that is not current
            return ConflictError(message)
        if status == 400 and isinstance(body, dict) and isinstance(body.get("field"), str):
            field = body["field"]
            problem = message.removeprefix(f"{field}: ") if field else message
            return SpecError(field, problem)
        return MetabootError(f"admin API: HTTP {status}: {message}")

    # -- instances -------------------------------------------------------------------------

    def list_instances(self, **filters: str) -> list[dict[str, Any]]:
        query = f"?{urlencode(filters)}" if filters else ""
        result: list[dict[str, Any]] = self.request("GET", f"/v1/instances{query}")[2]["instances"]
        return result

    def show(self, uuid: str) -> dict[str, Any]:
        return self._object("GET", _instance(uuid))

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._object("POST", "/v1/instances", spec)

    def replace(
        self, uuid: str, spec: dict[str, Any], *, generation: int | None = None
    ) -> dict[str, Any]:
        return self._object("PUT", _instance(uuid), spec, _if_match(generation))

    def patch(
        self, uuid: str, patch: dict[str, Any], *, generation: int | None = None
    ) -> dict[str, Any]:
        return self._object(
            "PATCH",
            _instance(uuid),
            patch,
            _if_match(generation),
            content_type="application/merge-patch+json",
        )

    def delete(self, uuid: str) -> None:
        self.request("DELETE", _instance(uuid))

    def password(self, uuid: str) -> str:
        return str(self._object("GET", _instance(uuid) + "/password")["password"])

    def clear_password(self, uuid: str) -> None:
        self.request("DELETE", _instance(uuid) + "/password")

    # -- routers ---------------------------------------------------------------------------

    def routers(self) -> dict[str, list[str]]:
        body = self.request("GET", "/v1/routers")[2]
        return {r["router_id"]: r["network_ids"] for r in body["routers"]}

    def router(self, router_id: str) -> list[str]:
        return list(self._object("GET", _router(router_id))["network_ids"])

    def set_router(self, router_id: str, network_ids: list[str]) -> list[str]:
        body = {"network_ids": network_ids}
        return list(self._object("PUT", _router(router_id), body)["network_ids"])

    def attach(self, router_id: str, network_ids: list[str]) -> list[str]:
        body = {"network_ids": network_ids}
        return list(self._object("POST", _router(router_id) + "/networks", body)["network_ids"])

    def detach(self, router_id: str, network_id: str) -> None:
        self.request("DELETE", f"{_router(router_id)}/networks/{quote(network_id, safe='')}")

    def delete_router(self, router_id: str) -> None:
        self.request("DELETE", _router(router_id))

    def _object(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        body = self.request(method, path, payload, headers=headers, content_type=content_type)[2]
        if not isinstance(body, dict):
            raise MetabootError(f"admin API: {method} {path}: expected a JSON object")
        return body


def _instance(uuid: str) -> str:
    return f"/v1/instances/{quote(uuid, safe='')}"


def _router(router_id: str) -> str:
    return f"/v1/routers/{quote(router_id, safe='')}"


def _if_match(generation: int | None) -> dict[str, str] | None:
    return None if generation is None else {"If-Match": f'"{generation}"'}


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
