"""nova's injected files (meta_data.json ``files``, contents under ``openstack/content/``),
written by the agent on the instance's first boot, from a config drive or from the service —
the documents rendered by the metadata core, as the service and the drive builder hand them out.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from metaboot.guest.runner import PackageRegistry
from metaboot.guest.system import Root
from tests.guest.helpers import (
    ServerState,
    agent_config,
    http_only,
    make_root,
    metadata_server,
    run_agent,
    spec,
    status,
    tree,
    write_drive_dir,
)

FILES = [
    {"path": "/etc/injected/motd", "content": "injected by nova\n"},
    {"path": "/root/.bin-blob", "content_b64": base64.b64encode(b"\x00\x01\xfe\xff").decode()},
]


def written(root: Root) -> dict[str, tuple[bytes, int]]:
    out = {}
    for path in ("/etc/injected/motd", "/root/.bin-blob"):
        host = root.path(path)
        if host.exists():
            out[path] = (host.read_bytes(), os.stat(host).st_mode & 0o777)
    return out


EXPECTED = {
    "/etc/injected/motd": (b"injected by nova\n", 0o660),
    "/root/.bin-blob": (b"\x00\x01\xfe\xff", 0o660),
}


def test_from_the_config_drive(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    write_drive_dir(root, "/var/lib/metaboot/seed/config_drive", tree(spec(files=FILES)))
    agent_config(root, {"datasource_list": ["ConfigDrive"]}, "20-test.yaml")
    code, _, _ = run_agent(root, PackageRegistry())
    assert code == 0, status(root)
    assert written(root) == EXPECTED
    events = [e["name"] for e in status(root)["stages"]["network"]["events"]]
    assert "injected-files" in events


def test_from_the_service_once_per_instance(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    with metadata_server(ServerState(tree(spec(files=FILES)))) as (url, _):
        agent_config(root, http_only(url), "20-test.yaml")
        code, _, _ = run_agent(root, PackageRegistry())
        assert code == 0, status(root)
        assert written(root) == EXPECTED
        # The user edits one; the next boot of the same instance leaves it alone.
        root.write_file("/etc/injected/motd", "edited\n")
        code, _, _ = run_agent(root, PackageRegistry())
        assert code == 0
    assert root.read_text("/etc/injected/motd") == "edited\n"


def test_a_missing_content_is_reported_and_the_rest_written(tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    docs = tree(spec(files=FILES))
    write_drive_dir(root, "/var/lib/metaboot/seed/config_drive", docs)
    root.remove("/var/lib/metaboot/seed/config_drive/openstack/content/0000")
    agent_config(root, {"datasource_list": ["ConfigDrive"]}, "20-test.yaml")
    run_agent(root, PackageRegistry())
    assert written(root) == {"/root/.bin-blob": EXPECTED["/root/.bin-blob"]}
    problems = status(root)["stages"]["local"]["recoverable_errors"]
    assert any("files[0]: /content/0000 is missing; /etc/injected/motd" in p for p in problems)
