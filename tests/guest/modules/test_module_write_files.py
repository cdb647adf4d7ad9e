"""write_files and write_files_deferred: encodings, modes, owners, append, defer."""

from __future__ import annotations

import base64
import gzip
import os

import pytest
import yaml

from metaboot.errors import ConfigError
from metaboot.guest.modules.write_files import decode_content, parse_permissions
from metaboot.guest.system import Root
from tests.guest.modules.modharness import Harness, MakeHarness, instance_data, rows
from tests.guest.modules.schemacheck import SchemaChecker


def stat(root: Root, path: str) -> tuple[int, int, int]:
    info = os.stat(root.path(path))
    return info.st_mode & 0o7777, info.st_uid, info.st_gid


def test_every_encoding_mode_and_owner(guest_root: Root, harness: MakeHarness) -> None:
    text = "line one\nline two\n"
    b64 = base64.b64encode(text.encode()).decode()
    gz_b64 = base64.b64encode(gzip.compress(text.encode())).decode()
    guest_root.write_file("/etc/motd", "Welcome.\n")
    h = harness(
        guest_root,
        f"""#cloud-config
write_files:
  - path: /etc/app/plain.conf
    content: |
      line one
      line two
  - path: /etc/app/b64.conf
    encoding: b64
    content: {b64}
    permissions: '0600'
  - path: /etc/app/gzb64.conf
    encoding: gz+b64
    content: {gz_b64}
    owner: nobody:nogroup
    permissions: '0o640'
  - path: /etc/motd
    content: "Managed by metaboot.\\n"
    append: true
  - path: /opt/tool/run.sh
    content: "#!/bin/sh\\necho hi\\n"
    permissions: '0755'
""",
    )
    report = h.run("write_files")
    nobody = rows(guest_root, "passwd")["nobody"]
    for path in ("/etc/app/plain.conf", "/etc/app/b64.conf", "/etc/app/gzb64.conf"):
        assert guest_root.read_text(path) == text
    assert stat(guest_root, "/etc/app/plain.conf") == (0o644, 0, 0)
    assert stat(guest_root, "/etc/app/b64.conf") == (0o600, 0, 0)
    assert stat(guest_root, "/etc/app/gzb64.conf") == (
        0o640,
        int(nobody[2]),
        int(rows(guest_root, "group")["nogroup"][2]),
    )
    assert guest_root.read_text("/etc/motd") == "Welcome.\nManaged by metaboot.\n"
    assert stat(guest_root, "/opt/tool/run.sh")[0] == 0o755
    assert len(report.changes) == 5


def test_deferred_files_wait_for_their_owner(guest_root: Root, harness: MakeHarness) -> None:
    doc = """#cloud-config
users: [default, {name: app}]
write_files:
  - path: /home/app/config.yaml
    content: "key: value\\n"
    owner: app:app
    permissions: '0600'
    defer: true
  - path: /etc/early.conf
    content: early
"""
    h = harness(guest_root, doc)
    h.run("write_files")
    assert guest_root.exists("/etc/early.conf") and not guest_root.exists("/home/app/config.yaml")
    h.run("users_groups")
    h.run("write_files_deferred")
    uid = int(rows(guest_root, "passwd")["app"][2])
    assert stat(guest_root, "/home/app/config.yaml")[:2] == (0o600, uid)
    assert guest_root.read_text("/etc/early.conf") == "early"


def test_bad_entries_fail_alone(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        """#cloud-config
write_files:
  - path: /etc/one
    content: one
  - path: /etc/two
    owner: ghost:ghost
  - path: /etc/three
    encoding: b64
    content: "***"
  - path: relative/path
  - path: /etc/four
    permissions: '0999'
  - path: /etc/five
    content: five
""",
    )
    with pytest.raises(ConfigError) as err:
        h.run("write_files")
    message = str(err.value)
    assert message.startswith("4 file(s) not written")
    for where in (
        "write_files[1].owner",
        "write_files[2].content",
        "write_files[3].path",
        "write_files[4].permissions",
    ):
        assert where in message
    assert guest_root.read_text("/etc/one") == "one" and guest_root.read_text("/etc/five") == "five"
    assert not guest_root.exists("/etc/two") and not guest_root.exists("/etc/four")


def test_gzip_bomb_refused(guest_root: Root, harness: MakeHarness) -> None:
    bomb = base64.b64encode(gzip.compress(b"\0" * (65 * 1024 * 1024))).decode()
    h = harness(
        guest_root,
        "#cloud-config\nwrite_files:\n  - path: /big\n    encoding: gzip+base64\n"
        f"    content: {bomb}\n",
    )
    with pytest.raises(ConfigError, match="decompresses to more than"):
        h.run("write_files")
    assert not guest_root.exists("/big")


def test_paths_stay_inside_the_root(
    guest_root: Root, harness: MakeHarness, tmp_path: object
) -> None:
    os.symlink("/", guest_root.path("/escape"))
    h = harness(
        guest_root,
        "#cloud-config\nwrite_files:\n  - path: /escape/../../etc/inside\n    content: x\n"
        "  - path: /escape/tmp/also-inside\n    content: y\n",
    )
    h.run("write_files")
    assert guest_root.read_text("/etc/inside") == "x"
    assert guest_root.read_text("/tmp/also-inside") == "y"
    assert not os.path.exists("/tmp/also-inside")


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0644", 0o644), ("0o600", 0o600), ("755", 0o755), (0o640, 0o640), (None, 0o644)],
)
def test_permissions(value: object, mode: int) -> None:
    assert parse_permissions(value, "w") == mode


def test_binary_content_and_unknown_encoding() -> None:
    assert decode_content(b"\x00\x01", "text/plain", "w") == b"\x00\x01"
    with pytest.raises(ConfigError, match="unknown encoding"):
        decode_content("x", "rot13", "w")


def test_unknown_key_in_an_entry_is_a_warning(
    guest_root: Root, schema_checker: SchemaChecker
) -> None:
    """cloud-init's schema rejects the typo; the agent warns and still writes the file."""
    cfg = yaml.safe_load(
        "write_files:\n  - path: /etc/typo\n    content: x\n    permision: '0600'\n"
    )
    verdict = schema_checker.check(cfg)
    assert verdict.errors and verdict.ours == []  # our schema leaves unknown keys to the module
    report = Harness(guest_root, cfg, instance_data()).run("write_files")
    assert guest_root.read_text("/etc/typo") == "x"
    assert report.warnings == ["write_files[0]: unknown key 'permision' ignored"]
