"""Processes and listeners: one serving process, or N forked workers sharing the load.

Workers: every TCP endpoint is bound N times with ``SO_REUSEPORT`` *before* forking, one socket
per worker, so the kernel spreads connections evenly and no worker ever waits on a listener that
nobody accepts on; a UNIX-socket endpoint is one socket all workers accept on. Each worker opens
its own registry handle (database connections must not cross a fork), loads its own cache and
follows the registry's change notifications, so an admin change reaches every worker at once.
The session-token key is made before the fork, so a token issued by one worker verifies on all.
The parent keeps the sockets, runs the admin listener, and restarts a worker that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import ipaddress
import logging
import os
import secrets
import signal
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from metaboot.errors import ConfigError
from metaboot.metadata.tree import MetadataSettings
from metaboot.registry import Registry
from metaboot.service.app import MetadataApp
from metaboot.service.cache import InstanceCache
from metaboot.service.config import Endpoint, ServiceConfig, parse_listen
from metaboot.service.http import HttpServer, Limits, Request, Response
from metaboot.service.identify import Identifier
from metaboot.service.ratelimit import RateLimiter
from metaboot.service.tokens import TokenAuthority
from metaboot.service.vendordata import DynamicVendorData

log = logging.getLogger("metaboot.service")

ADMIN_MAX_BODY = 8 * 1024 * 1024 + 1  # specs carry user-data; the admin API caps at 8 MiB


# -- sockets --------------------------------------------------------------------------------
def bind_endpoint(endpoint: Endpoint, copies: int, option: str = "--listen") -> list[socket.socket]:
    """Listening sockets for one endpoint: ``copies`` SO_REUSEPORT TCP sockets, or one UNIX one.
    Errors name ``option``, the setting the endpoint came from."""
    if endpoint.path is not None:
        return [_bind_unix(endpoint.path, option)]
    infos = socket.getaddrinfo(
        endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise ConfigError(f"{option} {endpoint}: cannot resolve {endpoint.host}")
    family, _, _, _, address = infos[0]
    sockets: list[socket.socket] = []
    port = endpoint.port
    try:
        for _ in range(copies):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if copies > 1:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]  # port 0: the copies join the port the first one got
            sock.listen(4096)
            sock.setblocking(False)
    except OSError as err:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"{option} {endpoint}: {err.strerror}") from err
    return sockets


def _bind_unix(path: str, option: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError as err:
                if err.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    os.unlink(path)  # a stale socket left by a process that died
            else:
                raise ConfigError(f"{option} unix:{path}: another process is serving there")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(4096)
    except OSError as err:
        sock.close()
        raise ConfigError(f"{option} unix:{path}: {err.strerror}") from err
    sock.setblocking(False)
    return sock


def _is_local(sock: socket.socket) -> bool:
    """A UNIX socket, or a TCP socket bound to a loopback address."""
    if sock.family == socket.AF_UNIX:
        return True
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def describe(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# -- one serving process --------------------------------------------------------------------
@dataclass
class Service:
    """Everything one process serves with; tests build one in-process to look inside."""

    config: ServiceConfig
    registry: Registry
    token_key: bytes
    data_sockets: list[socket.socket] = field(default_factory=list)
    admin_sockets: list[socket.socket] = field(default_factory=list)
    app: MetadataApp | None = None
    cache: InstanceCache | None = None
    _servers: list[HttpServer] = field(default_factory=list)
    _vendor: DynamicVendorData | None = None
    _admin_pool: Any = None

    def settings(self) -> MetadataSettings:
        return MetadataSettings(
            dhcp_domain=self.config.dhcp_domain,
            static_vendor_data=self.config.static_vendor_data,
            today=date.today(),
        )

    async def start(self) -> None:
        config = self.config
        limits = Limits(
            max_header_bytes=config.max_header_bytes,
            max_body_bytes=config.max_body_bytes,
            request_timeout=config.request_timeout,
            keepalive_timeout=config.keepalive_timeout,
        )
        if self.data_sockets:
            vendor = self._vendor = DynamicVendorData(
                config.dynamic_targets,
                config.vendor_connect_timeout,
                config.vendor_read_timeout,
                config.vendor_cache_seconds,
            )
            cache = self.cache = InstanceCache(
                self.registry,
                self.settings,
                refresh_seconds=config.cache_refresh_seconds,
                on_change=vendor.invalidate,
            )
            await cache.start()
            self.app = MetadataApp(
                cache,
                self.registry,
                Identifier(config.trusted_proxies, config.direct, config.shared_secret),
                RateLimiter(config.rate_limit_requests, config.rate_limit_window),
                TokenAuthority(self.token_key),
                vendor,
            )
            server = HttpServer(self.app.handle, limits)
            self._servers.append(server)
            for sock in self.data_sockets:
                await server.serve_socket(sock)
        if self.admin_sockets:
            admin_limits = replace(limits, max_body_bytes=ADMIN_MAX_BODY, request_timeout=60.0)
            admin = HttpServer(self._admin_handler(), admin_limits)
            self._servers.append(admin)
            for sock in self.admin_sockets:
                await admin.serve_socket(sock)

    def _admin_handler(self) -> Callable[[Request], Any]:
        """The admin API (``metaboot.admin.api.AdminApp``) runs in a thread pool: it does blocking
        database work and must never stall the data path's event loop."""
        from concurrent.futures import ThreadPoolExecutor

        try:
            from metaboot.admin.api import AdminApp
        except ImportError as err:
            raise ConfigError(f"--admin-listen: the admin API is not available ({err})") from err
        local = all(_is_local(sock) for sock in self.admin_sockets)
        if not self.config.admin_token:
            if not local:
                raise ConfigError(
                    "--admin-listen on a non-loopback address needs an admin token "
                    "(service.admin_token or admin_token_file in the config, or "
                    "--admin-token-file)"
                )
            log.warning("admin API without a token: reachable from this machine only")
        api = AdminApp(
            self.registry,
            self.config.admin_token,
            allow_unauthenticated=local and not self.config.admin_token,
            max_body=ADMIN_MAX_BODY - 1,
        )
        pool = self._admin_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="admin")
        loop = asyncio.get_running_loop()

        async def handle(request: Request) -> Response:
            status, headers, body = await loop.run_in_executor(
                pool,
                api.handle,
                request.method,
                request.raw_path,
                request.query,
                request.headers,
                request.body,
            )
            content_type = None
            extra = []
            for name, value in headers:
                if name.lower() == "content-type":
                    content_type = value
                elif name.lower() != "content-length":
                    extra.append((name, value))
            return Response(status, body, content_type, tuple(extra))

        def handler(request: Request) -> Any:
            return handle(request)

        return handler

    async def close(self) -> None:
        for server in self._servers:
            await server.close()
        if self.cache:
            self.cache.close()
        if self._vendor:
            self._vendor.close()
        if self._admin_pool:
            self._admin_pool.shutdown(wait=False, cancel_futures=True)


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the server extra
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def _serve_until_signalled(service: Service, stop_signals: tuple[int, ...]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in stop_signals:
        loop.add_signal_handler(signum, stop.set)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.close()


def run_process(
    config: ServiceConfig,
    db_url: str,
    token_key: bytes,
    data_sockets: list[socket.socket],
    admin_sockets: list[socket.socket],
    stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    registry = Registry.open(db_url)
    service = Service(config, registry, token_key, data_sockets, admin_sockets)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(_serve_until_signalled(service, stop_signals))
    finally:
        registry.close()


# -- the whole server -----------------------------------------------------------------------
def _die_with_parent() -> None:
    """A worker must not outlive its supervisor (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)


def _announce(line: str) -> None:
    """Where we listen, on stderr whatever the log level (scripts and tests wait for it)."""
    print(f"metaboot serve: {line}", file=sys.stderr, flush=True)


def serve(config: ServiceConfig, db_url: str) -> int:
    token_key = config.token_key or secrets.token_bytes(32)
    workers = config.workers
    data: list[list[socket.socket]] = [[] for _ in range(workers)]
    admin: list[socket.socket] = []
    for text in config.listen:
        sockets = bind_endpoint(parse_listen(text), workers)
        for index in range(workers):
            data[index].append(sockets[index] if len(sockets) > 1 else sockets[0])
        _announce(f"metadata listening on {describe(sockets[0])}")
    for text in config.admin_listen:
        sockets = bind_endpoint(parse_listen(text, "--admin-listen"), 1, "--admin-listen")
        admin.extend(sockets)
        _announce(f"admin API listening on {describe(sockets[0])}")
    if workers == 1:
        run_process(config, db_url, token_key, data[0], admin)
        return 0
    return _supervise(config, db_url, token_key, data, admin)


def _supervise(
    config: ServiceConfig,
    db_url: str,
    token_key: bytes,
    data: list[list[socket.socket]],
    admin: list[socket.socket],
) -> int:
    children: dict[int, int] = {}  # pid -> worker index

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _die_with_parent()
                # A respawn forks from inside the supervisor's running loop; the child starts
                # its own loop and must not believe it is already inside one (fixed in 3.12).
                asyncio.events._set_running_loop(None)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with TERM
                mine = {id(s) for s in data[index]}
                for other in data:
                    for sock in other:
                        if id(sock) not in mine:
                            sock.close()
                for sock in admin:
                    sock.close()
                run_process(config, db_url, token_key, data[index], [], (signal.SIGTERM,))
            except BaseException:
                log.exception("worker %d failed", index)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index

    for index in range(len(data)):
        spawn(index)

    stopping = False

    async def supervise() -> None:
        nonlocal stopping
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        registry = Registry.open(db_url) if admin else None
        service = Service(config, registry, token_key, [], admin) if registry else None
        if service:
            await service.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                while children:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    index = children.pop(pid, None)
                    if index is not None and not stop.is_set():
                        log.warning(
                            "worker %d (pid %d) exited with status %d; restarting",
                            index,
                            pid,
                            status,
                        )
                        spawn(index)
        finally:
            stopping = True
            if service:
                await service.close()
            if registry:
                registry.close()

    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(supervise())
    finally:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in list(children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return 0
