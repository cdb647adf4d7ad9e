"""Process and wire helpers shared by the proxy tests."""

from __future__ import annotations

import io
import json
import re
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

ECHO = Path(__file__).with_name("echo_upstream.py")
METABOOT = [sys.executable, "-m", "metaboot.cli"]


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of a child's stdout, or fail after ``timeout`` (never hang a test)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no output from {proc.args!r} within {timeout}s")
    return proc.stdout.readline().decode()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()
    return proc.returncode


@dataclass
class EchoUpstream:
    """The stand-in service, on a UNIX socket or TCP; can be stopped and started again."""

    address: str
    tls: tuple[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    prefix: list[str] = field(default_factory=list)  # e.g. ["ip", "netns", "exec", NS]

    def start(self) -> None:
        args = [*self.prefix, sys.executable, str(ECHO), self.address]
        if self.tls:
            args += ["--tls", *self.tls]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, bufsize=0)
        line = read_line(self.proc, 10)
        assert line.startswith("ready "), line
        self.address = line.split()[1]
        if self.address.startswith("tcp:"):
            self.address = "http" + ("s" if self.tls else "") + "://" + self.address[4:]

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@dataclass
class ProxyProcess:
    """``metaboot proxy`` in listener mode; ``listening`` holds the bound addresses."""

    args: list[str]
    prefix: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    listening: list[str] = field(default_factory=list)
    log_path: Path | None = None

    def start(self) -> ProxyProcess:
        args = [*self.prefix, *METABOOT, "proxy", *self.args]
        if self.log_path is not None:
            args += ["--access-log", str(self.log_path)]
        # Unbuffered: select() must see what readline() has not consumed yet. stderr goes to
        # a file: a pipe nobody drains would fill up and stall the proxy.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0)
        for _ in range(self.args.count("--listen")):
            try:
                line = read_line(self.proc, 15)
            except TimeoutError:
                self.proc.kill()
                raise
            match = re.match(r"listening on (\S+) ", line)
            if match is None:
                self.proc.wait(5)
                raise AssertionError(f"proxy did not start: {line!r} {self.stderr()!r}")
            self.listening.append(match.group(1))
        return self

    @property
    def port(self) -> int:
        return int(self.listening[0].rsplit(":", 1)[1])

    def stop(self) -> int:
        return stop_process(self.proc) if self.proc is not None else 0

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def access_log(self) -> list[dict[str, Any]]:
        assert self.log_path is not None
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


class _Unclosable(io.BytesIO):
    def close(self) -> None:  # HTTPResponse closes its file after a "Connection: close" reply
        pass


class _BytesSocket:
    def __init__(self, data: bytes) -> None:
        self._file = _Unclosable(data)

    def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
        return self._file


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_replies(data: bytes, methods: list[str] | None = None) -> list[Reply]:
    """Every HTTP response in ``data``, in order (``methods`` tells which answered a HEAD)."""
    sock = _BytesSocket(data)
    stream = sock.makefile()
    replies = []
    index = 0
    while stream.tell() < len(data):
        method = methods[index] if methods else "GET"
        response = HTTPResponse(sock, method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        replies.append(
            Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
        )
        index += 1
    return replies


def echoed_headers(reply: Reply) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in reply.json()["headers"]]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
