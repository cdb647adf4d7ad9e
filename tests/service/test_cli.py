"""``metaboot serve`` as an operator runs it: --demo, --config, --workers, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from metaboot.errors import ConfigError
from metaboot.registry import Registry
from metaboot.service.cli import DEMO_UUID
from metaboot.service.config import load_config, parse_listen
from tests.service.harness import instance

LISTENING = re.compile(r"metadata listening on (http://\S+)")


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def get(
        self, path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()


def _children(pid: int) -> list[str]:
    return subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()


def _wait_for_url(stream: IO[str], proc: subprocess.Popen[str], seen: list[str]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        match = LISTENING.search(line)
        if match:
            return match.group(1)
    raise AssertionError("the service did not start:\n" + "".join(seen))


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> Served:
        proc = subprocess.Popen(
            [sys.executable, "-m", "metaboot.cli", "serve", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        assert proc.stderr is not None
        url = _wait_for_url(proc.stderr, proc, [])
        return Served(proc, url)

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_answers_on_a_fresh_database(serve: Callable[..., Served], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'state' / 'registry.db'}"
    served = serve("--demo", "--db", db, "--listen", "127.0.0.1:0")
    status, body = served.get("/openstack/latest/meta_data.json")
    assert status == 200 and json.loads(body)["uuid"] == DEMO_UUID
    assert served.get("/latest/meta-data/hostname") == (200, b"demo")
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(20) == 0
    # again on the same database: the demo instance is refreshed, not duplicated
    again = serve("--demo", "--db", db, "--listen", "127.0.0.1:0")
    assert json.loads(again.get("/openstack/latest/meta_data.json")[1])["uuid"] == DEMO_UUID
    with Registry.open(db) as reg:
        assert [i.uuid for i in reg.list()] == [DEMO_UUID]


def test_workers_share_tokens_and_follow_changes(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    me = instance(ips=("127.0.0.1",), meta={"v": "1"})
    with Registry.open(db) as reg:
        reg.add(me)
    config = tmp_path / "metaboot.toml"
    config.write_text(
        '[service]\nworkers = 2\n[rate_limit]\nrequests = 0\n[metadata]\ndhcp_domain = "lan"\n'
    )
    served = serve("--db", db, "--listen", "127.0.0.1:0", "--config", str(config))
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    # each urllib request is a new connection; SO_REUSEPORT spreads them over both workers
    tokens = [served.get("/latest/api/token", ttl, "PUT")[1].decode() for _ in range(30)]
    for token in tokens:
        status, body = served.get("/latest/meta-data/hostname", {"X-aws-ec2-metadata-token": token})
        assert (status, body) == (200, f"{me.hostname}.lan".encode())
    pids = _children(served.proc.pid)
    assert len(pids) == 2
    # an admin change reaches every worker
    with Registry.open(db) as reg:
        reg.update(instance(me.uuid, ips=("127.0.0.1",), meta={"v": "2"}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metas = [
            json.loads(served.get("/openstack/latest/meta_data.json")[1])["meta"] for _ in range(20)
        ]
        if all(m == {"v": "2"} for m in metas):
            break
        time.sleep(0.05)
    assert all(m == {"v": "2"} for m in metas)
    # a worker that dies is replaced, and the service keeps answering
    os.kill(int(pids[0]), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = _children(served.proc.pid)
        if len(now) == 2 and pids[0] not in now:
            break
        time.sleep(0.1)
    assert len(now) == 2 and pids[0] not in now
    for _ in range(20):
        assert served.get("/latest/meta-data/hostname") == (200, f"{me.hostname}.lan".encode())
    pids = now
    # stopping the parent stops the workers
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(20) == 0
    time.sleep(0.2)
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


def test_errors_are_named(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "metaboot.cli", "serve", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "METABOOT_DB": f"sqlite:///{tmp_path / 'r.db'}"},
        )

    bad = tmp_path / "bad.toml"
    bad.write_text("[identify]\nshared_secret = ''\n")
    result = run("--config", str(bad))
    assert result.returncode == 1 and "shared_secret is empty" in result.stderr
    result = run("--listen", "nowhere")
    assert result.returncode == 1 and "--listen" in result.stderr
    result = run("--listen", "127.0.0.1:0", "--admin-listen", "192.0.2.1:8776")
    assert result.returncode == 1 and "needs a token" in result.stderr
    # a port already taken is blamed on the option that asked for it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("--listen", "127.0.0.1:0", "--admin-listen", f"127.0.0.1:{port}")
        assert result.returncode == 1
        assert f"--admin-listen 127.0.0.1:{port}: Address already in use" in result.stderr
        result = run("--listen", f"127.0.0.1:{port}")
        assert result.returncode == 1
        assert f"--listen 127.0.0.1:{port}: Address already in use" in result.stderr


def test_config_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    (tmp_path / "vendor.json").write_text('{"site": "dc1"}')
    (tmp_path / "key").write_text("k" * 40)
    (tmp_path / "empty").write_text("\n")
    path = tmp_path / "metaboot.toml"
    path.write_text(
        """
[service]
listen = ["127.0.0.1:8775", "unix:/run/metaboot/md.sock"]
workers = 4
[metadata]
dhcp_domain = "example.org."
[identify]
trusted_proxies = ["10.0.0.0/24", "::ffff:192.0.2.1"]
shared_secret_file = "secret"
[vendor_data]
static_file = "vendor.json"
dynamic_targets = ["join@http://127.0.0.1:9999/v"]
read_timeout = 2
cache_seconds = 60
[rate_limit]
requests = 50
window_seconds = 5
[tokens]
key_file = "key"
"""
    )
    config = load_config(path)
    assert config.workers == 4
    assert config.listen == ("127.0.0.1:8775", "unix:/run/metaboot/md.sock")
    assert config.dhcp_domain == "example.org"
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/24", "192.0.2.1/32"]
    assert config.shared_secret == b"from-a-file" and config.signed_mode
    assert config.static_vendor_data == {"site": "dc1"}
    assert config.dynamic_targets[0].name == "join"
    assert config.vendor_read_timeout == 2.0 and config.vendor_cache_seconds == 60.0
    assert (config.rate_limit_requests, config.rate_limit_window) == (50, 5.0)
    assert config.token_key == b"k" * 40
    assert "from-a-file" not in repr(config)  # secrets stay out of logs and tracebacks

    # relative paths are relative to the TOML file, not to the working directory
    path.write_text(
        '[service]\ndb = "state/registry.db"\nlisten = ["unix:md.sock", "127.0.0.1:8775"]\n'
        'admin_listen = "unix:run/admin.sock"\n'
    )
    config = load_config(path)
    assert config.db == str(tmp_path / "state/registry.db")
    assert config.listen == (f"unix:{tmp_path / 'md.sock'}", "127.0.0.1:8775")
    assert config.admin_listen == (f"unix:{tmp_path / 'run/admin.sock'}",)
    path.write_text('[service]\ndb = "postgresql://u@h/db"\n')
    assert load_config(path).db == "postgresql://u@h/db"

    for text, message in [
        ("[service]\nlisten = 'x'\n", "service.listen"),
        ("[identify]\ntrusted = []\n", "unknown key identify.trusted"),
        ("[nope]\n", "unknown section"),
        ("[identify]\ntrusted_proxies = ['10.0.0.300']\n", "trusted_proxies[0]"),
        ("[vendor_data]\ndynamic_targets = ['nourl']\n", "name@url"),
        ("[vendor_data]\ndynamic_targets = ['a@http://x', 'a@http://y']\n", "duplicate"),
        ("[identify]\nshared_secret_file = 'missing'\n", "cannot read"),
        ("[rate_limit]\nwindow_seconds = 0\n", "window_seconds"),
        ("[service]\nworkers = true\n", "workers"),
        ("[service]\nadmin_token = ' '\n", "service.admin_token is empty"),
        ("[service]\nadmin_token_file = 'empty'\n", "service.admin_token_file is empty"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path)
    assert parse_listen("[::1]:80").host == "::1"
    assert parse_listen("unix:/x").path == "/x"
