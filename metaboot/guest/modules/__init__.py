"""Config modules: one file per capability, each exporting ``MODULE`` (see ``base``).

Module names are cloud-init's, so the module lists of an existing ``cloud.cfg`` carry over
(``cc_`` prefixes and dashes are accepted). Modules are imported only when asked for:
importing this package costs nothing beyond the table below.
"""

from __future__ import annotations

from collections.abc import Iterable

from metaboot.errors import ConfigError
from metaboot.guest.modules.base import Frequency, Module, Stage
from metaboot.imports import import_module

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# cloud-init name -> file in this package
_FILES: dict[str, str] = {
    "bootcmd": "bootcmd",
    "write_files": "write_files",
    "set_hostname": "set_hostname",
    "update_hostname": "update_hostname",
    "update_etc_hosts": "update_etc_hosts",
    "users_groups": "users_groups",
    "ssh": "ssh",
    "set_passwords": "set_passwords",
    "locale": "set_locale",
    "timezone": "timezone",
    "runcmd": "runcmd",
    "write_files_deferred": "write_files_deferred",
    "scripts_vendor": "scripts_vendor",
    "scripts_per_once": "scripts_per_once",
    "scripts_per_boot": "scripts_per_boot",
    "scripts_per_instance": "scripts_per_instance",
    "scripts_user": "scripts_user",
    "final_message": "final_message",
    "power_state_change": "power_state_change",
}

# cloud-init's other modules: named in many cloud.cfg files, not implemented here.
CLOUD_INIT_ONLY = frozenset(
    {
        "ansible",
        "apk_configure",
        "apt_configure",
        "apt_pipelining",
        "byobu",
        "ca_certs",
        "chef",
        "disable_ec2_metadata",
        "disk_setup",
        "fan",
        "growpart",
        "grub_dpkg",
        "install_hotplug",
        "keyboard",
        "keys_to_console",
        "landscape",
        "lxd",
        "mcollective",
        "migrator",
        "mounts",
        "ntp",
        "package_update_upgrade_install",
        "phone_home",
        "puppet",
        "raspberry_pi",
        "reset_rmc",
        "resizefs",
        "resolv_conf",
        "rh_subscription",
        "rsyslog",
        "salt_minion",
        "seed_random",
        "snap",
        "spacewalk",
        "ssh_authkey_fingerprints",
        "ssh_import_id",
        "ubuntu_advantage",
        "ubuntu_autoinstall",
        "ubuntu_drivers",
        "ubuntu_pro",
        "wireguard",
        "yum_add_repo",
        "zypper_add_repo",
        # dropped from cloud-init since, still named in older images' cloud.cfg
        "emit_upstart",
        "refresh_rmc_and_interface",
        "rightscale_userdata",
        "debug",
        "ubuntu_init_switch",
        "vyos_userdata",
    }
)

DEFAULT_MODULES: dict[Stage, list[str]] = {
    Stage.NETWORK: [
        "bootcmd",
        "write_files",
        "set_hostname",
        "update_hostname",
        "update_etc_hosts",
        "users_groups",
        "ssh",
        "set_passwords",
    ],
    Stage.CONFIG: ["locale", "timezone", "runcmd"],
    Stage.FINAL: [
        "write_files_deferred",
        "scripts_vendor",
        "scripts_per_once",
        "scripts_per_boot",
        "scripts_per_instance",
        "scripts_user",
        "final_message",
        "power_state_change",
    ],
}


# Each module's MODULE.keys — the settings without which it has nothing to do — known without
# importing it, so that a boot imports only the modules its configuration gives work to (the
# others are recorded as skipped, as they would be after importing them). Modules not named
# here always run. tests/guest/modules/test_module_registry.py holds it to the modules' own.
ACTIVATED_BY: dict[str, tuple[str, ...]] = {
    "bootcmd": ("bootcmd",),
    "write_files": ("write_files",),
    "update_etc_hosts": ("manage_etc_hosts",),
    "set_passwords": ("ssh_pwauth", "password", "chpasswd", "publish_password"),
    "locale": ("locale",),
    "timezone": ("timezone",),
    "runcmd": ("runcmd",),
    "write_files_deferred": ("write_files",),
    "power_state_change": ("power_state",),
}


class UnknownModuleError(ConfigError):
    """A module list names a module this agent does not have (reported; the others still run)."""


def canonical_name(name: str) -> str:
    """``cc_set-hostname`` → ``set_hostname``: cloud-init's spellings of a module name."""
    norm = name.strip().replace("-", "_")
    return norm.removeprefix("cc_")


def module_names() -> list[str]:
    return list(_FILES)


def activated_by(name: str) -> tuple[str, ...] | None:
    """``MODULE.keys`` of the module called ``name`` (any cloud-init spelling), without
    importing it; None for a name that is no module of ours."""
    canonical = canonical_name(name)
    return ACTIVATED_BY.get(canonical, ()) if canonical in _FILES else None


def load_module(name: str) -> Module:
    """Import the module called ``name`` (any cloud-init spelling) and return its ``MODULE``."""
    canonical = canonical_name(name)
    file = _FILES.get(canonical)
    if file is None:
        if canonical in CLOUD_INIT_ONLY:
            raise UnknownModuleError(
                f"module {name!r} is a cloud-init module metaboot does not provide"
            )
        raise UnknownModuleError(f"unknown module {name!r}")
    module = import_module(f"{__name__}.{file}")
    found: Module = module.MODULE
    return found


def parse_entry(entry: Any) -> tuple[str, Frequency | None]:
    """A cloud.cfg module list entry: ``name`` or ``[name, frequency]`` (frequency may be
    cloud-init's ``always``, ``once``, ``once-per-instance``, ``instance`` or ``per-instance``)."""
    if isinstance(entry, str):
        return entry, None
    if isinstance(entry, list) and entry and isinstance(entry[0], str):
        if len(entry) == 1:
            return entry[0], None
        raw = str(entry[1]).strip().lower()
        aliases = {
            "instance": "once-per-instance",
            "per-instance": "once-per-instance",
            "per-once": "once",
            "per-always": "always",
        }
        try:
            return entry[0], Frequency(aliases.get(raw, raw))
        except ValueError:
            raise ConfigError(f"module {entry[0]!r}: unknown frequency {entry[1]!r}") from None
    raise ConfigError(f"module list entry {entry!r}: expected a name or [name, frequency]")


def combined_schema(names: Iterable[str] | None = None) -> dict[str, Any]:
    """One JSON-schema object for the cloud-config keys of ``names`` (default: every module).

    The fragments are merged by key; where two modules describe one key (``hostname``, say)
    they describe it the same way.
    """
    properties: dict[str, Any] = {}
    for name in names if names is not None else module_names():
        fragment = load_module(name).schema
        properties.update(fragment.get("properties", {}))
    return {"type": "object", "properties": properties}
