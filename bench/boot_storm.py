#!/usr/bin/env python3
"""Boot storm: N VMs start at once and each does cloud-init's OpenStack crawl, through the
metadata proxy and straight to the service, in the same run.

Each simulated VM has its own source address on loopback (127.1.x.y; all of 127/8 is local on
Linux) and its own instance in the registry, so the service really identifies every requester:
through the proxy by network + ``X-Forwarded-For`` (UNIX socket upstream, as deployed), directly
by the TCP source address. A VM's crawl is what cloud-init 22.4's OpenStack reader fetches: the
``/openstack`` listing, the version's five files, then the EC2 meta-data tree walked listing by
listing (~27 requests), one connection per request as its ``readurl`` does. Every answer is
checked (status 200 or an expected 404, and ``meta_data.json`` must carry the VM's own uuid).

Prints, per N: total wall time of the storm, requests/s, p50/p99 latency per request, errors,
and the proxy/direct ratios. The machine is shared: read the ratios, not the absolute figures.
Bounded: every request times out, every storm is cut at ``--max-seconds``; all processes are
stopped and the temporary directory removed at the end.

    .venv/bin/python bench/boot_storm.py                 # N = 100 and 1000
    .venv/bin/python bench/boot_storm.py --vms 20,50     # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from metaboot.metadata.instance import parse_spec  # noqa: E402
from metaboot.registry import Registry  # noqa: E402

NETWORK = "net-bench"
OPENSTACK_VERSION = "2018-08-27"  # the newest version cloud-init 22.4 asks for
OPENSTACK_FILES = (
    "meta_data.json",
    "user_data",
    "vendor_data.json",
    "vendor_data2.json",
    "network_data.json",
)
REQUEST_TIMEOUT = 30.0
NAMESPACE = uuid.UUID("5b1e7d0c-6f43-4c5e-8a53-6d1f0c2b9e77")


def vm_address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


def vm_uuid(index: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"vm-{index}"))


def vm_spec(index: int) -> dict[str, object]:
    return {
        "uuid": vm_uuid(index),
        "name": f"storm-{index}",
        "hostname": f"storm-{index}",
        "project_id": "bench",
        "keys": [
            {"name": "bench", "type": "ssh", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 bench"}
        ],
        "meta": {"role": "storm"},
        "user_data": f"#cloud-config\nhostname: storm-{index}\n",
        "ports": [
            {
                "network_id": NETWORK,
                "mac": "fa:16:3e:%02x:%02x:%02x" % (1, index // 256, index % 256),  # noqa: UP031
                "fixed_ips": [f"{vm_address(index)}/8"],
            }
        ],
    }


# -- processes -------------------------------------------------------------------------------
def _wait_for(proc: subprocess.Popen[bytes], stream_name: str, pattern: str, timeout: float) -> str:
    stream = proc.stdout if stream_name == "stdout" else proc.stderr
    assert stream is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            line = stream.readline()
            if not line:
                break
            seen += line
            match = re.search(pattern, line.decode(errors="replace"))
            if match:
                return match.group(1)
        elif proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{proc.args!r} did not start: {seen.decode(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    service: subprocess.Popen[bytes]
    proxy: subprocess.Popen[bytes]
    direct: tuple[str, int]
    proxied: tuple[str, int]


def start_stack(tmp: Path, vms: int) -> Stack:
    db = f"sqlite:///{tmp / 'registry.db'}"
    with Registry.open(db) as registry:
        for index in range(vms):
            registry.add(parse_spec(vm_spec(index)))
    config = tmp / "metaboot.toml"
    config.write_text("[rate_limit]\nrequests = 0\n")
    socket_path = tmp / "metadata.sock"
    service = subprocess.Popen(
        [sys.executable, "-m", "metaboot.cli", "serve", "--db", db, "--config", str(config),
         "--listen", "127.0.0.1:0", "--listen", f"unix:{socket_path}", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    port = _wait_for(service, "stderr", r"listening on http://127\.0\.0\.1:(\d+)", 60)
    # The UNIX socket is announced after the TCP one only if listed after it; wait for it.
    _wait_for(service, "stderr", r"listening on (unix:\S+)", 30)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "metaboot.cli", "proxy", "--network-id", NETWORK,
         "--listen", "127.0.0.1:0", "--upstream", f"unix:{socket_path}", "--access-log", "off",
         "--max-connections-per-source", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
    )  # fmt: skip
    proxy_port = _wait_for(proxy, "stdout", r"listening on 127\.0\.0\.1:(\d+)", 30)
    return Stack(service, proxy, ("127.0.0.1", int(port)), ("127.0.0.1", int(proxy_port)))


# -- the simulated guests --------------------------------------------------------------------
@dataclass
class StormResult:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    cut_short: bool = False


async def get(target: tuple[str, int], source: str, path: str) -> tuple[int, bytes]:
    """One request on its own connection, from ``source``, as cloud-init's readurl does."""
    reader, writer = await asyncio.open_connection(*target, local_addr=(source, 0))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: Cloud-Init/22.4.2\r\n"
            f"Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        body = await reader.readexactly(int(length.group(1))) if length else await reader.read()
        return status, body
    finally:
        writer.close()


async def crawl(target: tuple[str, int], index: int, result: StormResult) -> None:
    source = vm_address(index)

    async def fetch(path: str, optional: bool = False) -> bytes:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, body = await get(target, source, path)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
            result.errors.append(f"vm {index} {path}: {type(err).__name__}")
            return b""
        result.latencies.append(time.perf_counter() - started)
        if status != 200 and not (optional and status == 404):
            result.errors.append(f"vm {index} {path}: HTTP {status}")
            return b""
        return body

    listing = await fetch("/openstack")
    version = OPENSTACK_VERSION if OPENSTACK_VERSION in listing.decode() else "latest"
    for name in OPENSTACK_FILES:
        body = await fetch(f"/openstack/{version}/{name}", optional=name != "meta_data.json")
        mine = vm_uuid(index)
        if name == "meta_data.json" and body and json.loads(body).get("uuid") != mine:
            result.errors.append(f"vm {index}: meta_data.json of another instance")

    async def walk(path: str) -> None:
        for line in (await fetch(path)).decode().splitlines():
            if "=" in line:  # public-keys: "0=name" is the directory "0/"
                await walk(f"{path}{line.split('=', 1)[0]}/")
            elif line.endswith("/"):
                await walk(path + line)
            elif line:
                await fetch(path + line)

    await walk("/2009-04-04/meta-data/")


async def storm(target: tuple[str, int], vms: int, max_seconds: float) -> StormResult:
    result = StormResult()
    started = time.perf_counter()
    tasks = [asyncio.create_task(crawl(target, index, result)) for index in range(vms)]
    try:
        async with asyncio.timeout(max_seconds):
            await asyncio.gather(*tasks)
    except TimeoutError:
        result.cut_short = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    result.wall = time.perf_counter() - started
    return result


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(rows: list[tuple[int, str, StormResult]]) -> None:
    print(
        f"{'N':>6} {'path':<8} {'requests':>9} {'total s':>8} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    for vms, mode, result in rows:
        count = len(result.latencies)
        rate = count / result.wall if result.wall else 0.0
        print(
            f"{vms:>6} {mode:<8} {count:>9} {result.wall:>8.2f} {rate:>8.0f} "
            f"{percentile(result.latencies, 0.5) * 1000:>8.2f} "
            f"{percentile(result.latencies, 0.99) * 1000:>8.2f} {len(result.errors):>7}"
            + ("  (cut short)" if result.cut_short else "")
        )
    print()
    by_n: dict[int, dict[str, StormResult]] = {}
    for vms, mode, result in rows:
        by_n.setdefault(vms, {})[mode] = result
    for vms, modes in by_n.items():
        direct, proxied = modes["direct"], modes["proxy"]
        print(
            f"N={vms}: proxy/direct total time x{proxied.wall / direct.wall:.2f}, "
            f"p50 x{percentile(proxied.latencies, 0.5) / percentile(direct.latencies, 0.5):.2f}, "
            f"p99 x{percentile(proxied.latencies, 0.99) / percentile(direct.latencies, 0.99):.2f}"
        )
    for vms, mode, result in rows:
        for error in result.errors[:5]:
            print(f"  N={vms} {mode}: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", default="100,1000", help="comma-separated storm sizes")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="cut a storm after this")
    args = parser.parse_args()
    sizes = [int(n) for n in args.vms.split(",")]
    if not sizes or min(sizes) < 1 or max(sizes) > 60000:
        parser.error("--vms: sizes between 1 and 60000")
    tmp = Path(tempfile.mkdtemp(prefix="metaboot-storm-"))
    stack = None
    try:
        stack = start_stack(tmp, max(sizes))
        rows: list[tuple[int, str, StormResult]] = []
        try:
            import uvloop

            runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        except ImportError:
            runner = asyncio.Runner()
        with runner:
            # Untimed: fill the service's per-instance cache, so that neither path is measured
            # with a cold cache the other one then enjoys warm.
            runner.run(storm(stack.direct, max(sizes), args.max_seconds))
            for vms in sizes:
                for mode, target in (("direct", stack.direct), ("proxy", stack.proxied)):
                    rows.append((vms, mode, runner.run(storm(target, vms, args.max_seconds))))
        print(
            f"boot storm: cloud-init OpenStack crawl per VM, one connection per request; "
            f"service 1 worker, proxy over a UNIX socket; median of "
            f"{statistics.median(len(r.latencies) / max(1, n) for n, _, r in rows):.0f} "
            f"requests per VM\n"
        )
        report(rows)
        return 1 if any(r.errors for _, _, r in rows) else 0
    finally:
        if stack is not None:
            stop(stack.proxy)
            stop(stack.service)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
