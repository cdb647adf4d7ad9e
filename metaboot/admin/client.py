"""A small client for the admin API (standard library only), used by ``metaboot instance``.

Errors come back as the same ``metaboot.errors`` the registry raises, so the CLI handles the
API and a direct ``--db`` alike.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from metaboot.errors import ConflictError, MetabootError, NotFoundError, SpecError


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket, for an admin API that listens on one (``unix:/path``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """``base_url`` is ``http://HOST:PORT``, ``https://…`` or ``unix:/path/to/socket``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        if base_url.startswith("unix:"):
            self._unix: str | None = base_url.removeprefix("unix:")
            self._prefix = ""
            return
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MetabootError(
                f"admin API URL must be http(s)://HOST[:PORT] or unix:/PATH, not {base_url!r}"
            )
        self._unix = None
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")

    def _connection(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, self._timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._netloc, timeout=self._timeout)
        return http.client.HTTPConnection(self._netloc, timeout=self._timeout)

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
        send = {"Accept": "application/json", **(headers or {})}
        if self._token:
            send["Authorization"] = f"Bearer {self._token}"
        if data is not None:
            send["Content-Type"] = content_type
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=data, headers=send)
            resp = conn.getresponse()
            status, resp_headers, raw = resp.status, dict(resp.getheaders()), resp.read()
        except (OSError, http.client.HTTPException) as err:
            raise MetabootError(f"cannot reach the admin API at {self.base_url}: {err}") from None
        finally:
            conn.close()
        body = _decode(raw)
        if status >= 400:
            raise self._error(status, body)
        return status, resp_headers, body

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
