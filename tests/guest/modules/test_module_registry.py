"""Module names, lists and lazy loading: existing cloud.cfg module lists carry over."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from metaboot.guest.modules import (
    CLOUD_INIT_ONLY,
    DEFAULT_MODULES,
    UnknownModuleError,
    canonical_name,
    combined_schema,
    load_module,
    module_names,
    parse_entry,
)
from metaboot.guest.modules.base import Frequency, Module, Stage
from tests import reference

# cloud-init's own frequencies and stages for the modules we provide (cloudinit/config/cc_*.py).
CLOUD_INIT_FREQUENCY = {
    "bootcmd": Frequency.ALWAYS,
    "final_message": Frequency.ALWAYS,
    "update_etc_hosts": Frequency.ALWAYS,
    "update_hostname": Frequency.ALWAYS,
    "scripts_per_boot": Frequency.ALWAYS,
    "scripts_per_once": Frequency.ONCE,
}


def test_every_name_loads_a_module_of_that_name() -> None:
    for name in module_names():
        module = load_module(name)
        assert isinstance(module, Module) and module.name == name
        assert module.frequency == CLOUD_INIT_FREQUENCY.get(name, Frequency.INSTANCE)
        assert callable(module.handle)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("cc_set_hostname", "set_hostname"),
        ("users-groups", "users_groups"),
        ("cc_scripts_per_once", "scripts_per_once"),
        (" ssh ", "ssh"),
        ("power_state_change", "power_state_change"),
        ("cc_write_files_deferred", "write_files_deferred"),
        ("locale", "locale"),
    ],
)
def test_cloud_init_spellings(spelling: str, name: str) -> None:
    assert load_module(spelling).name == name
    assert canonical_name(spelling) == name


def test_unknown_and_unimplemented_names_are_reported() -> None:
    with pytest.raises(UnknownModuleError, match="cloud-init module metaboot does not provide"):
        load_module("cc_growpart")
    with pytest.raises(UnknownModuleError, match="unknown module 'frobnicate'"):
        load_module("frobnicate")
    assert "growpart" in CLOUD_INIT_ONLY and not CLOUD_INIT_ONLY & set(module_names())


def test_default_lists_follow_cloud_init_order() -> None:
    assert set(DEFAULT_MODULES) == {Stage.NETWORK, Stage.CONFIG, Stage.FINAL}
    for stage, names in DEFAULT_MODULES.items():
        for name in names:
            assert load_module(name).stage is stage
    network = DEFAULT_MODULES[Stage.NETWORK]
    assert network.index("users_groups") < network.index("ssh") < network.index("set_passwords")
    assert network.index("set_hostname") < network.index("update_etc_hosts")
    final = DEFAULT_MODULES[Stage.FINAL]
    assert (
        final.index("scripts_user")
        < final.index("final_message")
        < final.index("power_state_change")
    )
    listed = [n for names in DEFAULT_MODULES.values() for n in names]
    assert sorted(listed) == sorted(module_names())


def test_debian_cloud_cfg_module_lists_all_resolve() -> None:
    """Every name in Debian's shipped cloud.cfg either loads or is a known cloud-init module."""
    cfg = yaml.safe_load((reference.CLOUDINIT_DIR / "etc/cloud/cloud.cfg").read_text())
    for key in ("cloud_init_modules", "cloud_config_modules", "cloud_final_modules"):
        for entry in cfg[key]:
            name, _ = parse_entry(entry)
            if canonical_name(name) in CLOUD_INIT_ONLY:
                continue
            assert load_module(name).name == canonical_name(name)


def test_parse_entry() -> None:
    assert parse_entry("ssh") == ("ssh", None)
    assert parse_entry(["runcmd", "always"]) == ("runcmd", Frequency.ALWAYS)
    assert parse_entry(["runcmd", "once-per-instance"]) == ("runcmd", Frequency.INSTANCE)
    assert parse_entry(["runcmd", "per-instance"]) == ("runcmd", Frequency.INSTANCE)


def test_import_is_cheap() -> None:
    """Importing the package loads no module file and nothing heavy."""
    code = "import sys, metaboot.guest.modules as m\nprint('\\n'.join(sorted(sys.modules)))\n"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = [n for n in loaded if n.startswith("metaboot.guest.modules.")]
    assert ours == ["metaboot.guest.modules.base"]
    for heavy in ("urllib.request", "yaml", "json", "crypt", "email", "shlex"):
        assert heavy not in loaded, heavy


def test_combined_schema_covers_every_key_a_module_is_activated_by() -> None:
    properties = combined_schema()["properties"]
    for name in module_names():
        for key in load_module(name).keys:
            assert key in properties, (name, key)


def test_loading_every_module_pulls_in_no_http_or_mime() -> None:
    """urllib is imported only when a password is actually published."""
    code = (
        "import sys, metaboot.guest.modules as m\n"
        "for n in m.module_names(): m.load_module(n)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    for heavy in ("urllib.request", "http.client", "email", "ssl", "jsonschema", "jinja2"):
        assert heavy not in loaded, heavy


def test_the_activation_table_is_each_modules_own_keys() -> None:
    """ACTIVATED_BY lets a boot skip a module without importing it: it must say exactly what
    the module's MODULE.keys says, for every module and every spelling."""
    from metaboot.guest.modules import activated_by

    for name in module_names():
        assert activated_by(name) == load_module(name).keys, name
        assert activated_by(f"cc_{name.replace('_', '-')}") == load_module(name).keys, name
    assert activated_by("no_such_module") is None
