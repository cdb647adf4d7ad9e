"""Fixtures for the module tests: realistic roots, validated cloud-config, module contexts.

Every cloud-config document a test applies goes through ``cloud_config``, which checks it with
Debian's cloud-init schema (no errors, and no deprecated syntax unless the test says so) and
with metaboot's own module schemas.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metaboot.guest.modules import combined_schema
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root
from tests.guest.modules.modharness import (
    AGENT_CONFIG,
    CloudConfig,
    Harness,
    KeyPair,
    MakeHarness,
    instance_data,
    merge,
)
from tests.guest.modules.schemacheck import SchemaChecker
from tests.guest.os.accountways import account_way  # noqa: F401 - a fixture
from tests.guest.os.guestroots import build_root


@pytest.fixture
def guest_root(tmp_path: Path) -> Root:
    return build_root(tmp_path / "root")


@pytest.fixture
def chroot_root(tmp_path: Path) -> Root:
    if os.geteuid() != 0:
        pytest.skip("entering a root with chroot needs root")
    return build_root(tmp_path / "root", chrootable=True)


@pytest.fixture(scope="session")
def schema_checker() -> Iterator[SchemaChecker]:
    checker = SchemaChecker(combined_schema())
    try:
        yield checker
    finally:
        checker.close()


@pytest.fixture
def cloud_config(schema_checker: SchemaChecker) -> CloudConfig:
    """Parse a ``#cloud-config`` document after checking it against both schemas."""

    def parse(text: str, *, deprecated: bool = False) -> dict[str, Any]:
        assert text.startswith("#cloud-config\n"), "a cloud-config document starts so"
        doc = yaml.safe_load(text) or {}
        verdict = schema_checker.check(doc)
        assert verdict.errors == [], f"cloud-init rejects the document: {verdict.errors}"
        assert verdict.ours == [], f"metaboot's module schemas reject it: {verdict.ours}"
        if deprecated:
            assert verdict.deprecations, "the test says this syntax is deprecated; it is not"
        else:
            assert verdict.deprecations == [], f"deprecated syntax: {verdict.deprecations}"
        return dict(doc)

    return parse


@pytest.fixture
def harness(cloud_config: CloudConfig) -> MakeHarness:
    """``harness(root, user_data_text=None, instance=None, agent=AGENT_CONFIG)``."""

    def make(
        root: Root,
        user_data: str | None = None,
        *,
        instance: InstanceData | None = None,
        agent: str = AGENT_CONFIG,
        deprecated: bool = False,
    ) -> Harness:
        cfg = yaml.safe_load(agent) or {}
        if user_data is not None:
            cfg = merge(cfg, cloud_config(user_data, deprecated=deprecated))
        return Harness(root, cfg, instance or instance_data())

    return make


@pytest.fixture(scope="session")
def keypairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """Real SSH key pairs: two ed25519 users' keys and an RSA key (PEM) for passwords."""
    base = tmp_path_factory.mktemp("keypairs")
    out: dict[str, KeyPair] = {}
    for name, kind in (("alice", "ed25519"), ("bob", "ed25519"), ("operator", "rsa")):
        path = base / name
        extra = ["-b", "2048", "-m", "PEM"] if kind == "rsa" else []
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                kind,
                *extra,
                "-N",
                "",
                "-C",
                f"{name}@example",
                "-f",
                str(path),
            ],
            check=True,
        )
        out[name] = KeyPair(path, path.with_suffix(".pub").read_text().strip())
    return out
