"""The listening proxy: sockets on the metadata address, and a cap on connections.

Listen addresses are ``HOST:PORT``: ``169.254.169.254:80`` (qdhcp style, the address on the
namespace's port), ``0.0.0.0:9697`` or ``[::]:9697`` (qrouter style, behind a REDIRECT), and
``[fe80::a9fe:a9fe%IFACE]:80`` — a link-local address means nothing without the interface, so
one must be named.

Connections are capped in total and per source address, so one VM opening hundreds of idle or
trickling connections exhausts its own share, not its neighbours'.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus

from metaboot.errors import ConfigError
from metaboot.proxy.connection import ConnectionState, ProxyContext, serve_connection
from metaboot.proxy.headers import source_address
from metaboot.proxy.http1 import error_response
from metaboot.proxy.upstream import READ_SIZE

log = logging.getLogger("metaboot.proxy")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int
    interface: str | None = None

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        if self.family == socket.AF_INET6:
            zone = f"%{self.interface}" if self.interface else ""
            return f"[{self.host}{zone}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    where = f"--listen {text!r}"
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"{where}: expected [IPV6%IFACE]:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ConfigError(f"{where}: expected ADDR:PORT (IPv6 in brackets)")
    host, _, interface = host.partition("%")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError as err:
        raise ConfigError(f"{where}: {host!r} is not an IP address") from err
    try:
        port = int(port_text)
    except ValueError as err:
        raise ConfigError(f"{where}: port {port_text!r} is not a number") from err
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port {port} out of range")
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local and not interface:
        raise ConfigError(
            f"{where}: a link-local address needs its interface: [{host}%IFACE]:{port}"
        )
    if interface and not isinstance(addr, ipaddress.IPv6Address):
        raise ConfigError(f"{where}: an interface (%{interface}) only goes with IPv6")
    return ListenAddress(str(addr), port, interface or None)


def open_listener(address: ListenAddress, backlog: int) -> socket.socket:
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            # [::] and 0.0.0.0 are separate listeners; neither swallows the other's family.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            scope = 0
            if address.interface:
                try:
                    scope = socket.if_nametoindex(address.interface)
                except OSError as err:
                    raise ConfigError(
                        f"--listen {address}: no interface {address.interface!r} here"
                    ) from err
            sock.bind((address.host, address.port, 0, scope))
        else:
            sock.bind((address.host, address.port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        hint = ""
        if err.errno == errno.EADDRNOTAVAIL:
            hint = " (the address must be configured on an interface in this namespace"
            hint += ", IPv6 with nodad)" if address.family == socket.AF_INET6 else ")"
        raise ConfigError(f"--listen {address}: {err.strerror}{hint}") from err
    except ConfigError:
        sock.close()
        raise
    return sock


def bound_address(sock: socket.socket) -> str:
    """``host:port`` actually bound (port 0 resolved)."""
    name = sock.getsockname()
    if sock.family == socket.AF_INET6:
        zone = f"%{socket.if_indextoname(name[3])}" if name[3] else ""
        return f"[{name[0]}{zone}]:{name[1]}"
    return f"{name[0]}:{name[1]}"


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    total: int = 4096
    per_source: int = 64


class ProxyServer:
    """Accepts on any number of sockets and serves each connection with the shared context."""

    def __init__(self, ctx: ProxyContext, caps: ConnectionCaps) -> None:
        self.ctx = ctx
        self.caps = caps
        self._per_source: Counter[str] = Counter()
        self._open = 0
        self._tasks: dict[asyncio.Task[None], ConnectionState] = {}
        self._servers: list[asyncio.Server] = []

    async def start(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            server = await asyncio.start_server(self._accept, sock=sock, limit=READ_SIZE)
            self._servers.append(server)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        try:
            source = source_address(peer[0])
        except Exception:
            writer.close()
            return
        if self._open >= self.caps.total or self._per_source[source] >= self.caps.per_source:
            log.warning("connection from %s refused: connection cap reached", source)
            writer.write(
                error_response(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "too many connections",
                    close=True,
                    retry_after=self.ctx.retry_after,
                )
            )
            writer.close()
            return
        self._open += 1
        self._per_source[source] += 1
        state = ConnectionState()
        self._tasks[task] = state
        try:
            await serve_connection(reader, writer, source, self.ctx, state)
        finally:
            del self._tasks[task]
            self._open -= 1
            self._per_source[source] -= 1
            if not self._per_source[source]:
                del self._per_source[source]

    async def stop(self, grace: float) -> None:
        """Stop accepting, close connections waiting between requests, give the requests in
        flight ``grace`` seconds (their answers carry ``Connection: close``), then cut them."""
        for server in self._servers:
            server.close()
        for task, state in self._tasks.items():
            state.draining = True
            if state.idle:
                task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self.ctx.upstream.close()
