"""The default metadata addresses, for real, inside a network namespace this test creates:
``http://169.254.169.254`` and ``http://[fe80::a9fe:a9fe%IFACE]`` (IFACE = the first NIC that
is up), with no URL overridden. Nothing leaves the namespace; it is deleted afterwards."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metaboot.guest.system import Root
from tests.guest.helpers import REPO_ROOT, UUID, agent_config, make_root, spec, status

pytestmark = pytest.mark.netns


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"mbag-{secrets.token_hex(3)}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        # This kernel has veth but no dummy devices: a pair, both ends in the namespace.
        ip("-n", name, "link", "add", "mbd0", "type", "veth", "peer", "name", "mbd1")
        ip("-n", name, "link", "set", "mbd0", "up")
        ip("-n", name, "link", "set", "mbd1", "up")
        ip("-n", name, "addr", "add", "169.254.169.254/32", "dev", "mbd0")
        ip("-n", name, "addr", "add", "fe80::a9fe:a9fe/64", "dev", "mbd0", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


def in_namespace(name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


def namespace_env() -> dict[str, str]:
    """The environment for processes inside the test's own namespace. tests/netguard is left
    out on purpose: there the link-local addresses are this test's, and the guard cannot tell
    (under ``ip netns exec`` here, /proc/1/ns/net is unreadable, so it refuses everything).
    The namespace has no route out, so nothing can reach a real metadata service."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT))


@pytest.fixture
def served(namespace: str, tmp_path: Path) -> Iterator[str]:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec(user_data="#cloud-config\n{}\n")))
    argv = [sys.executable, "-m", "tests.guest.serve_tree", str(spec_file)]
    argv += ["169.254.169.254:80", "[fe80::a9fe:a9fe%mbd0]:80"]
    server = subprocess.Popen(
        in_namespace(namespace, *argv),
        stdout=subprocess.PIPE,
        text=True,
        env=namespace_env(),
        cwd=REPO_ROOT,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield namespace
    finally:
        server.terminate()
        server.wait(10)


def agent(namespace: str, root: Root) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "metaboot.cli", "init", "--root", str(root.base)]
    return subprocess.run(
        in_namespace(namespace, *argv),
        capture_output=True,
        text=True,
        env=namespace_env(),
        timeout=120,
        check=False,
    )


def nic_root(base: Path) -> Root:
    root = make_root(base)
    root.remove("/sys/class/net/eth0/operstate")
    root.write_file("/sys/class/net/mbd0/address", "fa:16:3e:11:22:33\n")
    root.write_file("/sys/class/net/mbd0/operstate", "up\n")
    return root


def test_ipv6_link_local_with_the_interface_placeholder(served: str, tmp_path: Path) -> None:
    root = nic_root(tmp_path / "v6")
    agent_config(
        root,
        {
            "datasource_list": ["OpenStack"],
            "datasource": {
                "OpenStack": {"metadata_urls": ["http://[fe80::a9fe:a9fe%IFACE]"], "max_wait": 5}
            },
        },
    )
    result = agent(served, root)
    assert result.returncode == 0, result.stdout + result.stderr
    record = status(root)
    assert record["instance_id"] == UUID
    assert record["subplatform"] == "metadata (http://[fe80::a9fe:a9fe%mbd0])"


def test_the_default_addresses_unchanged(served: str, tmp_path: Path) -> None:
    root = nic_root(tmp_path / "defaults")
    agent_config(root, {"datasource_list": ["OpenStack"]})
    result = agent(served, root)
    assert result.returncode == 0, result.stdout + result.stderr
    record = status(root)
    assert record["instance_id"] == UUID
    assert record["subplatform"] in (
        "metadata (http://169.254.169.254)",
        "metadata (http://[fe80::a9fe:a9fe%mbd0])",
    )
