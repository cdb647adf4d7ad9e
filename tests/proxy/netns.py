"""Real tenant-network topologies in network namespaces, built and removed by the tests.

Two tenant networks use the SAME addresses (10.0.0.0/24, the VM at 10.0.0.5 and fe80::5 in
both), each with a "VM" namespace joined by a veth pair to the network's metadata namespace:

* network A, **qdhcp style** — the proxy binds 169.254.169.254:80 and [fe80::a9fe:a9fe%if]:80
  inside the DHCP namespace, which holds those addresses; the VM reaches 169.254.169.254 through
  a host route via the DHCP port (what DHCP option 121 installs);
* network B, **qrouter style** — the VM's default gateway is the router namespace, where an
  nftables REDIRECT turns 169.254.169.254:80 (and fe80::a9fe:a9fe:80) into port 9697, where the
  proxy listens with the router's identity; 9697 is refused to anything not redirected.

Every name carries a random suffix; ``Topology.remove`` deletes the namespaces (and with them the
veths and nftables tables) after stopping what runs inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.proxy.helpers import ProxyProcess

VM_IPV4 = "10.0.0.5"
VM_IPV6 = "fe80::5"
# Each VM namespace also holds the addresses of two more "VMs" (.6/::6, .7/::7), so that
# instances with other metadata policies sit in the same tenant network.
EXTRA_HOSTS = (6, 7)
VMCLIENT = Path(__file__).with_name("vmclient.py")
METADATA_V4 = "169.254.169.254"
METADATA_V6 = "fe80::a9fe:a9fe"
ROUTER_PORT = 9697


def _run(args: list[str], *, input: bytes | None = None, timeout: float = 30) -> str:
    done = subprocess.run(args, input=input, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode()


@dataclass
class Namespace:
    name: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(self, *args: str, input: bytes | None = None, timeout: float = 30) -> str:
        return _run([*self.exec_prefix(), *args], input=input, timeout=timeout)

    def ip(self, *args: str) -> str:
        return _run(["ip", "-n", self.name, *args])

    def pids(self) -> list[int]:
        out = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True
        ).stdout
        return [int(p) for p in out.split()]


@dataclass
class TenantNetwork:
    label: str
    style: Literal["qdhcp", "qrouter"]
    network_id: str
    router_id: str | None
    vm: Namespace
    infra: Namespace  # the qdhcp or qrouter namespace
    vm_if: str
    infra_if: str
    mac: str
    proxy: ProxyProcess | None = None

    @property
    def identity_args(self) -> list[str]:
        if self.router_id is not None:
            return ["--router-id", self.router_id]
        return ["--network-id", self.network_id]

    @property
    def listen_args(self) -> list[str]:
        if self.style == "qdhcp":
            return [
                "--listen",
                f"{METADATA_V4}:80",
                "--listen",
                f"[{METADATA_V6}%{self.infra_if}]:80",
            ]
        return ["--listen", f"0.0.0.0:{ROUTER_PORT}", "--listen", f"[::]:{ROUTER_PORT}"]

    def base_url(self, family: int = 4) -> str:
        if family == 6:
            return f"http://[{METADATA_V6}%25{self.vm_if}]"
        return f"http://{METADATA_V4}"

    def start_proxy(self, upstream: str, *extra: str, log: Path | None = None) -> ProxyProcess:
        self.proxy = ProxyProcess(
            [*self.identity_args, *self.listen_args, "--upstream", upstream, *extra],
            prefix=self.infra.exec_prefix(),
            log_path=log,
        ).start()
        return self.proxy

    def stop_proxy(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None

    def curl(
        self, path: str, *args: str, family: int = 4, timeout: float = 10
    ) -> tuple[int, dict[str, str], bytes]:
        """``curl`` from inside the VM: (status, headers, body); status 0 = no HTTP answer."""
        marker = "\n--metaboot-curl-end--\n"
        args_ = [
            "curl", "-sS", "-g", "--max-time", str(timeout), "-D", "-",
            "-o", "/dev/stdout", "-w", marker + "%{http_code}",
            *args, self.base_url(family) + path,
        ]  # fmt: skip
        done = subprocess.run(
            [*self.vm.exec_prefix(), *args_], capture_output=True, timeout=timeout + 10
        )
        out, _, code = done.stdout.rpartition(marker.encode())
        status = int(code or b"0")
        head, _, body = out.partition(b"\r\n\r\n")
        while head.startswith(b"HTTP/1.1 100"):
            head, _, body = body.partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, body

    def client(self, requests: list[dict[str, Any]], timeout: float = 10) -> list[dict[str, Any]]:
        """Send ``requests`` from inside the VM with tests/proxy/vmclient.py."""
        job = {"iface": self.vm_if, "timeout": timeout, "requests": requests}
        out = self.vm.run(
            sys.executable, str(VMCLIENT), input=json.dumps(job).encode(), timeout=600
        )
        result: list[dict[str, Any]] = json.loads(out)
        return result

    def load(self, **load: Any) -> list[dict[str, Any]]:
        """Loop GETs from inside the VM for ``duration`` seconds (vmclient.py's load job)."""
        job = {"iface": self.vm_if, "load": load}
        out = self.vm.run(
            sys.executable, str(VMCLIENT), input=json.dumps(job).encode(),
            timeout=float(load["duration"]) + 60,
        )  # fmt: skip
        result: list[dict[str, Any]] = json.loads(out)
        return result

    def python(self, script: str, *args: str, timeout: float = 120) -> object:
        """Run a Python script inside the VM namespace; it prints one JSON value."""
        out = self.vm.run(sys.executable, "-c", script, *args, timeout=timeout)
        return json.loads(out)


@dataclass
class Topology:
    suffix: str
    networks: list[TenantNetwork] = field(default_factory=list)
    created: list[Namespace] = field(default_factory=list)

    @property
    def a(self) -> TenantNetwork:
        return self.networks[0]

    @property
    def b(self) -> TenantNetwork:
        return self.networks[1]

    def remove(self) -> None:
        for net in self.networks:
            net.stop_proxy()
        for ns in self.created:
            for pid in ns.pids():
                # Only what this topology started can live in its namespaces.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


def _nft_redirect(infra_if: str) -> bytes:
    return f"""
table inet metaboot_meta {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{infra_if}" ip daddr {METADATA_V4} tcp dport 80 redirect to :{ROUTER_PORT}
    iifname "{infra_if}" ip6 daddr {METADATA_V6} tcp dport 80 redirect to :{ROUTER_PORT}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    tcp dport {ROUTER_PORT} ct status dnat accept
    tcp dport {ROUTER_PORT} reject with tcp reset
  }}
}}
""".encode()


def _network(topology: Topology, label: str, style: Literal["qdhcp", "qrouter"]) -> TenantNetwork:
    suffix = topology.suffix
    kind = "d" if style == "qdhcp" else "r"
    vm = Namespace(f"mb-vm{label}-{suffix}")
    infra = Namespace(f"mb-q{kind}{label}-{suffix}")
    vm_if, infra_if = f"mbe{label}{suffix}", f"mbq{label}{suffix}"
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
    net = TenantNetwork(
        label=label,
        style=style,
        network_id=f"net-{label.lower()}-{suffix}",
        router_id=f"router-{label.lower()}-{suffix}" if style == "qrouter" else None,
        vm=vm,
        infra=infra,
        vm_if=vm_if,
        infra_if=infra_if,
        mac=mac,
    )
    for ns in (vm, infra):
        _run(["ip", "netns", "add", ns.name])
        topology.created.append(ns)
        ns.ip("link", "set", "lo", "up")
    _run(
        ["ip", "link", "add", vm_if, "netns", vm.name, "address", mac, "type", "veth",
         "peer", "name", infra_if, "netns", infra.name]
    )  # fmt: skip
    for ns, ifname in ((vm, vm_if), (infra, infra_if)):
        # Link-local addresses are set by hand (the same fe80::5 in both networks).
        ns.ip("link", "set", ifname, "addrgenmode", "none")
    vm.ip("addr", "add", f"{VM_IPV4}/24", "dev", vm_if)
    vm.ip("addr", "add", f"{VM_IPV6}/64", "dev", vm_if, "nodad")
    for host in EXTRA_HOSTS:
        vm.ip("addr", "add", f"10.0.0.{host}/24", "dev", vm_if)
        # Deprecated (preferred_lft 0): usable when bound to, never picked as a source.
        vm.ip("addr", "add", f"fe80::{host}/64", "dev", vm_if, "nodad", "preferred_lft", "0")
    infra.ip("addr", "add", f"{METADATA_V6}/64", "dev", infra_if, "nodad")
    if style == "qdhcp":
        infra.ip("addr", "add", "10.0.0.2/24", "dev", infra_if)
        infra.ip("addr", "add", f"{METADATA_V4}/32", "dev", infra_if)
    else:
        infra.ip("addr", "add", "10.0.0.1/24", "dev", infra_if)
        infra.run("nft", "-f", "-", input=_nft_redirect(infra_if))
    vm.ip("link", "set", vm_if, "up")
    infra.ip("link", "set", infra_if, "up")
    if style == "qdhcp":
        vm.ip("route", "add", f"{METADATA_V4}/32", "via", "10.0.0.2")
    else:
        vm.ip("route", "add", "default", "via", "10.0.0.1")
    return net


def build_topology() -> Topology:
    topology = Topology(secrets.token_hex(3))
    try:
        topology.networks.append(_network(topology, "A", "qdhcp"))
        topology.networks.append(_network(topology, "B", "qrouter"))
    except BaseException:
        topology.remove()
        raise
    return topology
