"""metaboot.client: what a program inside the VM reads — the agent's record, or the sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metaboot import client
from metaboot.errors import MetabootError
from metaboot.guest.system import Root
from tests.guest.helpers import (
    KEY,
    UUID,
    ServerState,
    dead_url,
    make_root,
    metadata_server,
    spec,
    tree,
    write_drive_dir,
)

REPO = Path(__file__).resolve().parents[1]
DRIVE = "/var/lib/metaboot/seed/config_drive"
UNPRIVILEGED = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")


def _init(root: Root) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        ["python3", "-m", "metaboot.cli", "init", "--root", str(root.base)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert "metaboot finished" in result.stdout, result.stdout + result.stderr


@pytest.fixture
def booted() -> Iterator[Root]:
    """A tree the agent has configured from a config drive directory (world-traversable, so
    an unprivileged process can be tried on it)."""
    base = Path(tempfile.mkdtemp(prefix="metaboot-client-"))
    base.chmod(0o755)
    try:
        root = make_root(base)
        docs = tree(spec(meta={"role": "db", "tier": "gold"}), vendor={"secret": "vendor-token"})
        write_drive_dir(root, DRIVE, docs)
        _init(root)
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_get_reads_what_the_agent_recorded(booted: Root) -> None:
    assert client.get("v1.instance_id", root=booted.base) == UUID
    assert client.get("instance_id", root=booted.base) == UUID
    assert client.get("v1.local-hostname", root=booted.base) == "agent-test"
    assert client.get("ds.meta_data.meta.role", root=booted.base) == "db"
    assert client.get("v1.public_ssh_keys.0", root=booted.base) == KEY
    # As root the full document: vendor data is there.
    assert client.get("ds.vendor_data.secret", root=booted.base) == "vendor-token"
    doc = client.instance_data(booted.base)
    assert doc["v1"]["availability_zone"] == "zone-a"


def test_missing_keys_and_defaults(booted: Root) -> None:
    with pytest.raises(client.NotAvailable, match=r"v1\.nope: no key 'nope' under v1"):
        client.get("v1.nope", root=booted.base)
    assert client.get("v1.nope", None, root=booted.base) is None
    assert client.get("ds.meta_data.meta.absent", "fallback", root=booted.base) == "fallback"


def test_an_unprivileged_program_gets_the_redacted_copy(booted: Root) -> None:
    code = (
        "import json, sys\n"
        "from metaboot import client\n"
        "print(json.dumps([client.get('v1.instance_id', root=sys.argv[1]),"
        " client.get('ds.vendor_data', root=sys.argv[1])]))\n"
    )
    result = subprocess.run(
        [*UNPRIVILEGED, "/usr/bin/python3", "-c", code, str(booted.base)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [UUID, "redacted for non-root user"]


def test_before_the_agent_ran_and_bad_files(tmp_path: Path) -> None:
    root = make_root(tmp_path / "fresh")
    with pytest.raises(client.NotAvailable, match=r"has 'metaboot init' run\?"):
        client.instance_data(root.base)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MetabootError, match=r"bad\.json: not valid JSON"):
        client.instance_data(path=str(bad))
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(MetabootError, match=r"list\.json: not a JSON object"):
        client.instance_data(path=str(listed))


def test_read_from_a_config_drive_directory(tmp_path: Path) -> None:
    root = make_root(tmp_path / "vm")
    write_drive_dir(root, DRIVE, tree(spec()))
    data = client.read(["ConfigDrive"], root=root.base)
    assert data.instance_id == UUID
    assert data.source == "ConfigDrive"
    assert data.public_keys == [KEY]
    assert data.user_data == b"#cloud-config\nhostname: from-user-data\n"
    # Nothing was written: reading is not configuring.
    assert not root.path("/run/metaboot").exists()
    assert not root.path("/var/lib/metaboot/instances").exists()


def test_read_from_the_service_with_settings_and_agent_config(tmp_path: Path) -> None:
    root = make_root(tmp_path / "vm")
    with metadata_server(ServerState(tree(spec()))) as (url, state):
        data = client.read(
            ["OpenStack"], root=root.base, settings={"OpenStack": {"metadata_urls": [url]}}
        )
        assert data.instance_id == UUID and data.service_url == url
        assert any(path.startswith("/openstack/") for _, path, _ in state.log)
        # Without explicit settings, the agent's own config decides where to ask.
        root.write_file(
            "/etc/metaboot/agent.yaml",
            "datasource_list: [OpenStack]\n"
            f"datasource:\n  OpenStack: {{metadata_urls: ['{url}'], max_wait: 2}}\n",
        )
        assert client.read(root=root.base).instance_id == UUID


def test_read_names_every_source_it_tried(tmp_path: Path) -> None:
    root = make_root(tmp_path / "vm")
    dead = dead_url()
    settings = {"OpenStack": {"metadata_urls": [dead], "max_wait": 0, "timeout": 1}}
    with pytest.raises(client.NotAvailable) as err:
        client.read(["ConfigDrive", "OpenStack", "Bogus"], root=root.base, settings=settings)
    message = str(err.value)
    assert "ConfigDrive: absent" in message
    assert "OpenStack: absent" in message
    assert "Bogus: unknown" in message
