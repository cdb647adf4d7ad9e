"""Real transports and trees for the agent's tests.

``MetadataServer`` serves the metadata core's documents (the very bytes the service and the
drives hand out) over real HTTP on 127.0.0.1, port 0, with knobs for the misbehaviour the agent
must survive: 503s with Retry-After, a slow start, IMDSv2 tokens required or absent.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from metaboot.guest import runner
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.system import Root
from metaboot.metadata import DocumentTree, MetadataSettings, build_tree, parse_spec

REPO_ROOT = Path(__file__).resolve().parents[2]
UUID = "3f0c6b7e-1d2a-4c5b-9e8f-0a1b2c3d4e5f"
UUID2 = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgentTestKeyOne agent@test"


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uuid": UUID,
        "name": "agent-test",
        "hostname": "agent-test",
        "availability_zone": "zone-a",
        "keys": [{"name": "k1", "type": "ssh", "data": KEY}],
        "meta": {"role": "test"},
        "user_data": "#cloud-config\nhostname: from-user-data\n",
        "ports": [
            {
                "id": "7c1e5a0b-2f4d-4e6a-8b9c-0d1e2f3a4b5c",
                "network_id": "net-a",
                "mac": "fa:16:3e:11:22:33",
                "fixed_ips": ["10.0.0.5"],
                "subnets": [{"cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "dns": ["10.0.0.2"]}],
            }
        ],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def tree(
    data: dict[str, Any] | None = None,
    *,
    vendor: dict[str, Any] | None = None,
    dynamic: dict[str, Any] | None = None,
    user_data_limit: int = 65535,
) -> DocumentTree:
    instance = parse_spec(data or spec(), user_data_limit=user_data_limit)
    settings = MetadataSettings(static_vendor_data=vendor if vendor is not None else {})
    return build_tree(instance, settings, dynamic or {})


# ---- HTTP ----------------------------------------------------------------------------------


@dataclass
class ServerState:
    tree: DocumentTree
    fail_first: int = 0  # answer this many requests with 503 first
    retry_after: int | None = None
    tokens: str = "optional"  # "optional", "required" or "none" (no token endpoint)
    log: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    extra: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # path -> (status, body)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with state.lock:
            state.log.append((self.command, self.path, dict(self.headers.items())))
            if state.fail_first > 0:
                state.fail_first -= 1
                extra = (
                    {"Retry-After": str(state.retry_after)} if state.retry_after is not None else {}
                )
                self._send(503, b"busy", extra)
                return
        path = self.path.split("?", 1)[0]
        if path in state.extra:
            status, body = state.extra[path]
            self._send(status, body)
            return
        if path.rstrip("/") == "/latest/api/token":
            if state.tokens == "none" or self.command != "PUT":
                self._send(404, b"not found")
                return
            token = secrets.token_hex(16)
            state.issued.add(token)
            self._send(200, token.encode())
            return
        token = self.headers.get("X-aws-ec2-metadata-token")
        if (
            not path.startswith("/openstack")
            and state.tokens == "required"
            and token not in state.issued
        ):
            self._send(401, b"token required")
            return
        doc = state.tree.lookup(path)
        if doc is None:
            self._send(404, b"not found")
            return
        self._send(200, doc.render(os.urandom), {"Content-Type": doc.content_type})

    do_GET = do_PUT = do_POST = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@contextmanager
def metadata_server(state: ServerState) -> Iterator[tuple[str, ServerState]]:
    """A metadata service on 127.0.0.1:<ephemeral>; yields (base URL, state)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---- roots ---------------------------------------------------------------------------------


def make_root(base: Path) -> Root:
    """A small system tree: accounts, os-release, one NIC — what a fresh image has."""
    base.mkdir(parents=True, exist_ok=True)
    root = Root(base)
    root.write_file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n")
    root.write_file("/etc/group", "root:x:0:\nsudo:x:27:\n")
    root.write_file("/etc/shadow", "root:*:19000:0:99999:7:::\n", mode=0o640)
    root.write_file("/etc/hostname", "localhost\n")
    root.write_file(
        "/etc/os-release", 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nNAME="Debian"\n'
    )
    root.write_file("/sys/class/net/eth0/address", "fa:16:3e:11:22:33\n")
    root.write_file("/sys/class/net/eth0/operstate", "up\n")
    root.write_file("/sys/class/net/eth0/carrier", "1\n")
    root.write_file("/lib/systemd/systemd-networkd", "")  # the image's network system
    # What an image's recipe puts in the agent config (Debian's cloud.cfg has the same).
    root.write_file(
        "/etc/metaboot/agent.d/00-image.yaml",
        "system_info:\n  default_user: {name: debian, groups: [sudo], shell: /bin/bash}\n",
    )
    root.write_file("/sys/class/net/lo/address", "00:00:00:00:00:00\n")
    return root


def write_drive_dir(root: Root, guest_dir: str, docs: DocumentTree) -> None:
    for path, body in docs.drive_files(os.urandom).items():
        root.write_file(f"{guest_dir}/{path}", body)


def agent_config(root: Root, settings: dict[str, Any], name: str | None = None) -> None:
    path = f"/etc/metaboot/agent.d/{name}" if name else "/etc/metaboot/agent.yaml"
    root.write_file(path, yaml.safe_dump(settings))


def http_only(
    url: str, *, sources: list[str] | None = None, max_wait: float = 2.0
) -> dict[str, Any]:
    """Agent settings that point every HTTP source at ``url`` (never the link-local address)."""
    return {
        "datasource_list": sources or ["ConfigDrive", "OpenStack", "Ec2", "NoCloud"],
        "datasource": {
            "OpenStack": {"metadata_urls": [url], "max_wait": max_wait, "timeout": 2, "retries": 2},
            "Ec2": {"metadata_urls": [url], "max_wait": max_wait, "timeout": 2, "retries": 2},
        },
    }


# ---- modules -------------------------------------------------------------------------------


def recording_module(
    name: str,
    stage: Stage,
    frequency: Frequency = Frequency.INSTANCE,
    keys: tuple[str, ...] = (),
    schema: dict[str, Any] | None = None,
    action: Callable[[ModuleContext], None] | None = None,
) -> Module:
    """A module that appends one line per run to /var/lib/test-runs/<name> in the root."""

    def handle(ctx: ModuleContext) -> None:
        path = f"/var/lib/test-runs/{name}"
        values = {k: ctx.cfg.get(k) for k in keys}
        line = json.dumps({"instance": ctx.instance.instance_id, "values": values}) + "\n"
        ctx.root.write_file(path, line, append=True)
        ctx.report.changed(f"recorded a run of {name}")
        if action is not None:
            action(ctx)

    return Module(name, stage, frequency, keys, handle, schema or {})


def runs(root: Root, name: str) -> list[dict[str, Any]]:
    text = root.read_text(f"/var/lib/test-runs/{name}", default="")
    return [json.loads(line) for line in text.splitlines()]


class Registry:
    def __init__(self, modules: list[Module]) -> None:
        self.modules = {m.name: m for m in modules}

    def defaults(self) -> dict[Stage, list[str]]:
        out: dict[Stage, list[str]] = {}
        for module in self.modules.values():
            out.setdefault(module.stage, []).append(module.name)
        return out

    def load(self, name: str) -> Module:
        try:
            return self.modules[name]
        except KeyError:
            raise LookupError(f"no module {name!r}") from None

    def activated_by(self, name: str) -> tuple[str, ...] | None:
        return None  # a test's modules are always loaded, then skipped by their own keys


def run_agent(
    root: Root,
    registry: Registry,
    stages: list[Stage] | None = None,
    config_file: str | None = None,
) -> tuple[int, str, list[str]]:
    """Run stages in this process; returns (exit code, console output, console secrets)."""
    out = io.StringIO()
    shown: list[str] = []
    options = runner.Options(
        root=root, config_file=config_file, out=out, registry=registry, console=shown.append
    )
    code = runner.run(options, stages or list(runner.STAGE_ORDER))
    return code, out.getvalue(), shown


def reboot(root: Root) -> None:
    """What a reboot does to the agent's world: /run is a fresh tmpfs."""
    import shutil

    shutil.rmtree(root.path("/run"), ignore_errors=True)


def status(root: Root) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(root.read_bytes("/run/metaboot/status.json"))
    return loaded


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def add_shell(root: Root) -> None:
    """Give a test tree a working /bin/sh (the host's dash and its libraries) so that user
    commands can run inside it through chroot, as they would in a real image."""
    import shutil
    import subprocess

    dash = shutil.which("dash") or "/bin/sh"
    root.makedirs("/bin")
    shutil.copy2(dash, root.path("/bin/sh"))
    listing = subprocess.run(["ldd", dash], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        parts = line.split()
        library = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if library.startswith("/"):
            target = root.path(library)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, target)


# ---- the real service ----------------------------------------------------------------------


def loopback_spec(**changes: Any) -> dict[str, Any]:
    """An instance the service identifies by the address the agent's requests come from."""
    port = {
        "id": "7c1e5a0b-2f4d-4e6a-8b9c-0d1e2f3a4b5c",
        "network_id": "loopback",
        "mac": "fa:16:3e:11:22:33",
        "fixed_ips": ["127.0.0.1"],
        "subnets": [{"cidr": "127.0.0.0/8", "gateway": "127.0.0.254", "dns": ["127.0.0.53"]}],
    }
    return spec(ports=[port], **changes)


@contextmanager
def metaboot_serve(tmp: Path, specs: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """``metaboot serve`` as its own process on 127.0.0.1:<ephemeral>, its registry holding
    ``specs``; yields (base URL, registry URL). Stopped (SIGTERM, then kill) on exit."""
    import re
    import subprocess
    import sys

    from metaboot.registry import Registry

    db = f"sqlite:///{tmp / 'registry.db'}"
    with Registry.open(db) as registry:
        for item in specs:
            registry.add(parse_spec(item))
    config = tmp / "metaboot.toml"
    config.write_text("[rate_limit]\nrequests = 0\n")
    argv = [sys.executable, "-m", "metaboot.cli", "serve", "--db", db]
    argv += ["--listen", "127.0.0.1:0", "--config", str(config), "--log-level", "warning"]
    proc = subprocess.Popen(
        argv,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            found = re.search(r"metadata listening on (http://\S+)", line)
            if found:
                url = found.group(1)
            elif not line and proc.poll() is not None:
                raise RuntimeError("metaboot serve exited before listening")
        if url is None:
            raise RuntimeError("metaboot serve did not start")
        from metaboot.guest.http import TransportError, request

        for _ in range(200):  # workers load their cache after the socket exists
            try:
                if request("GET", url + "/openstack").status == 200:
                    break
            except TransportError:
                pass
            time.sleep(0.05)
        yield url, db
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
