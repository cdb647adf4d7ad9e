"""The renderers, and choosing one from what the target system has.

Every renderer is a module with ``NAME`` and a pure ``render(network) -> {guest path: bytes}``
over a bound :class:`~metaboot.guest.network.model.Network` (every interface has its kernel
name). Names follow cloud-init's (``eni``, ``sysconfig``, ``netplan``, ``network-manager``,
``networkd``) so ``system_info: {network: {renderers: [...]}}`` carries over from cloud.cfg.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import ModuleType

from metaboot.guest.network.model import Network
from metaboot.guest.system import Root
from metaboot.imports import import_module

# Renderer name -> its module in this package. A module is imported only when its renderer is
# used: a boot pays for one (NetworkManager's needs uuid, netplan's needs PyYAML).
MODULES: dict[str, str] = {
    "netplan": "netplan",
    "network-manager": "networkmanager",
    "eni": "ifupdown",
    "sysconfig": "ifcfg",
    "networkd": "networkd",
}
_SUBMODULES = frozenset({*MODULES.values(), "resolvconf"})
ALIASES = {
    "ifupdown": "eni",
    "ifcfg": "sysconfig",
    "networkmanager": "network-manager",
    "nm": "network-manager",
    "systemd-networkd": "networkd",
}
# Most specific first: systemd-networkd's binary is on every systemd image, so it comes last.
DEFAULT_ORDER = ("netplan", "network-manager", "eni", "sysconfig", "networkd")


def _any(root: Root, *paths: str) -> bool:
    return any(root.exists(p) for p in paths)


AVAILABLE: dict[str, Callable[[Root], bool]] = {
    "netplan": lambda r: _any(r, "/usr/sbin/netplan", "/usr/bin/netplan", "/sbin/netplan"),
    "network-manager": lambda r: _any(r, "/usr/sbin/NetworkManager", "/sbin/NetworkManager"),
    "eni": lambda r: (
        _any(r, "/sbin/ifup", "/usr/sbin/ifup") and r.exists("/etc/network/interfaces")
    ),
    "sysconfig": lambda r: _any(
        r,
        "/etc/sysconfig/network-scripts/network-functions",
        "/etc/sysconfig/network-scripts/ifup-eth",
        "/usr/libexec/network-scripts/ifup-eth",
    ),
    "networkd": lambda r: _any(
        r, "/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd"
    ),
}


def canonical(name: str) -> str | None:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in MODULES else None


def choose(root: Root, configured: Sequence[str] | None) -> tuple[str | None, list[str]]:
    """The renderer to use, and messages about configured names that were not usable."""
    messages: list[str] = []
    order: list[str] = []
    for raw in configured or ():
        name = canonical(str(raw))
        if name is None:
            messages.append(f"system_info.network.renderers: unknown renderer {raw!r}; ignored")
        elif name not in order:
            order.append(name)
    if not order:
        order = list(DEFAULT_ORDER)
        configured = None
    for name in order:
        if AVAILABLE[name](root):
            return name, messages
    if configured:
        messages.append(
            f"none of the configured renderers {order} is installed on the target; "
            f"rendering for {order[0]!r} as configured"
        )
        return order[0], messages
    return None, messages


def module(name: str) -> ModuleType:
    """The renderer called ``name`` (a canonical name), imported now if it was not yet."""
    return import_module(f"{__name__}.{MODULES[name]}")


def __getattr__(attribute: str) -> ModuleType:
    """``renderers.netplan`` and the like still work, importing the module on first use."""
    if attribute in _SUBMODULES:
        return import_module(f"{__name__}.{attribute}")
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def render(name: str, network: Network) -> dict[str, bytes]:
    files: dict[str, bytes] = module(name).render(network)
    return files


def file_mode(path: str) -> int:
    """Keyfiles and netplan YAML may hold secrets (Wi-Fi keys, …): their tools want 0600."""
    if path.endswith(".nmconnection") or path.startswith("/etc/netplan/"):
        return 0o600
    return 0o644


def wants_resolv_conf(root: Root, renderer: str, setting: object) -> bool:
    """Whether /etc/resolv.conf must be written by us (see docs/network.md)."""
    if setting is True or setting == "always":
        return True
    if setting is False or setting == "never":
        return False
    if os.path.islink(root.host_path("/etc/resolv.conf")):
        return False  # resolvconf, systemd-resolved or NetworkManager own it
    if renderer == "eni":
        return not _any(root, "/sbin/resolvconf", "/usr/sbin/resolvconf")
    if renderer == "networkd":
        return not _any(root, "/usr/lib/systemd/systemd-resolved", "/lib/systemd/systemd-resolved")
    return False


def render_resolv_conf(network: Network) -> dict[str, bytes]:
    from metaboot.guest.network.renderers import resolvconf

    return resolvconf.render(network)
