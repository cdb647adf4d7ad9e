"""The admin REST API as one synchronous function: (method, path, query, headers, body) in,
(status, headers, body) out.

It knows nothing about sockets, so the service can mount it on its admin listener (running it in
a thread pool, since the registry blocks) and tests can call it directly. Every route but
``/openapi.json`` needs ``Authorization: Bearer <token>``; the token is checked before routing so
that an unauthenticated caller learns nothing about what exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml

from metaboot.admin import views
from metaboot.admin.openapi import document
from metaboot.admin.routes import OPENAPI_PATH, ROUTES, Route
from metaboot.errors import ConfigError, ConflictError, MetabootError, NotFoundError, SpecError
from metaboot.metadata.instance import USER_DATA_LIMIT, instance_to_spec, parse_spec
from metaboot.registry import GenerationMismatch, Registry

log = logging.getLogger(__name__)

Response = tuple[int, list[tuple[str, str]], bytes]

JSON_TYPES = frozenset({"application/json", "application/merge-patch+json"})
YAML_TYPES = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"}
)
# What curl and friends send when nobody says: read as YAML, which also reads JSON.
LENIENT_TYPES = frozenset({"", "application/x-www-form-urlencoded", "application/octet-stream"})
DEFAULT_MAX_BODY = 8 * 1024 * 1024
_USER_DATA_KEYS = ("user_data", "user_data_b64", "user_data_file")

_BASE_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
]


class HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or []


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few lines of them can expand to gigabytes of JSON."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted", event.start_mark
            )
        return super().compose_node(parent, index)


class AdminApp:
    """The admin API over one registry.

    ``token`` is the bearer token every caller must present. An empty token is refused unless
    ``allow_unauthenticated`` is set, which the service must only do for a listener on loopback.
    """

    def __init__(
        self,
        registry: Registry,
        token: str,
        *,
        allow_unauthenticated: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
        user_data_limit: int = USER_DATA_LIMIT,
    ) -> None:
        if not token and not allow_unauthenticated:
            raise ConfigError(
                "the admin API needs a bearer token (admin token is empty); "
                "only a loopback-only listener may run without one"
            )
        self.registry = registry
        self.max_body = max_body
        self.user_data_limit = user_data_limit
        self._token_digest = hashlib.sha256(token.encode()).digest() if token else None
        self._handlers: dict[str, Callable[[Request], Response]] = {
            route.handler: getattr(self, "_" + route.handler) for route in ROUTES
        }
        self._openapi_body = json.dumps(document(), indent=1).encode() + b"\n"

    # -- entry point -----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        """Answer one request. ``path`` is as sent (still percent-encoded, so that an id holding
        ``%2F`` stays one path segment), ``query`` is the text after ``?``, header names may be
        in any case, and ``body`` should be cut at ``max_body + 1`` bytes by the transport.
        """
        method = method.upper()
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            route, params = self._route(method, path, lower)
            request = Request(method, path, params, parse_qs(query), lower, body)
            response = self._handlers[route.handler](request)
        except HTTPError as err:
            response = _error(err)
        except Exception:
            log.exception("admin API: %s %s failed", method, path)
            response = _error(HTTPError(500, "internal error; see the service log"))
        log.info("admin API: %s %s -> %d", method, path, response[0])
        return response

    def _route(
        self, method: str, path: str, headers: dict[str, str]
    ) -> tuple[Route, dict[str, str]]:
        if len(path) > 1:
            path = path.rstrip("/")
        if path != OPENAPI_PATH:
            self._authenticate(headers)
        allowed: list[str] = []
        for route in ROUTES:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise HTTPError(
                405,
                f"{method} is not allowed on {path} (allowed: {', '.join(allowed)})",
                headers=[("Allow", ", ".join(allowed))],
            )
        raise HTTPError(404, f"no such resource: {path}")

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self._token_digest is None:
            return
        challenge = [("WWW-Authenticate", 'Bearer realm="metaboot-admin"')]
        scheme, _, given = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HTTPError(
                401, "missing bearer token (Authorization: Bearer …)", headers=challenge
            )
        # Digests have one length, so the comparison time says nothing about the token.
        digest = hashlib.sha256(given.strip().encode()).digest()
        if not hmac.compare_digest(digest, self._token_digest):
            raise HTTPError(401, "invalid bearer token", headers=challenge)

    # -- instances -------------------------------------------------------------------------

    def _openapi(self, request: Request) -> Response:
        return 200, list(_BASE_HEADERS), self._openapi_body

    def _list_instances(self, request: Request) -> Response:
        records = self.registry.list_records()
        for key in ("name", "project_id"):
            if key in request.query:
                wanted = set(request.query[key])
                records = [r for r in records if getattr(r.instance, key) in wanted]
        return _json(200, {"instances": [views.summary(r) for r in records]})

    def _create_instance(self, request: Request) -> Response:
        instance = self._parse_instance(request, path_uuid=None)
        written = self._registry_call(lambda: self.registry.add(instance))
        record = self._registry_call(lambda: self.registry.get_record(instance.uuid))
        return _json(
            201,
            views.detail(record, written),
            [("Location", f"/v1/instances/{instance.uuid}"), ("ETag", _etag(record.generation))],
        )

    def _show_instance(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        record = self._registry_call(lambda: self.registry.get_record(uuid))
        return _json(200, views.detail(record), [("ETag", _etag(record.generation))])

    def _replace_instance(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        expected = _if_match(request.headers.get("if-match"))
        instance = self._parse_instance(request, path_uuid=uuid)
        written = self._registry_call(
            lambda: self.registry.update(instance, expected_generation=expected)
        )
        record = self._registry_call(lambda: self.registry.get_record(uuid))
        return _json(200, views.detail(record, written), [("ETag", _etag(record.generation))])

    def _patch_instance(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        expected = _if_match(request.headers.get("if-match"))
        patch = self._load_body(request)
        if not isinstance(patch, dict):
            raise HTTPError(400, "a merge patch must be a mapping", field="")
        for attempt in range(3):
            record = self._registry_call(lambda: self.registry.get_record(uuid))
            base = instance_to_spec(record.instance)
            if any(patch.get(k) is not None for k in _USER_DATA_KEYS):
                for key in _USER_DATA_KEYS:
                    base.pop(key, None)
            merged = merge_patch(base, patch)
            body = json.dumps(merged).encode()
            as_json = dataclasses.replace(
                request, body=body, headers={"content-type": "application/json"}
            )
            instance = self._parse_instance(as_json, path_uuid=uuid, max_body=len(body))
            # The patch applies to what was just read: if another writer got in between,
            # apply it again to the newer spec (unless the caller pinned a generation).
            generation = record.generation if expected is None else expected
            try:
                written = self.registry.update(instance, expected_generation=generation)
                break
            except GenerationMismatch as err:
                if expected is not None or attempt == 2:
                    raise HTTPError(412, str(err)) from None
            except NotFoundError as err:
                raise HTTPError(404, str(err)) from None
        record = self._registry_call(lambda: self.registry.get_record(uuid))
        return _json(200, views.detail(record, written), [("ETag", _etag(record.generation))])

    def _delete_instance(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        self._registry_call(lambda: self.registry.delete(uuid))
        return _empty()

    def _show_password(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        password = self._registry_call(lambda: self.registry.password_get(uuid))
        return _json(200, {"password": password})

    def _clear_password(self, request: Request) -> Response:
        uuid = _uuid(request.params["uuid"])
        self._registry_call(lambda: self.registry.password_clear(uuid))
        return _empty()

    # -- routers ---------------------------------------------------------------------------

    def _list_routers(self, request: Request) -> Response:
        routers = self.registry.routers()
        return _json(200, {"routers": [views.router(r, nets) for r, nets in routers.items()]})

    def _show_router(self, request: Request) -> Response:
        router_id = request.params["router_id"]
        nets = self._registry_call(lambda: self.registry.router(router_id))
        return _json(200, views.router(router_id, nets))

    def _replace_router(self, request: Request) -> Response:
        router_id = request.params["router_id"]
        nets = _network_ids(self._load_body(request))
        result = self._registry_call(lambda: self.registry.set_router(router_id, nets))
        return _json(200, views.router(router_id, result))

    def _delete_router(self, request: Request) -> Response:
        router_id = request.params["router_id"]
        self._registry_call(lambda: self.registry.remove_router(router_id))
        return _empty()

    def _attach_networks(self, request: Request) -> Response:
        router_id = request.params["router_id"]
        nets = _network_ids(self._load_body(request))
        result = self._registry_call(lambda: self.registry.add_router(router_id, nets))
        return _json(200, views.router(router_id, result))

    def _detach_network(self, request: Request) -> Response:
        router_id, network_id = request.params["router_id"], request.params["network_id"]
        self._registry_call(lambda: self.registry.remove_router(router_id, [network_id]))
        return _empty()

    # -- helpers ---------------------------------------------------------------------------

    def _load_body(self, request: Request, max_body: int | None = None) -> Any:
        limit = self.max_body if max_body is None else max_body
        if len(request.body) > limit:
            raise HTTPError(413, f"the body is {len(request.body)} bytes; the limit is {limit}")
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype not in JSON_TYPES | YAML_TYPES | LENIENT_TYPES:
            raise HTTPError(
                415, f"cannot read a {ctype} body; send application/json or application/yaml"
            )
        if not request.body.strip():
            raise HTTPError(400, "the request body is empty", field="")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise HTTPError(400, f"the body is not UTF-8 (byte {err.start})", field="") from None
        if ctype in JSON_TYPES:
            try:
                return json.loads(text)
            except json.JSONDecodeError as err:
                raise HTTPError(
                    400,
                    f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})",
                    field="",
                ) from None
        try:
            return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(err, "problem", None) or str(err)
            raise HTTPError(400, f"not valid YAML or JSON{where}: {problem}", field="") from None

    def _parse_instance(
        self, request: Request, path_uuid: str | None, max_body: int | None = None
    ) -> Any:
        data = self._load_body(request, max_body)
        if not isinstance(data, dict):
            raise HTTPError(400, "a spec must be a mapping", field="")
        if "user_data_file" in data:
            # A path would be read on the server, not where the caller is.
            raise HTTPError(
                400,
                "files are not read over the API; send user_data or user_data_b64 "
                "(metaboot instance add reads the file for you)",
                field="user_data_file",
            )
        if path_uuid is not None:
            data.setdefault("uuid", path_uuid)
        try:
            instance = parse_spec(data, user_data_limit=self.user_data_limit)
        except SpecError as err:
            raise HTTPError(400, str(err), field=err.field) from None
        if path_uuid is not None and instance.uuid != path_uuid:
            raise HTTPError(
                400, f"the spec's uuid {instance.uuid} is not the URL's {path_uuid}", field="uuid"
            )
        return instance

    @staticmethod
    def _registry_call(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except NotFoundError as err:
            raise HTTPError(404, str(err)) from None
        except GenerationMismatch as err:
            raise HTTPError(412, str(err)) from None
        except ConflictError as err:
            raise HTTPError(409, str(err)) from None
        except SpecError as err:
            raise HTTPError(400, str(err), field=err.field) from None
        except MetabootError as err:
            raise HTTPError(400, str(err)) from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: mappings merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _uuid(text: str) -> str:
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise HTTPError(404, f"no instance {text}") from None


def _etag(generation: int) -> str:
    return f'"{generation}"'


def _if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise HTTPError(
            400, f"If-Match must be an ETag from this API, not {value!r}", field="If-Match"
        )
    return int(text)


def _network_ids(data: Any) -> list[str]:
    if not isinstance(data, dict):
        raise HTTPError(400, 'the body must be {"network_ids": [...]}', field="")
    unknown = sorted(set(data) - {"network_ids"})
    if unknown:
        raise HTTPError(400, f"unknown field {unknown[0]!r}", field=unknown[0])
    nets = data.get("network_ids")
    if not isinstance(nets, list) or not nets or not all(isinstance(n, str) and n for n in nets):
        raise HTTPError(400, "must be a non-empty list of network ids", field="network_ids")
    return nets


def _json(status: int, payload: Any, extra: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, indent=1, sort_keys=False).encode() + b"\n"
    return status, [*_BASE_HEADERS, *(extra or [])], body


def _empty() -> Response:
    return 204, [(k, v) for k, v in _BASE_HEADERS if k != "Content-Type"], b""


def _error(err: HTTPError) -> Response:
    payload: dict[str, Any] = {"error": err.message}
    if err.field is not None:
        payload["field"] = err.field
    return _json(err.status, payload, err.headers)
