"""Fixtures for the module tests: realistic roots, validated cloud-config, module contexts.

Every cloud-config document a test applies goes through ``cloud_config``, which checks it with
Debian's cloud-init schema (no errors, and no deprecated syntax unless the test says so) and
with metaboot's own module schemas.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "os"))

from guestroots import build_root
from schemacheck import SchemaChecker

from metaboot.guest.modules import combined_schema
from metaboot.guest.modules.base import ModuleContext, Report
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root

# What an image's /etc/metaboot/agent.yaml says, like Debian's cloud.cfg.
AGENT_CONFIG = """\
users: [default]
disable_root: true
preserve_hostname: false
manage_etc_hosts: true
system_info:
  default_user:
    name: debian
    lock_passwd: true
    gecos: Debian
    groups: [adm, audio, cdrom, dialout, dip, floppy, plugdev, sudo, video]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
  ssh_svcname: ssh
"""

STATE_DIR = "/var/lib/metaboot/instances/7b2c0a1e-6a52-4f0b-9e52-5d3c0d1f7a10"


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


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """cloud-init's default merge for config layers: mappings merge, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


CloudConfig = Callable[..., dict[str, Any]]


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


@dataclass
class Harness:
    """A module context over a root, with what the module showed on the console."""

    root: Root
    cfg: dict[str, Any]
    instance: InstanceData
    console: list[str] = field(default_factory=list)
    report: Report = field(default_factory=Report)

    def ctx(self) -> ModuleContext:
        self.report = Report()
        return ModuleContext(
            cfg=self.cfg,
            instance=self.instance,
            root=self.root,
            log=logging.getLogger("metaboot.modules.test"),
            report=self.report,
            console=self.console.append,
            state_dir=STATE_DIR,
        )

    def run(self, name: str) -> Report:
        from metaboot.guest.modules import load_module

        load_module(name).handle(self.ctx())
        return self.report


def instance_data(**overrides: Any) -> InstanceData:
    values: dict[str, Any] = {
        "source": "ConfigDrive",
        "instance_id": "7b2c0a1e-6a52-4f0b-9e52-5d3c0d1f7a10",
        "local_hostname": "web-1.novalocal",
        "public_keys": [],
        "subplatform": "config-disk (/dev/sr0)",
    }
    values.update(overrides)
    return InstanceData(**values)


MakeHarness = Callable[..., Harness]


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
