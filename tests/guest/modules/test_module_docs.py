"""Every YAML example in docs/cloud-config.md is valid for Debian's cloud-init, valid for our
module schemas, and applies cleanly to a root when the modules run in their default order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from metaboot.guest.modules import DEFAULT_MODULES, load_module
from metaboot.guest.modules.base import Stage
from metaboot.guest.os.commands import CommandFailed
from metaboot.guest.system import Root
from tests.guest.modules.modharness import AGENT_CONFIG, Harness, instance_data, merge
from tests.guest.modules.schemacheck import SchemaChecker

DOC = Path(__file__).resolve().parents[3] / "docs" / "cloud-config.md"
DEPRECATED_MARK = "# deprecated syntax, still accepted"


def examples() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_every_cloud_config_example_is_a_yaml_block() -> None:
    """examples() reads ```yaml blocks only: a #cloud-config under another fence would go
    unchecked."""
    fenced = re.findall(r"^```[a-z]*\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)
    cloud_configs = [b for b in fenced if b.startswith("#cloud-config")]
    assert cloud_configs and all(b in examples() for b in cloud_configs)


def test_the_doc_has_examples_for_every_module_key() -> None:
    text = "\n".join(examples())
    for key in (
        "hostname:",
        "fqdn:",
        "strip_domain:",
        "manage_etc_hosts:",
        "users:",
        "groups:",
        "ssh_authorized_keys:",
        "disable_root:",
        "disable_root_opts:",
        "ssh_pwauth:",
        "chpasswd:",
        "list:",
        "publish_password:",
        "write_files:",
        "bootcmd:",
        "runcmd:",
        "timezone:",
        "locale:",
        "final_message:",
        "power_state:",
        "root_commands:",
        "ssh_genkeytypes:",
        "ssh_deletekeys:",
        "vendor_data:",
    ):
        assert key in text, key


@pytest.mark.parametrize("index", range(len(examples())))
def test_example_validates(schema_checker: SchemaChecker, index: int) -> None:
    text = examples()[index]
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    verdict = schema_checker.check(doc)
    assert verdict.errors == [], text
    assert verdict.ours == [], text
    if DEPRECATED_MARK in text:
        assert verdict.deprecations, "marked deprecated but cloud-init accepts it as current"
    else:
        assert verdict.deprecations == [], text


def test_examples_apply_in_order(chroot_root: Root, keypairs: dict[str, object]) -> None:
    """Apply each example (over the image's agent config) with every default module, in stage
    order, on one root; user commands may fail (there is no nginx), nothing else may."""
    base = merge(yaml.safe_load(AGENT_CONFIG), {"ssh_genkeytypes": ["ed25519"]})
    for text in examples():
        doc = yaml.safe_load(text)
        if "ssh_genkeytypes" in doc:
            doc["ssh_genkeytypes"] = ["ed25519"]  # RSA generation is slow; covered elsewhere
        h = Harness(chroot_root, merge(base, doc), instance_data())
        for stage in (Stage.NETWORK, Stage.CONFIG, Stage.FINAL):
            for name in DEFAULT_MODULES[stage]:
                module = load_module(name)
                if module.keys and not any(k in h.cfg for k in module.keys):
                    continue
                try:
                    module.handle(h.ctx())
                except CommandFailed:
                    assert name in ("scripts_user", "bootcmd", "locale"), name
    passwd = chroot_root.read_text("/etc/passwd")
    assert "\nalice:" in passwd and "\nbob:" in passwd and "\nbackup:" in passwd
    assert chroot_root.read_text("/etc/app/big.txt") == "hello from a gzipped file\n"
    assert chroot_root.read_text("/home/alice/.config/app.yaml") == "theme: dark\n"
    assert chroot_root.exists("/var/tmp/first-boot") and chroot_root.exists("/var/tmp/with space")
    assert chroot_root.read_text("/etc/timezone") == "Europe/Berlin\n"


def test_the_module_table_is_the_default_module_list() -> None:
    """Name, stage, frequency and activating keys, row by row, in the order they run."""
    words = {"every boot": "always", "once per instance": "once-per-instance", "once ever": "once"}
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| ([\w ]+) \| (.*) \|$", DOC.read_text(), flags=re.M)
    documented = [
        (name, stage, words[runs], tuple(re.findall(r"`(\w+)`", keys)))
        for name, stage, runs, keys in rows
    ]
    actual = [
        (name, stage.value, load_module(name).frequency.value, load_module(name).keys)
        for stage, names in DEFAULT_MODULES.items()
        for name in names
    ]
    assert documented == actual
