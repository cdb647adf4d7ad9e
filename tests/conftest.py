"""Suite-wide safety and shared fixtures.

Network safety: this process and every Python child it starts refuse to reach 169.254.169.254
or fe80::a9fe:a9fe from the machine's own namespace (tests/netguard/sitecustomize.py).
Tests that need the address create their own namespace or VM.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NETGUARD = Path(__file__).parent / "netguard"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(NETGUARD), os.environ.get("PYTHONPATH", "")) if p
)
# The namespace the suite runs in is "the machine's own"; children inherit the record.
os.environ.setdefault("METABOOT_HOST_NETNS", os.readlink("/proc/self/ns/net"))
sys.path.insert(0, str(NETGUARD))
import sitecustomize  # noqa: E402

sitecustomize.install()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests needing root when not root, with a reason rather than a confusing failure."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / VMs)")
    for item in items:
        if item.get_closest_marker("netns") or item.get_closest_marker("vm"):
            item.add_marker(skip)
