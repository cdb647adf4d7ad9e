"""The listening proxy: sockets on the metadata address.

Listen addresses are ``HOST:PORT``: ``169.254.169.254:80`` (qdhcp style, the address on the
namespace's port), ``0.0.0.0:9697`` or ``[::]:9697`` (qrouter style, behind a REDIRECT), and
``[fe80::a9fe:a9fe%IFACE]:80`` — a link-local address means nothing without the interface, so
one must be named.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

from metaboot.errors import ConfigError
from metaboot.proxy.connection import ClientConnection, ConnectionCaps, Hub, ProxyContext


class ListenAddress:
    __slots__ = ("host", "interface", "port")

    def __init__(self, host: str, port: int, interface: str | None = None) -> None:
        self.host, self.port, self.interface = host, port, interface

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
        raise ConfigError(f"{where}: a link-local address needs its interface: [{host}%IFACE]")
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


class ProxyServer:
    """Accepts on any number of sockets; every connection joins the one :class:`Hub`."""

    def __init__(self, ctx: ProxyContext, caps: ConnectionCaps) -> None:
        self.hub = Hub(ctx, caps)
        self._servers: list[asyncio.Server] = []

    async def start(self, sockets: list[socket.socket], backlog: int) -> None:
        loop = asyncio.get_running_loop()
        self.hub.start()
        for sock in sockets:
            server = await loop.create_server(
                lambda: ClientConnection(self.hub), sock=sock, backlog=backlog
            )
            self._servers.append(server)

    async def stop(self, grace: float) -> None:
        """Stop accepting, close idle connections, give requests in flight ``grace`` seconds
        (their answers carry ``Connection: close``), then cut what is left."""
        for server in self._servers:
            server.close()
        await self.hub.drain(grace)
        self.hub.stop()
        self.hub.ctx.upstream.close()
