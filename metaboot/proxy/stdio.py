"""``--stdio``: serve the one connection QEMU hands a ``guestfwd=…-cmd:`` process.

QEMU (libslirp) starts one process per guest connection with stdin, stdout *and stderr* all on
one socket to the guest. So in this mode nothing may be written to stderr — a warning would land
in the guest's HTTP stream — and fd 2 is pointed at /dev/null before anything can write to it.
There is no peer address to read: the operator says who the guest is (``--forwarded-for``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat

from metaboot.errors import ConfigError
from metaboot.proxy.connection import ClientConnection, ConnectionCaps, Hub, ProxyContext


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def silence_stderr_if_shared() -> None:
    """Point fd 2 at /dev/null when it is the guest's connection (as libslirp sets it up)."""
    try:
        err, inp = os.fstat(2), os.fstat(0)
    except OSError:
        return
    if stat.S_ISSOCK(err.st_mode) and _same_file(err, inp):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


class _Output(asyncio.Protocol):
    """stdout's protocol: flow control and loss go to the client connection."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.output_lost()


async def serve_stdio(ctx: ProxyContext, source: str) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub(ctx, ConnectionCaps(total=1, per_source=1))
    hub.start()
    conn = ClientConnection(hub, source)
    st_in, st_out = os.fstat(0), os.fstat(1)
    try:
        if stat.S_ISSOCK(st_in.st_mode) and _same_file(st_in, st_out):
            # One socket for both directions (QEMU's case): use it as a socket, so that a
            # guest's half-close reads as EOF while the answer can still be written.
            sock = socket.socket(fileno=os.dup(0))
            await loop.connect_accepted_socket(lambda: conn, sock)
        else:
            for fd, st in ((0, st_in), (1, st_out)):
                if not (
                    stat.S_ISFIFO(st.st_mode)
                    or stat.S_ISSOCK(st.st_mode)
                    or stat.S_ISCHR(st.st_mode)
                ):
                    name = "stdin" if fd == 0 else "stdout"
                    raise ConfigError(f"--stdio: {name} must be a pipe, a socket or a terminal")
            # The transports own these file objects; closefd=False leaves fds 0/1 alone.
            stdin = open(0, "rb", buffering=0, closefd=False)  # noqa: SIM115
            stdout = open(1, "wb", buffering=0, closefd=False)  # noqa: SIM115
            out, _ = await loop.connect_write_pipe(lambda: _Output(conn), stdout)
            conn.attach_output(out)
            await loop.connect_read_pipe(lambda: conn, stdin)
        await conn.closed_future
    finally:
        hub.stop()
        ctx.upstream.close()
