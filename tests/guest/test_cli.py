"""The guest commands as real processes: init, status, query, analyze, schema, clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metaboot.guest.system import Root
from tests.guest.helpers import (
    KEY,
    UUID,
    ServerState,
    agent_config,
    dead_url,
    http_only,
    make_root,
    metadata_server,
    spec,
    tree,
    write_drive_dir,
)

REPO = Path(__file__).resolve().parents[2]
DRIVE = "/var/lib/metaboot/seed/config_drive"
SECRET = "s3cret-Passw0rd-never-logged"


def cli(
    *args: str, python: str = sys.executable, user: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    argv = [python, "-m", "metaboot.cli", *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def booted(tmp_path: Path, user_data: str = "#cloud-config\n{}\n", **changes: Any) -> Root:
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data=user_data, **changes)))
    result = cli("init", "--root", str(root.base))
    assert "metaboot finished" in result.stdout, result.stdout + result.stderr
    return root


def test_init_summary_log_and_no_secrets_in_the_log(tmp_path: Path) -> None:
    user_data = (
        "#cloud-config\nchpasswd:\n  users:\n"
        f"    - {{name: root, password: {SECRET}, type: text}}\n"
    )
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data=user_data)))
    result = cli("init", "--root", str(root.base), "--stage", "all")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"metaboot local: ConfigDrive seed-dir ({DRIVE}): {UUID} (new instance)"
    )
    assert any(line.startswith("metaboot finished: instance " + UUID) for line in lines)
    log = root.path("/var/log/metaboot.log")
    assert log.stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    assert f"instance {UUID} from ConfigDrive" in text
    assert SECRET not in text and SECRET not in result.stdout and SECRET not in result.stderr
    status_text = root.read_text("/run/metaboot/status.json")
    assert SECRET not in status_text and SECRET not in root.read_text(
        "/run/metaboot/instance-data.json"
    )


def test_init_rejects_bad_arguments(tmp_path: Path) -> None:
    result = cli("init", "--root", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert "metaboot init: error: --root" in result.stderr
    result = cli("init", "--root", str(tmp_path), "--stage", "sideways")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_disabled_marker(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    root.write_file("/etc/metaboot/disabled", "")
    result = cli("init", "--root", str(root.base))
    assert result.returncode == 0 and "disabled" in result.stdout
    assert not root.exists("/run/metaboot/status.json")
    status = cli("status", "--root", str(root.base))
    assert status.stdout.strip() == "status: disabled" and status.returncode == 0


def test_status_exit_codes_and_formats(tmp_path: Path) -> None:
    fresh = make_root(tmp_path / "fresh")
    result = cli("status", "--root", str(fresh.base))
    assert (result.returncode, result.stdout.strip()) == (0, "status: not started")

    good = booted(tmp_path / "good")
    result = cli("status", "--root", str(good.base), "--long")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("status: done\nextended_status: done\n")
    assert f"instance_id: {UUID}" in result.stdout

    bad_part = (
        "Content-Type: multipart/mixed; boundary=B\nMIME-Version: 1.0\n\n"
        "--B\nContent-Type: text/cloud-config\n\n#cloud-config\n: : :\n--B--\n"
    )
    degraded = booted(tmp_path / "degraded", bad_part)
    result = cli("status", "--root", str(degraded.base), "--format", "json")
    doc = json.loads(result.stdout)
    assert result.returncode == 2
    assert doc["status"] == "done" and doc["extended_status"] == "degraded done"
    assert any("invalid YAML at line 2" in e for e in doc["recoverable_errors"])
    assert doc["datasource"] == "ConfigDrive" and doc["instance_id"] == UUID

    broken = make_root(tmp_path / "broken")
    agent_config(broken, http_only(dead_url(), max_wait=0))
    cli("init", "--root", str(broken.base))
    result = cli("status", "--root", str(broken.base), "--format", "yaml")
    assert result.returncode == 1
    assert "status: error" in result.stdout
    assert "no instance data found" in result.stdout


def test_status_wait_follows_a_running_boot(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    state = ServerState(tree(), fail_first=2, retry_after=1)
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url, max_wait=20))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        init = subprocess.Popen(
            [sys.executable, "-m", "metaboot.cli", "init", "--root", str(root.base)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while not root.exists("/run/metaboot/status.json") and time.monotonic() < deadline:
                time.sleep(0.02)
            waited = cli("status", "--root", str(root.base), "--wait", "--format", "json")
        finally:
            init.wait(30)
    doc = json.loads(waited.stdout)
    assert doc["status"] == "done" and doc["datasource"] == "OpenStack"
    assert init.returncode in (0, 1)


@pytest.fixture
def shared_root() -> Iterator[Root]:
    """A tree outside pytest's private tmp dir, so an unprivileged user can read it."""
    base = Path(tempfile.mkdtemp(prefix="metaboot-query-"))
    base.chmod(0o755)
    try:
        yield make_root(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_query_keys_aliases_and_redaction(shared_root: Root) -> None:
    root = shared_root
    write_drive_dir(
        root, DRIVE, tree(spec(user_data="#cloud-config\n{}\n"), vendor={"secret": "vendor-token"})
    )
    cli("init", "--root", str(root.base))
    base = str(root.base)
    assert cli("query", "--root", base, "v1.instance_id").stdout == UUID + "\n"
    assert cli("query", "--root", base, "instance_id").stdout == UUID + "\n"
    assert cli("query", "--root", base, "v1.local-hostname").stdout == "agent-test\n"
    assert cli("query", "--root", base, "ds.meta_data.uuid").stdout == UUID + "\n"
    assert cli("query", "--root", base, "v1.availability_zone").stdout == "zone-a\n"
    assert cli("query", "--root", base, "v1.cloud_name").stdout == "openstack\n"
    assert cli("query", "--root", base, "v1.platform").stdout == "openstack\n"
    assert json.loads(cli("query", "--root", base, "v1.public_ssh_keys").stdout) == [KEY]
    assert cli("query", "--root", base, "v1.public_ssh_keys.0").stdout == KEY + "\n"
    assert cli("query", "--root", base, "ds.vendor_data.secret").stdout == "vendor-token\n"
    listed = cli("query", "--root", base, "--list-keys", "v1").stdout.split()
    assert {"instance_id", "local_hostname", "cloud_name", "distro"} <= set(listed)
    missing = cli("query", "--root", base, "v1.nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "metaboot query: error: v1.nope: no key 'nope' under v1"
    assert cli("query", "--root", base, "userdata").stdout == "#cloud-config\n{}\n"
    # An unprivileged user reads the redacted copy and cannot read user-data.
    python = "/usr/bin/python3"
    nobody = cli("query", "--root", base, "ds.vendor_data", python=python, user="nobody")
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.strip() == "redacted for non-root user"
    assert (
        cli("query", "--root", base, "v1.instance_id", python=python, user="nobody").stdout
        == UUID + "\n"
    )
    refused = cli("query", "--root", base, "userdata", python=python, user="nobody")
    assert refused.returncode == 1 and "only root may read it" in refused.stderr


def test_analyze_shows_time_per_stage_and_step(tmp_path: Path) -> None:
    root = booted(tmp_path)
    shown = cli("analyze", "--root", str(root.base)).stdout
    for stage in ("local", "network", "config", "final"):
        assert f"stage {stage}: " in shown
    assert "search-ConfigDrive  (found)" in shown
    assert "consume-user-data" in shown and shown.strip().splitlines()[-1].startswith("total: ")
    blame = cli("analyze", "--root", str(root.base), "blame").stdout.splitlines()
    seconds = [float(line.split()[0]) for line in blame]
    assert seconds == sorted(seconds, reverse=True)
    doc = json.loads(cli("analyze", "--root", str(root.base), "--format", "json").stdout)
    assert set(doc["stages"]) == {"local", "network", "config", "final"}
    nothing = cli("analyze", "--root", str(make_root(tmp_path / "empty").base))
    assert nothing.returncode == 1 and "has 'metaboot init' run?" in nothing.stderr


def test_schema_reports_yaml_errors_with_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("#cloud-config\n{}\n")
    result = cli("schema", str(good))
    assert result.returncode == 0 and result.stdout.strip().endswith("valid")
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\nusers:\n  - name: a\n   groups: b\n")
    result = cli("schema", str(bad))
    assert result.returncode == 1
    assert f"error: {bad} part 1 (text/cloud-config): invalid YAML at line 4" in result.stdout
    typed = tmp_path / "typed.yaml"
    typed.write_text(
        "#cloud-config\nhostname: web\nusers:\n  - name: a\n    groups: 5\npackages: [x]\n"
    )
    result = cli("schema", str(typed))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"error: {typed} part 1 (text/cloud-config): users[0].groups: " in result.stdout
    assert any("(line 5) [module users_groups]" in line for line in lines), lines
    assert any("key 'packages' (line 6) is not supported" in line for line in lines), lines
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02binary")
    result = cli("schema", str(junk))
    assert result.returncode == 1 and "unrecognised content (binary data" in result.stdout
    missing = cli("schema", str(tmp_path / "absent"))
    assert missing.returncode == 1 and "No such file" in missing.stderr


def test_clean_from_the_command_line(tmp_path: Path) -> None:
    root = booted(tmp_path)
    result = cli("clean", "--root", str(root.base), "--logs")
    assert result.returncode == 0
    assert "removed /var/lib/metaboot/instances" in result.stdout
    assert "removed /var/log/metaboot.log" in result.stdout
    assert not root.exists("/var/lib/metaboot/data/instance-id")
    assert cli("status", "--root", str(root.base)).stdout.strip() == "status: not started"
    again = cli("init", "--root", str(root.base))
    assert "(new instance)" in again.stdout


def test_jinja_templates_render_under_debians_python(tmp_path: Path) -> None:
    """Debian's python3 has python3-jinja2 (cloud-init needs it): a template part renders
    with the instance data, as cloud-init renders it."""
    probe = subprocess.run(["/usr/bin/python3", "-c", "import jinja2, yaml"], check=False)
    assert probe.returncode == 0, (
        "Debian's python3-jinja2 / python3-yaml missing: scripts/setup-system"
    )
    user_data = (
        "## template: jinja\n#cloud-config\n"
        "hostname: {{ v1.local_hostname }}-{{ ds.meta_data.meta.role }}\n"
    )
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data=user_data)))
    result = cli("init", "--root", str(root.base), python="/usr/bin/python3")
    assert "metaboot finished" in result.stdout, result.stderr
    merged = json.loads(root.read_bytes(f"/var/lib/metaboot/instances/{UUID}/cloud-config.json"))
    assert merged["cloud_config"]["hostname"] == "agent-test-test"


def test_a_plain_boot_loads_nothing_it_does_not_need(tmp_path: Path) -> None:
    """Start-up cost is import cost: a boot from a config drive with plain cloud-config must
    not load the MIME parser, the stdlib HTTP stack, argparse or jinja2."""
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data="#cloud-config\n{}\n")))
    code = (
        "import sys\n"
        "from metaboot.cli import main\n"
        f"main(['init', '--root', {str(root.base)!r}])\n"
        "print('@@' + ' '.join(sorted(sys.modules)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Debian's python3, as in a guest: the test venv's editable install loads importlib.util.
    out = subprocess.run(
        ["/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    loaded = set(out.rsplit("@@", 1)[1].split())
    assert "metaboot.guest.runner" in loaded and "yaml" in loaded
    unwanted = {"email.parser", "http.client", "urllib.request", "ssl", "argparse", "jinja2"}
    unwanted |= {"metaboot.service", "metaboot.registry", "metaboot.drive", "importlib.util"}
    assert loaded & unwanted == set()


def test_init_runs_without_the_cycle_collector_and_gives_it_back(tmp_path: Path) -> None:
    """As the program, init leaves the collector off to its end (the process ends with the
    boot); called as a function it turns it back on when it returns."""
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data="#cloud-config\n{}\n")))
    code = (
        "import gc, sys\n"
        "from metaboot import cli\n"
        "from metaboot.guest import runner\n"
        "seen = []\n"
        "real = runner.run\n"
        "runner.run = lambda *a: seen.append(gc.isenabled()) or real(*a)\n"
        f"print('@@', cli.main(['init', '--root', {str(root.base)!r}]), gc.isenabled())\n"
        "print('@@', seen)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert [line for line in out.splitlines() if line.startswith("@@")] == [
        "@@ 0 True",
        "@@ [False]",
    ]


def test_init_as_the_program_ends_the_process_after_its_exit_handlers(tmp_path: Path) -> None:
    """``metaboot init`` skips the interpreter's teardown (os._exit) but not what matters in
    it: exit handlers run (the log is flushed and closed), stdout is flushed, the exit code is
    the boot's."""
    root = make_root(tmp_path)
    write_drive_dir(root, DRIVE, tree(spec(user_data="#cloud-config\nbootcmd: 5\n")))
    code = (
        "import atexit, gc, sys\n"
        "from metaboot import cli\n"
        "atexit.register(lambda: print('@@ exit handler, collector', gc.isenabled()))\n"
        f"sys.argv = ['metaboot', 'init', '--root', {str(root.base)!r}]\n"
        "sys.stdout.write('@@ buffered, not yet flushed\\n')\n"
        "cli.main()\n"
        "print('@@ never reached')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stderr  # bootcmd: 5 is invalid settings: an error
    marks = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert marks == ["@@ buffered, not yet flushed", "@@ exit handler, collector False"]
    assert "metaboot finished: instance" in proc.stdout
    log = root.read_text("/var/log/metaboot.log")
    assert "module bootcmd" in log and log.endswith("\n")
