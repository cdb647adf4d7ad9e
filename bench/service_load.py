#!/usr/bin/env python3
"""Load benchmark: the metadata service against nginx serving the same bytes as static files.

Three scenarios, each run against both servers in the same run with the same load generator
(wrk, 64 connections by default):

* ``meta_data.json`` — ``/openstack/latest/meta_data.json`` (the service splices a fresh
  random_seed into every answer; nginx serves one fixed copy);
* ``instance-id`` — ``/2009-04-04/meta-data/instance-id``;
* ``crawl`` — the requests cloud-init's OpenStack reader makes at boot (the /openstack listing,
  the version's five files, then the EC2 meta-data tree walked listing by listing), cycled.

nginx (Debian's nginx-light) is started on a loopback port with its own configuration and
temporary directory and stopped afterwards; so is the service (``metaboot serve``, rate limits
off, ``--workers`` as given, nginx with the same number of worker processes). Every run is
bounded by ``--duration``. Only loopback is used.

Prints requests/s and p50/p99 latency per scenario and server, and the service/nginx ratio.
The machine is shared: read the ratios, not the absolute figures.

    .venv/bin/python bench/service_load.py --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from metaboot.metadata.instance import parse_spec  # noqa: E402
from metaboot.registry import Registry  # noqa: E402

SPEC = {
    "uuid": "3b0f3c1e-5b8a-4e55-9a77-7d9f4a0b2c11",
    "name": "bench-vm",
    "hostname": "bench-vm",
    "project_id": "bench",
    "keys": [{"name": "bench", "type": "ssh", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 bench"}],
    "meta": {"role": "bench"},
    "user_data": "#cloud-config\nhostname: bench-vm\n",
    "ports": [
        {
            "network_id": "bench",
            "mac": "fa:16:3e:00:00:42",
            "fixed_ips": ["127.0.0.1"],
            "subnets": [{"cidr": "127.0.0.0/8", "gateway": "127.0.0.254", "dns": ["127.0.0.53"]}],
        }
    ],
}
OPENSTACK_VERSION = "2018-08-27"  # the newest version cloud-init 22.4 knows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def crawl_paths(base: str) -> list[str]:
    """The paths cloud-init's OpenStack reader requests, in order (listings end with '/')."""
    paths = ["/openstack/"]
    for name in (
        "meta_data.json",
        "user_data",
        "vendor_data.json",
        "vendor_data2.json",
        "network_data.json",
    ):
        paths.append(f"/openstack/{OPENSTACK_VERSION}/{name}")

    def walk(listing_path: str) -> None:
        paths.append(listing_path)
        for line in fetch(base + listing_path).decode().splitlines():
            if "=" in line:  # public-keys: "0=name" is the directory "0/"
                walk(f"{listing_path}{line.split('=', 1)[0]}/")
            elif line.endswith("/"):
                walk(listing_path + line)
            else:
                paths.append(listing_path + line)

    walk("/2009-04-04/meta-data/")
    return paths


def start_service(tmp: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    db = f"sqlite:///{tmp / 'registry.db'}"
    with Registry.open(db) as registry:
        registry.add(parse_spec(SPEC))
    config = tmp / "metaboot.toml"
    config.write_text("[rate_limit]\nrequests = 0\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "metaboot.cli",
            "serve",
            "--db",
            db,
            "--listen",
            "127.0.0.1:0",
            "--workers",
            str(workers),
            "--config",
            str(config),
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"metadata listening on (http://\S+)", line)
        if match:
            url = match.group(1)
            for _ in range(100):  # workers load their cache after the sockets exist
                try:
                    fetch(url + "/latest/meta-data/instance-id")
                    return proc, url
                except OSError:
                    time.sleep(0.1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("metaboot serve did not start")


def start_nginx(
    tmp: Path, docs: dict[str, bytes], workers: int
) -> tuple[subprocess.Popen[str], str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    root = tmp / "www"
    for path, body in docs.items():
        target = root / (path.lstrip("/") + ("__index" if path.endswith("/") else ""))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    for directory in (tmp, *[p for p in tmp.rglob("*") if p.is_dir()]):
        directory.chmod(0o755)
    for file in root.rglob("*"):
        if file.is_file():
            file.chmod(0o644)
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
{user}
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;   # a fair baseline: no open/stat per request
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        index __index;
        location / {{ try_files $uri $uri/ =404; }}
    }}
}}
""")
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            fetch(url + "/2009-04-04/meta-data/instance-id")
            return proc, url
        except OSError:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise SystemExit(f"nginx failed: {err}") from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start")


LUA = """
local paths = {%s}
local i = 0
request = function()
    i = i %% #paths + 1
    return wrk.format("GET", paths[i])
end
"""


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    url: str, path: str | list[str], args: argparse.Namespace, tmp: Path
) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if isinstance(path, list):
        script = tmp / "crawl.lua"
        script.write_text(LUA % ", ".join(json.dumps(p) for p in path))
        cmd += ["-s", str(script), url + path[0]]
    else:
        cmd.append(url + path)
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.duration + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "non2xx": float(errors.group(1)) if errors else 0}


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (default 5)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="service and nginx workers")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run scripts/setup-system (setup/apt/bench.list)")

    tmp = Path(tempfile.mkdtemp(prefix="metaboot-bench-"))
    service = nginx = None
    try:
        service, service_url = start_service(tmp, args.workers)
        crawl = crawl_paths(service_url)
        docs = {path: fetch(service_url + path) for path in crawl}
        docs["/openstack/latest/meta_data.json"] = fetch(
            service_url + "/openstack/latest/meta_data.json"
        )
        nginx, nginx_url = start_nginx(tmp, docs, args.workers)
        scenarios: list[tuple[str, str | list[str]]] = [
            ("meta_data.json", "/openstack/latest/meta_data.json"),
            ("instance-id", "/2009-04-04/meta-data/instance-id"),
            (f"crawl ({len(crawl)} req)", crawl),
        ]
        print(
            f"# {args.connections} connections, {args.threads} wrk threads, "
            f"{args.duration}s per run, {args.workers} workers each, {os.cpu_count()} cores"
        )
        print(
            f"{'scenario':<18} {'server':<9} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'non-2xx':>8}"
        )
        ratios = []
        for name, target in scenarios:
            results = {}
            for label, url in (("metaboot", service_url), ("nginx", nginx_url)):
                r = results[label] = run_wrk(url, target, args, tmp)
                print(
                    f"{name:<18} {label:<9} {r['rps']:>10.0f} {r['p50']:>8.2f} "
                    f"{r['p99']:>8.2f} {r['non2xx']:>8.0f}"
                )
            ratio = results["metaboot"]["rps"] / results["nginx"]["rps"]
            ratios.append(ratio)
            print(
                f"{name:<18} {'ratio':<9} {ratio:>10.2f}  (metaboot/nginx requests/s; "
                f"target >= 0.50, metaboot p99 {results['metaboot']['p99']:.2f} ms, "
                f"target < 20)"
            )
        print(f"# lowest ratio {min(ratios):.2f}")
    finally:
        for proc in (service, nginx):
            if proc is not None:
                stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
