"""Helpers for the module tests: the agent config an image ships, merging, a module harness."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def rows(root: Root, table: str) -> dict[str, list[str]]:
    """The root's /etc/<table> as {name: fields}."""
    text = root.read_text(f"/etc/{table}")
    return {line.split(":")[0]: line.split(":") for line in text.splitlines() if line}


def members(root: Root, group: str) -> list[str]:
    return [m for m in rows(root, "group")[group][3].split(",") if m]


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: str
