"""Fixtures for proxy tests: a stand-in upstream that echoes what the proxy sent, and proxy
processes run exactly as an operator runs them (``metaboot proxy …``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import EchoUpstream, ProxyProcess
from tests.proxy.netns import Topology, build_topology


@pytest.fixture
def echo_upstream(tmp_path: Path) -> Iterator[EchoUpstream]:
    upstream = EchoUpstream(f"unix:{tmp_path}/upstream.sock")
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def proxies() -> Iterator[list[ProxyProcess]]:
    """Collects the proxy processes a test starts and stops them all afterwards."""
    started: list[ProxyProcess] = []
    try:
        yield started
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    """Two tenant networks with the same addresses, one qdhcp-style, one qrouter-style
    (tests/proxy/netns.py); shared by a module's tests, removed after them."""
    built = build_topology()
    try:
        yield built
    finally:
        built.remove()
