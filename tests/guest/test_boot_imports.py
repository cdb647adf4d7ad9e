"""A first boot imports what it uses and nothing else (start-up is most of the agent's time).

The boot runs for real in a child process — the OpenStack source against an HTTP metadata
server on loopback, network rendering, user-data, every default module — and the child reports
the modules it had loaded when it finished.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from metaboot.guest import bundle, config
from metaboot.guest.status import summarize
from tests.guest.helpers import (
    REPO_ROOT,
    ServerState,
    agent_config,
    http_only,
    make_root,
    metadata_server,
    spec,
    status,
    tree,
)

USER_DATA = """#cloud-config
hostname: web-1
manage_etc_hosts: true
users:
  - default
  - name: deploy
    groups: [sudo]
write_files:
  - path: /etc/motd
    content: "hello\\n"
ssh_genkeytypes: [ed25519]
"""

# Loaded by a boot only when it needs them; none is needed by this one.
NEVER_ON_THIS_BOOT = {
    "dataclasses": "records are metaboot.guest.records",
    "inspect": "pulled in by dataclasses",
    "typing": "annotations are not evaluated; typing names are imported for mypy only",
    "hashlib": "loads OpenSSL; the network manifest's SHA-256 comes from CPython's own module",
    "uuid": "only NetworkManager's renderer names connections by UUID",
    "platform": "pulled in by uuid",
    "argparse": "init's usual options are parsed without it",
    "logging": "the agent writes its log itself (metaboot.guest.log)",
    "pathlib": "Root maps paths as strings; only code that asks for a Path loads it",
    "copy": "the config defaults are copied by a four-line function (copy loads weakref)",
    "string": "final_message fills its placeholders with string methods",
    "subprocess": "blkid and the background ssh-keygen start through os.posix_spawnp",
    "traceback": "only to log an exception",
    "http.client": "the agent has its own small HTTP/1.1 client",
    "urllib.parse": "the HTTP client splits its http:// URLs itself (tested against urlsplit)",
    "ssl": "no HTTPS on this boot",
    "email": "no MIME user-data on this boot",
    "urllib.request": "no #include on this boot",
    "tempfile": "temporary files are named by the agent itself",
    "ipaddress": "the network model's addresses are metaboot.guest.addresses",
    "shutil": "only to find chroot for a non-live root (with bz2 and lzma)",
    "bz2": "pulled in by shutil",
    "queue": "only when several metadata URLs race",
    "encodings.idna": "ASCII host names reach getaddrinfo as bytes",
    "socket": "the HTTP client makes its connections from _socket",
    "selectors": "pulled in by socket",
    "shlex": "only to quote a command given as a list, or split a vendor script prefix",
    "metaboot.guest.network.nocloud": "the network data is network_data.json",
    "metaboot.guest.network.renderers.netplan": "the image has systemd-networkd only",
    "metaboot.guest.network.renderers.networkmanager": "the image has systemd-networkd only",
    "metaboot.guest.network.renderers.ifupdown": "the image has systemd-networkd only",
    "metaboot.guest.network.renderers.ifcfg": "the image has systemd-networkd only",
    "jinja2": "no jinja template part",
    "metaboot.guest.os.keycrypt": "only set_passwords' publish_password encrypts (RSA)",
    "metaboot.guest.modules._platform_password": "only publish_password posts a password",
    "metaboot.guest.os.services": "no ssh_pwauth change, so no sshd reload",
    "metaboot.guest.os.power": "no power_state",
    "metaboot.guest.os.commands": "no bootcmd, runcmd or script to run",
    "metaboot.guest.scripts": "no script or boothook in the user-data",
    "metaboot.guest.template": "no jinja template part",
    # Modules whose settings are absent are skipped without being imported (ACTIVATED_BY).
    "metaboot.guest.modules.bootcmd": "no bootcmd",
    "metaboot.guest.modules.runcmd": "no runcmd",
    "metaboot.guest.modules.set_passwords": "no password, chpasswd or ssh_pwauth",
    "metaboot.guest.modules.set_locale": "no locale",
    "metaboot.guest.modules.timezone": "no timezone",
    "metaboot.guest.modules.power_state_change": "no power_state",
    "metaboot.guest.os.passwords": "no password to hash or generate",
}

# As the program (``sys.argv``), init ends the process itself once its exit handlers ran:
# the listing is written by one of them.
CHILD = """
import atexit, json, runpy, sys
root, listing, stage = sys.argv[1:4]
sys.argv = ["metaboot", "init", "--root", root, "--stage", stage]
before = set(sys.modules)

def write_listing():
    with open(listing, "w") as out:
        json.dump(sorted(sys.modules), out)
    origins = {
        name: getattr(getattr(module, "__spec__", None), "origin", None)
        for name, module in sys.modules.items()
        if name not in before
    }
    with open(listing + ".new", "w") as out:
        json.dump(origins, out)

atexit.register(write_listing)
runpy.run_module("metaboot.cli", run_name="__main__")
"""


def test_a_first_boot_imports_only_what_it_uses(tmp_path: Path) -> None:
    state = ServerState(tree(spec(user_data=USER_DATA)))
    with metadata_server(state) as (url, _):
        root = make_root(tmp_path / "root")
        root.write_file("/etc/group", "root:x:0:\nsudo:x:27:\n")
        root.write_file("/etc/gshadow", "root:*::\nsudo:*::\n", mode=0o640)
        # The account policy and skeleton a Debian image has, so users are added the way a
        # real boot adds them (the agent's own editor, not useradd).
        for policy in ("/etc/login.defs", "/etc/default/useradd"):
            if os.path.isfile(policy):
                root.write_file(policy, Path(policy).read_bytes())
        if os.path.isdir("/etc/skel"):
            shutil.copytree("/etc/skel", root.base / "etc/skel", symlinks=True)
        root.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
        agent_config(root, {**http_only(url), "users": ["default"]}, "20-test.yaml")
        listing = tmp_path / "modules.json"
        # -S as the launcher runs it: no site module, whose .pth hooks (an editable install's
        # finder) import modules of their own; the source tree and PyYAML's directory instead.
        purelib = sysconfig.get_paths()["purelib"]
        env = {
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), purelib]),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        subprocess.run(
            [sys.executable, "-S", "-c", CHILD, str(root.base), str(listing), "all"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    record = status(root)
    assert summarize(record).errors == []
    ran = {m["name"] for s in record["stages"].values() for m in s["modules"]}
    assert {"users_groups", "ssh", "write_files", "update_etc_hosts"} <= ran
    assert record["network"]["renderer"] == "networkd"

    loaded = set(json.loads(listing.read_text()))
    assert "metaboot.guest.network.renderers.networkd" in loaded  # the one it used
    assert "metaboot.guest.sources.openstack" in loaded
    unexpected = {
        name: why
        for name, why in NEVER_ON_THIS_BOOT.items()
        if name in loaded or any(m.startswith(name + ".") for m in loaded)
    }
    assert unexpected == {}

    # The library modules the image's bundle holds (metaboot.guest.bundle) are the ones a boot
    # imports: none missing, none the boot does not need (ignoring what this probe's own
    # runpy had loaded before the boot began, which a launcher has not).
    new = json.loads((tmp_path / "modules.json.new").read_text())
    imported = {
        name
        for name, origin in new.items()
        if name.split(".")[0] != "metaboot" and origin and origin.endswith(".py")
    }
    assert imported - set(bundle.LIBRARY) == set()
    assert set(bundle.LIBRARY) - loaded == set()


@pytest.mark.parametrize("primed", [True, False], ids=["image-prepared", "config-changed"])
def test_the_later_stages_of_a_systemd_boot_need_no_yaml_parser(
    tmp_path: Path, primed: bool
) -> None:
    """Under systemd each stage is a process of its own; the config and final stages take the
    agent config the local stage merged (from /run) and the cloud-config from JSON. The local
    stage needs no YAML parser either when the config files are the ones ``image prepare``
    parsed ahead (config.prime); otherwise it parses them."""
    state = ServerState(tree(spec(user_data=USER_DATA)))
    with metadata_server(state) as (url, _):
        root = make_root(tmp_path / "root")
        root.write_file("/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n")
        agent_config(root, {**http_only(url), "users": ["default"]}, "20-test.yaml")
        if primed:
            assert config.prime(root)
        env = {
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        loaded = {}
        for stage in ("local", "network", "config", "final"):
            listing = tmp_path / f"{stage}.json"
            subprocess.run(
                [sys.executable, "-c", CHILD, str(root.base), str(listing), stage],
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
            loaded[stage] = set(json.loads(listing.read_text()))
    record = status(root)
    assert summarize(record).errors == []
    assert record["stages"]["final"]["end"] is not None
    assert ("yaml" in loaded["local"]) is not primed  # agent.yaml, unless parsed ahead
    assert "yaml" in loaded["network"]  # the user-data
    assert "yaml" not in loaded["config"] and "yaml" not in loaded["final"]
