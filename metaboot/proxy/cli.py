"""``metaboot proxy``: the per-network metadata proxy, listening or on stdin/stdout.

    metaboot proxy (--network-id ID | --router-id ID) --listen ADDR:PORT [--listen …]
                   --upstream unix:/PATH | http://HOST:PORT | https://HOST:PORT
    metaboot proxy (--network-id ID | --router-id ID) --stdio --forwarded-for ADDR
                   --upstream …

Both modes stamp and forward with the same code (``metaboot.proxy.connection``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

from metaboot.errors import ConfigError
from metaboot.proxy.accesslog import AccessLog
from metaboot.proxy.connection import ProxyContext, Timeouts
from metaboot.proxy.headers import Identity, source_address
from metaboot.proxy.http1 import Limits
from metaboot.proxy.upstream import (
    Upstream,
    UpstreamSettings,
    client_tls_context,
    parse_upstream,
)


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="metaboot proxy",
        description="Per-network metadata proxy: stamps the network (or router) and the VM's "
        "address on each request and forwards it to the metadata service.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--network-id", metavar="ID", help="network this proxy serves (qdhcp style)")
    who.add_argument("--router-id", metavar="ID", help="router this proxy serves (qrouter style)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        action="append",
        help="169.254.169.254:80, 0.0.0.0:9697, [fe80::a9fe:a9fe%%IFACE]:80 (repeatable)",
    )
    mode.add_argument(
        "--stdio", action="store_true", help="serve one connection on stdin/stdout (QEMU guestfwd)"
    )
    p.add_argument("--forwarded-for", metavar="ADDR", help="--stdio: the guest's address")
    p.add_argument(
        "--upstream",
        metavar="URL",
        required=True,
        help="the service: unix:/PATH, http://HOST:PORT or https://HOST:PORT",
    )
    p.add_argument("--upstream-ca", metavar="FILE", help="CA bundle that signed the service's cert")
    p.add_argument("--upstream-cert", metavar="FILE", help="client certificate for the service")
    p.add_argument("--upstream-key", metavar="FILE", help="key of --upstream-cert")
    p.add_argument(
        "--access-log",
        metavar="PATH",
        help="JSON-lines access log: a file, '-' for stderr, 'off' (default: stderr; "
        "off with --stdio, whose stderr is the guest's connection)",
    )
    t = p.add_argument_group("timeouts (seconds)")
    t.add_argument("--client-timeout", type=_positive(float), default=10.0, metavar="SECONDS",
                   help="a request's first byte to its last (default 10)")  # fmt: skip
    t.add_argument("--keepalive-timeout", type=_positive(float), default=15.0, metavar="SECONDS",
                   help="idle time between requests on a connection (default 15)")  # fmt: skip
    t.add_argument("--send-timeout", type=_positive(float), default=30.0, metavar="SECONDS",
                   help="each write to a client that does not read (default 30)")  # fmt: skip
    t.add_argument("--connect-timeout", type=_positive(float), default=3.0, metavar="SECONDS",
                   help="connecting to the service (default 3)")  # fmt: skip
    t.add_argument("--upstream-timeout", type=_positive(float), default=30.0, metavar="SECONDS",
                   help="the service's answer to a request (default 30)")  # fmt: skip
    t.add_argument("--retry-after", type=_positive(int), default=1, metavar="SECONDS",
                   help="Retry-After of a 503/504 (default 1)")  # fmt: skip
    t.add_argument("--grace", type=_positive(float), default=5.0, metavar="SECONDS",
                   help="on SIGTERM, time left to open requests (default 5)")  # fmt: skip
    b = p.add_argument_group("bounds")
    b.add_argument("--max-header-bytes", type=_positive(int), default=16384, metavar="N",
                   help="request line and headers; beyond: 431 (default %(default)s)")  # fmt: skip
    b.add_argument("--max-headers", type=_positive(int), default=100, metavar="N",
                   help="header lines; beyond: 431 (default %(default)s)")  # fmt: skip
    b.add_argument("--max-url-bytes", type=_positive(int), default=4096, metavar="N",
                   help="request target; beyond: 414 (default %(default)s)")  # fmt: skip
    b.add_argument("--max-body-bytes", type=_positive(int), default=65536, metavar="N",
                   help="request body; beyond: 413 (default %(default)s)")  # fmt: skip
    b.add_argument("--max-connections", type=_positive(int), default=4096, metavar="N",
                   help="open client connections; beyond: 503 (default %(default)s)")  # fmt: skip
    b.add_argument("--max-connections-per-source", type=_positive(int), default=64, metavar="N",
                   help="open connections per VM address (default %(default)s)")  # fmt: skip
    b.add_argument("--upstream-connections", type=_positive(int), default=64, metavar="N",
                   help="keep-alive connections to the service (default %(default)s)")  # fmt: skip
    b.add_argument("--backlog", type=_positive(int), default=4096, metavar="N",
                   help="listen queue of each listener (default %(default)s)")  # fmt: skip
    return p


def _access_log_stream(choice: str | None, stdio: bool) -> TextIO | None:
    if choice is None:
        choice = "off" if stdio else "-"
    if choice == "off":
        return None
    if choice == "-":
        if stdio:
            raise ConfigError("--access-log -: with --stdio, stderr is the guest's connection")
        return sys.stderr
    try:
        return open(choice, "a", encoding="utf-8", buffering=1)
    except OSError as err:
        raise ConfigError(f"--access-log {choice}: {err.strerror}") from err


def build_context(args: argparse.Namespace) -> ProxyContext:
    identity = (
        Identity("network", args.network_id)
        if args.network_id is not None
        else Identity("router", args.router_id)
    )
    target = parse_upstream(args.upstream)
    tls = None
    if target.scheme == "https":
        tls = client_tls_context(args.upstream_ca, args.upstream_cert, args.upstream_key)
    elif args.upstream_ca or args.upstream_cert:
        raise ConfigError("--upstream-ca/--upstream-cert need an https:// upstream")
    if args.upstream_key and not args.upstream_cert:
        raise ConfigError("--upstream-key needs --upstream-cert")
    settings = UpstreamSettings(
        connect_timeout=args.connect_timeout,
        max_connections=1 if args.stdio else args.upstream_connections,
        max_idle=1 if args.stdio else args.upstream_connections,
    )
    return ProxyContext(
        identity=identity,
        upstream=Upstream(target, settings, tls),
        access_log=AccessLog(_access_log_stream(args.access_log, args.stdio)),
        limits=Limits(
            max_header_bytes=args.max_header_bytes,
            max_headers=args.max_headers,
            max_url_bytes=args.max_url_bytes,
            max_body_bytes=args.max_body_bytes,
        ),
        timeouts=Timeouts(
            request=args.client_timeout,
            keepalive=args.keepalive_timeout,
            send=args.send_timeout,
            upstream=args.upstream_timeout,
        ),
        retry_after=args.retry_after,
    )


def _run(main: Callable[[], Coroutine[Any, Any, None]], *, fast_loop: bool = True) -> None:
    """Run on uvloop when it is installed (it is, with the server extra) and asked for. The
    one-connection stdio mode does without: it gains nothing from it, starts faster, and
    libuv refuses a stdout such as /dev/null that asyncio's own loop writes to happily."""
    try:
        if not fast_loop:
            raise ImportError
        import uvloop
    except ImportError:
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def _raise_fd_limit() -> None:
    """Each VM connection is a file descriptor, and so is each upstream one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(command: str, argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.stdio:
        from metaboot.proxy.stdio import serve_stdio, silence_stderr_if_shared

        silence_stderr_if_shared()
        if not args.forwarded_for:
            raise ConfigError("--stdio needs --forwarded-for ADDR (the guest's address)")
        source = source_address(args.forwarded_for)
        ctx = build_context(args)

        async def stdio_main() -> None:
            await serve_stdio(ctx, source)

        _run(stdio_main, fast_loop=False)
        return 0
    if args.forwarded_for:
        raise ConfigError("--forwarded-for goes with --stdio; a listener sees the real source")
    from metaboot.proxy.connection import ConnectionCaps
    from metaboot.proxy.listener import (
        ProxyServer,
        bound_address,
        open_listener,
        parse_listen,
    )

    addresses = [parse_listen(text) for text in args.listen]
    ctx = build_context(args)
    logging.basicConfig(level=logging.INFO, format="metaboot proxy: %(message)s")
    _raise_fd_limit()
    sockets = []
    try:
        for address in addresses:
            sockets.append(open_listener(address, args.backlog))
    except ConfigError:
        for sock in sockets:
            sock.close()
        raise
    caps = ConnectionCaps(args.max_connections, args.max_connections_per_source)

    async def listen_main() -> None:
        server = ProxyServer(ctx, caps)
        await server.start(sockets, args.backlog)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        identity = f"{ctx.identity.kind} {ctx.identity.id}"
        for sock in sockets:
            # One line per listener on stdout, so a supervisor (or a test) learns the port.
            print(
                f"listening on {bound_address(sock)} for {identity} -> {ctx.upstream.target}",
                flush=True,
            )
        await stop.wait()
        await server.stop(args.grace)

    _run(listen_main)
    return 0
