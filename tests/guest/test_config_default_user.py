"""With no default user configured — or the file that named it broken — the agent falls back to
the user cloud-init's own configuration gives the distribution, so the instance's key still
logs someone in (found by the VM test of an image whose agent.yaml has a syntax error)."""

from __future__ import annotations

from pathlib import Path

from metaboot.guest import config
from metaboot.guest.system import Root

DEBIAN_OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def test_broken_agent_yaml_keeps_a_default_user(tmp_path: Path) -> None:
    root = Root(tmp_path)
    root.write_file("/etc/os-release", DEBIAN_OS_RELEASE)
    root.write_file("/bin/bash", "")
    root.write_file(
        "/etc/metaboot/agent.yaml",
        "system_info:\n  default_user: {name: admin}\ndisable_root: [true\n",
    )
    loaded = config.load(root)
    assert any("agent.yaml" in p and "invalid YAML" in p for p in loaded.problems), loaded.problems
    user = loaded.cfg["system_info"]["default_user"]
    assert user["name"] == "debian" and user["groups"] == ["adm", "sudo"]
    assert user["shell"] == "/bin/bash" and user["lock_passwd"] is True


def test_a_configured_default_user_wins_and_null_means_none(tmp_path: Path) -> None:
    root = Root(tmp_path)
    root.write_file("/etc/os-release", DEBIAN_OS_RELEASE)
    root.write_file("/etc/metaboot/agent.yaml", "system_info:\n  default_user: {name: admin}\n")
    assert config.load(root).cfg["system_info"]["default_user"] == {"name": "admin"}
    root.write_file("/etc/metaboot/agent.yaml", "system_info:\n  default_user: null\n")
    assert config.load(root).cfg["system_info"]["default_user"] is None


def test_derivatives_and_unknown_systems(tmp_path: Path) -> None:
    root = Root(tmp_path)
    root.write_file("/etc/os-release", 'ID=linuxmint\nID_LIKE="ubuntu debian"\n')
    assert config.load(root).cfg["system_info"]["default_user"]["name"] == "ubuntu"
    root.write_file("/etc/os-release", "ID=plan9\n")
    assert "default_user" not in config.load(root).cfg.get("system_info", {})
    root.remove("/etc/os-release")
    assert "default_user" not in config.load(root).cfg.get("system_info", {})
