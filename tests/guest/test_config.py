"""Agent config: agent.yaml + agent.d/*.yaml, later wins, broken parts reported not fatal."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from metaboot.guest import config
from metaboot.guest.system import Root

REPO = Path(__file__).resolve().parents[2]


def write(root: Root, path: str, text: str) -> None:
    root.write_file(path, text)


def test_defaults_without_any_file(tmp_path: Path) -> None:
    loaded = config.load(Root(tmp_path))
    assert loaded.files == [] and loaded.problems == []
    assert loaded.cfg["datasource_list"] == ["ConfigDrive", "OpenStack", "Ec2", "NoCloud"]
    assert loaded.source_settings("OpenStack")["metadata_urls"] == [
        "http://169.254.169.254",
        "http://[fe80::a9fe:a9fe%IFACE]",
    ]
    assert loaded.pinned_source is None


def test_drop_ins_apply_in_name_order_and_merge_mappings(tmp_path: Path) -> None:
    root = Root(tmp_path)
    write(
        root,
        "/etc/metaboot/agent.yaml",
        "disable_root: true\ndatasource:\n  OpenStack:\n    timeout: 7\n",
    )
    write(root, "/etc/metaboot/agent.d/20-late.yaml", "disable_root: false\n")
    write(root, "/etc/metaboot/agent.d/10-early.yaml", "disable_root: 1\nssh_pwauth: true\n")
    write(root, "/etc/metaboot/agent.d/05-ds.yaml", "datasource:\n  OpenStack:\n    max_wait: 3\n")
    write(root, "/etc/metaboot/agent.d/README", "not yaml: [\n")
    loaded = config.load(root)
    assert loaded.files == [
        "/etc/metaboot/agent.yaml",
        "/etc/metaboot/agent.d/05-ds.yaml",
        "/etc/metaboot/agent.d/10-early.yaml",
        "/etc/metaboot/agent.d/20-late.yaml",
    ]
    assert loaded.cfg["disable_root"] is False
    assert loaded.cfg["ssh_pwauth"] is True
    openstack = loaded.source_settings("OpenStack")
    assert (openstack["timeout"], openstack["max_wait"], openstack["retries"]) == (7, 3, 3)
    # 10-early's disable_root was the wrong type: reported, and the other keys kept.
    assert loaded.problems == [
        "/etc/metaboot/agent.d/10-early.yaml: disable_root: expected a boolean, got 1 (line 1); "
        "the default is used instead"
    ]


def test_a_broken_file_is_skipped_with_file_and_line(tmp_path: Path) -> None:
    root = Root(tmp_path)
    write(root, "/etc/metaboot/agent.yaml", "preserve_hostname: true\n")
    write(root, "/etc/metaboot/agent.d/50-bad.yaml", "datasource_list: [OpenStack\nssh_pwauth: x\n")
    write(root, "/etc/metaboot/agent.d/60-list.yaml", "- just\n- a list\n")
    loaded = config.load(root)
    assert loaded.cfg["preserve_hostname"] is True
    assert loaded.cfg["datasource_list"] == config.DEFAULT_SOURCES
    assert len(loaded.problems) == 2
    assert loaded.problems[0].startswith(
        "/etc/metaboot/agent.d/50-bad.yaml: invalid YAML at line 2"
    )
    assert loaded.problems[0].endswith("the file is ignored")
    assert loaded.problems[1] == (
        "/etc/metaboot/agent.d/60-list.yaml: expected a mapping at the top level; "
        "the file is ignored"
    )


def test_a_bad_nested_setting_keeps_its_siblings(tmp_path: Path) -> None:
    root = Root(tmp_path)
    write(
        root,
        "/etc/metaboot/agent.yaml",
        "datasource:\n  OpenStack:\n    metadata_urls: [http://127.0.0.1:9]\n    timeout: soon\n",
    )
    loaded = config.load(root)
    openstack = loaded.source_settings("OpenStack")
    assert openstack["metadata_urls"] == ["http://127.0.0.1:9"]
    assert openstack["timeout"] == 5.0
    assert loaded.problems == [
        "/etc/metaboot/agent.yaml: datasource.OpenStack.timeout: expected a number, got 'soon' "
        "(line 4); the default is used instead"
    ]


def test_module_lists_accept_names_and_frequency_pairs(tmp_path: Path) -> None:
    root = Root(tmp_path)
    write(
        root,
        "/etc/metaboot/agent.yaml",
        "cloud_init_modules:\n - users-groups\n - [ssh, always]\n - {name: bad}\n",
    )
    loaded = config.load(root)
    assert "cloud_init_modules" not in loaded.cfg
    assert "cloud_init_modules[2]" in loaded.problems[0]


def test_extra_config_file_applies_last_and_pins_a_source(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    root = Root(tmp_path / "root")
    write(root, "/etc/metaboot/agent.yaml", "datasource_list: [ConfigDrive, OpenStack]\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text("datasource_list: [OpenStack]\n")
    loaded = config.load(root, str(extra))
    assert loaded.files[-1] == str(extra)
    assert loaded.pinned_source == "OpenStack"
    extra.write_text("datasource_list: [ConfigDrive, None]\ndatasource: {pin: NoCloud}\n")
    assert config.load(root, str(extra)).pinned_source == "NoCloud"


def test_cloud_init_style_file_is_read_unchanged(tmp_path: Path) -> None:
    """Debian's own cloud.cfg, as an image recipe would copy it, is a valid agent config."""
    cloud_cfg = Path("/opt/metaboot/reference/cloud-init/etc/cloud/cloud.cfg")
    assert cloud_cfg.is_file(), "Debian's cloud-init is missing: run scripts/setup-system"
    root = Root(tmp_path)
    root.write_file("/etc/metaboot/agent.yaml", cloud_cfg.read_bytes())
    loaded = config.load(root)
    assert loaded.problems == []
    assert loaded.cfg["system_info"]["default_user"]["name"] == "debian"
    assert "users-groups" in loaded.cfg["cloud_init_modules"]


def load_without_parsing(root: Root, monkeypatch: pytest.MonkeyPatch) -> config.AgentConfig:
    """``config.load(remember=True)`` that fails the test if it parses any file."""

    def no_parsing(*args: object) -> None:
        raise AssertionError("parsed again")

    with monkeypatch.context() as patch:
        patch.setattr(config, "parse", no_parsing)
        return config.load(root, remember=True)


def test_a_later_stage_takes_the_merged_config_from_run_while_files_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Root(tmp_path)
    write(root, "/etc/metaboot/agent.yaml", "disable_root: false\n")
    write(root, "/etc/metaboot/agent.d/10-x.yaml", "datasource_list: [OpenStack]\n")
    first = config.load(root, remember=True)
    cache = root.path("/run/metaboot/agent-config.json")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600

    again = load_without_parsing(root, monkeypatch)
    assert (again.cfg, again.files, again.problems) == (first.cfg, first.files, first.problems)

    # Any change to the files read — content, a new drop-in, one removed — is seen.
    write(root, "/etc/metaboot/agent.yaml", "disable_root: true\n")
    assert config.load(root, remember=True).cfg["disable_root"] is True
    write(root, "/etc/metaboot/agent.d/20-y.yaml", "ssh_pwauth: true\n")
    assert config.load(root, remember=True).cfg["ssh_pwauth"] is True
    root.remove("/etc/metaboot/agent.d/20-y.yaml")
    assert "ssh_pwauth" not in config.load(root, remember=True).cfg
    # Without remember (metaboot schema), nothing is read from or written to /run.
    cache.unlink()
    config.load(root)
    assert not cache.exists()


def test_a_config_json_cannot_hold_is_parsed_each_time(tmp_path: Path) -> None:
    root = Root(tmp_path)
    write(root, "/etc/metaboot/agent.yaml", "system_info:\n  built: 2024-01-02\n")
    loaded = config.load(root, remember=True)
    assert str(loaded.cfg["system_info"]["built"]) == "2024-01-02"
    assert not root.exists("/run/metaboot/agent-config.json")


def test_the_parse_is_kept_across_boots_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new boot (nothing in /run) whose config files have the same bytes takes their parse
    from /var/cache/metaboot; other bytes, even with the same size and times, are parsed."""
    root = Root(tmp_path)
    write(root, "/etc/metaboot/agent.yaml", "disable_root: false\n")
    write(root, "/etc/metaboot/agent.d/10-x.yaml", "- not a mapping\n")
    first = config.load(root, remember=True)
    parsed = root.path("/var/cache/metaboot/agent-config.json")
    assert stat.S_IMODE(parsed.stat().st_mode) == 0o600
    assert first.problems and first.files == [
        "/etc/metaboot/agent.yaml",
        "/etc/metaboot/agent.d/10-x.yaml",
    ]

    root.remove("/run/metaboot/agent-config.json")  # the next boot
    again = load_without_parsing(root, monkeypatch)
    assert (again.cfg, again.files, again.problems) == (first.cfg, first.files, first.problems)

    host = root.path("/etc/metaboot/agent.yaml")
    info = host.stat()
    host.write_text("disable_root: true \n")  # the same size, and the same times put back
    os.utime(host, ns=(info.st_atime_ns, info.st_mtime_ns))
    root.remove("/run/metaboot/agent-config.json")
    assert config.load(root, remember=True).cfg["disable_root"] is True


def test_prime_leaves_the_parse_for_the_first_boot(tmp_path: Path) -> None:
    """What ``image prepare`` does: afterwards a first boot reads the config files without
    loading PyYAML (here it could not: the child has no PyYAML on its path)."""
    root = Root(tmp_path)
    write(root, "/etc/metaboot/agent.yaml", "ssh_pwauth: true\ndatasource_list: [OpenStack]\n")
    assert config.prime(root)
    assert not root.exists("/run/metaboot")  # nothing of a boot's own is left in an image
    code = (
        "import json, sys\n"
        "from metaboot.guest import config\n"
        "from metaboot.guest.system import Root\n"
        "loaded = config.load(Root(sys.argv[1]), remember=True)\n"
        "assert 'yaml' not in sys.modules\n"
        "print(json.dumps([loaded.cfg['ssh_pwauth'], loaded.cfg['datasource_list'], "
        "loaded.problems]))\n"
    )
    env = {"PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [True, ["OpenStack"], []]
