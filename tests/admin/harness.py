"""Call the admin API in-process, checking every answer against its own OpenAPI document, or
serve it on a loopback port for the client and the CLI."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry as SchemaRegistry
from referencing import Resource
from referencing.jsonschema import DRAFT202012

from metaboot.admin.api import AdminApp
from metaboot.admin.openapi import document
from metaboot.admin.routes import ROUTES

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

_DOC = document()
_SCHEMAS: SchemaRegistry[Any] = SchemaRegistry().with_resource(
    "urn:openapi", Resource(contents=_DOC, specification=DRAFT202012)
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass
class Api:
    """``AdminApp.handle`` plus conformance: every status must be documented for its route and
    every JSON body must match the documented schema."""

    app: AdminApp
    seen: set[tuple[str, int]] = field(default_factory=set)
    allow_500: bool = False  # generic and documented once; a test must expect it explicitly

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        raw: bytes | None = None,
    ) -> Answer:
        path, _, query = path.partition("?")
        hdrs = {**(AUTH if auth else {}), **(headers or {})}
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        if body is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        status, out_headers, out = self.app.handle(method, path, query, hdrs, data)
        answer = Answer(status, dict(out_headers), out, json.loads(out) if out else None)
        self._conform(method, path, answer)
        return answer

    def _conform(self, method: str, path: str, answer: Answer) -> None:
        route = next(
            (r for r in ROUTES if r.method == method and r.pattern.match(path.rstrip("/") or "/")),
            None,
        )
        assert answer.status != 500 or self.allow_500, answer.json
        if route is None or answer.status in (405, 500):
            assert answer.status in (401, 404, 405, 500), (method, path, answer.status)
            return
        self.seen.add((route.handler, answer.status))
        documented = _DOC["paths"][route.template][method.lower()]["responses"]
        assert str(answer.status) in documented, (
            f"{method} {route.template} answered {answer.status}, documented: {list(documented)}"
        )
        content = documented[str(answer.status)].get("content")
        if content is None:
            assert answer.body == b""
            return
        assert answer.headers["Content-Type"] == "application/json"
        schema = content["application/json"]["schema"]
        if "$ref" in schema:
            schema = {"$ref": "urn:openapi#" + schema["$ref"][1:]}
        jsonschema.Draft202012Validator(schema, registry=_SCHEMAS).validate(answer.json)


class _Handler(BaseHTTPRequestHandler):
    app: AdminApp

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        status, headers, out = self.app.handle(
            self.command, path, query, dict(self.headers.items()), body
        )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(app: AdminApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (an ephemeral port); yields the base URL."""
    handler = type("Handler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _UnixServer(ThreadingHTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "localhost", 0


class _UnixHandler(_Handler):
    def address_string(self) -> str:
        return "unix"


@contextmanager
def serve_unix(app: AdminApp, path: Path) -> Iterator[None]:
    """Serve ``app`` on a UNIX socket at ``path``."""
    handler = type("Handler", (_UnixHandler,), {"app": app})
    server = _UnixServer(str(path), handler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        path.unlink(missing_ok=True)
