"""``metaboot image prepare|seal``: put the agent into an image's root filesystem, then seal it.

These are the steps image builders do by hand today: install the agent, enable its units, write
its configuration (root login, password login, hostname handling, data sources, the default
user), and before the image is published remove everything that makes one boot of it different
from another (instance state, logs, machine-id, SSH host keys, shell history), so that the first
boot of every clone is a first boot.

Both work on a directory seen as a system root (a debootstrap tree, a mounted image, a test's
temporary directory) through :class:`Root`, so a symlink inside the image never leads outside it.
Only the standard library and PyYAML are used: sealing also runs inside the guest
(``metaboot clean --seal``).
"""

from __future__ import annotations

import argparse
import compileall
import configparser
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest import bundle
from metaboot.guest.launcher import launcher_text
from metaboot.guest.os import hostkeys
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the metaboot package being installed
UNITS_DIR = Path(__file__).resolve().parent / "units"

AGENT_CONFIG = "/etc/metaboot/agent.yaml"
LAUNCHER = "/usr/bin/metaboot"
UNIT_DIR = "/usr/lib/systemd/system"
SITE_PACKAGES = "/usr/lib/python3/dist-packages"  # Debian's and Ubuntu's system site directory
MIN_PYTHON = (3, 11)

# The parts of the package the agent runs. The server side (service, registry, proxy, drive)
# needs libraries an image does not have and is left out.
GUEST_PARTS = (
    "__init__.py",
    "cli.py",
    "client.py",
    "errors.py",
    "imports.py",
    "py.typed",
    "guest",
    "diskfs",
)

LAUNCHER_TEXT = launcher_text(SITE_PACKAGES)

# Passed to the default user when --default-user names one; the same shape as cloud.cfg's
# system_info.default_user (the groups exist on every Debian and Ubuntu system).
DEFAULT_USER_TEMPLATE: dict[str, Any] = {
    "lock_passwd": True,
    "gecos": "Default user",
    "groups": ["adm", "sudo"],
    "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
    "shell": "/bin/bash",
}


@dataclass
class PrepareOptions:
    """What ``metaboot image prepare`` writes into /etc/metaboot/agent.yaml."""

    disable_root: bool | None = None
    ssh_pwauth: bool | None = None
    preserve_hostname: bool | None = None
    strip_domains: list[str] = field(default_factory=list)
    datasources: list[str] = field(default_factory=list)
    network_config: bool = True
    default_user: str | None = None
    keep_cloud_init: bool = False
    compile: bool = True


# ---- the agent's configuration (pure) ----------------------------------------------------------


def agent_config(options: PrepareOptions) -> dict[str, Any]:
    """The agent.yaml mapping for ``options``; keys left unset keep the agent's defaults."""
    cfg: dict[str, Any] = {}
    if options.datasources:
        cfg["datasource_list"] = list(options.datasources)
    if options.disable_root is not None:
        cfg["disable_root"] = options.disable_root
    if options.ssh_pwauth is not None:
        cfg["ssh_pwauth"] = options.ssh_pwauth
    if options.preserve_hostname is not None:
        cfg["preserve_hostname"] = options.preserve_hostname
    if options.strip_domains:
        cfg["strip_domain"] = list(options.strip_domains)
    if not options.network_config:
        cfg["network"] = {"config": "disabled"}
    if options.default_user:
        cfg["system_info"] = {
            "default_user": {"name": options.default_user, **DEFAULT_USER_TEMPLATE}
        }
    return cfg


def render_agent_config(cfg: dict[str, Any]) -> str:
    import yaml

    header = (
        "# The metaboot agent's configuration, written by `metaboot image prepare`.\n"
        "# Shaped like cloud-init's cloud.cfg; files in /etc/metaboot/agent.d/*.yaml are merged\n"
        "# over it in name order. Keys not set here keep the agent's defaults.\n"
    )
    body = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None) if cfg else "{}\n"
    return header + body


# ---- prepare ---------------------------------------------------------------------------------


def _guest_python(root: Root) -> tuple[int, int]:
    """The image's Python version, from its standard library directory; refuse an old one."""
    if not root.exists("/usr/bin/python3"):
        raise MetabootError(
            f"{root.base} has no /usr/bin/python3: install python3 (3.11 or newer) and "
            "python3-yaml in the image before preparing it"
        )
    versions = []
    for name in root.listdir("/usr/lib"):
        found = re.fullmatch(r"python3\.(\d+)", name)
        if found and root.exists(f"/usr/lib/{name}/os.py"):
            versions.append((3, int(found.group(1))))
    if not versions:
        raise MetabootError(f"{root.base}: no Python 3 standard library under /usr/lib/python3.*")
    version = max(versions)
    if version < MIN_PYTHON:
        raise MetabootError(
            f"{root.base} has Python {version[0]}.{version[1]}; the agent needs "
            f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer"
        )
    return version


def _check_yaml(root: Root, site: str) -> None:
    if not any(
        root.exists(f"{base}/yaml/__init__.py")
        for base in (site, *[f"/usr/lib/{d}/site-packages" for d in root.listdir("/usr/lib")])
    ):
        raise MetabootError(
            f"{root.base} has no PyYAML (yaml/__init__.py under {site}): install python3-yaml "
            "in the image before preparing it"
        )


def install_package(
    root: Root, site: str, compile_for: tuple[int, int] | None, *, library_root: Root | None = None
) -> list[str]:
    """Copy the guest parts of the package into the image, replacing any older copy whole;
    with ``compile_for`` (the image's Python, the same as ours), also its byte-code and the
    one-file bundle, which holds the boot's standard library and PyYAML modules as well, read
    from the image (or from ``library_root``, where that Python is installed).
    ``bench/first_boot.py`` installs the agent it measures with this too."""
    target = root.path(f"{site}/metaboot")
    staging = target.with_name(".metaboot.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for part in GUEST_PARTS:
        source = PACKAGE_DIR / part
        if source.is_dir():
            shutil.copytree(source, staging / part, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, staging / part)
    for path in [staging, *staging.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(path, 0, 0, follow_symlinks=False)
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if compile_for is not None:
        # Bytecode made now saves the guest compiling the agent on its first boot, which is
        # the boot that matters. Only valid when our Python's bytecode matches the image's.
        compileall.compile_dir(staging, quiet=1, ddir=f"{site}/metaboot", workers=1, legacy=False)
        # And all of it in one file, which the launcher opens once (metaboot.guest.bundle),
        # with the library modules a boot imports, from where the guest's sys.path has them.
        python = library_root or root
        search = (f"/usr/lib/python{compile_for[0]}.{compile_for[1]}", SITE_PACKAGES)
        library = {
            name: (python.host_path(guest, follow=True), guest, package)
            for name, (guest, package) in bundle.library_sources(python.exists, search).items()
        }
        bundle.write(str(staging), ddir=f"{site}/metaboot", library=library)
    old = target.with_name(".metaboot.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return [f"{site}/metaboot/"]


def _unit_install_targets(text: str) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    if not parser.has_section("Install"):
        return []
    wanted = parser.get("Install", "WantedBy", fallback="")
    return wanted.split()


def _install_units(root: Root) -> list[str]:
    """Copy the units and enable them as ``systemctl enable`` would (links per [Install])."""
    written = []
    for unit in sorted(UNITS_DIR.iterdir()):
        if unit.suffix not in (".service", ".target"):
            continue
        text = unit.read_text()
        root.write_file(f"{UNIT_DIR}/{unit.name}", text, mode=0o644)
        written.append(f"{UNIT_DIR}/{unit.name}")
        for target in _unit_install_targets(text):
            wants = f"/etc/systemd/system/{target}.wants"
            root.makedirs(wants)
            link = root.path(f"{wants}/{unit.name}")
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(f"{UNIT_DIR}/{unit.name}", link)
            written.append(f"{wants}/{unit.name}")
    return written


def _disable_cloud_init(root: Root) -> list[str]:
    """Two first-boot agents would fight over users, keys and the network: keep one."""
    if not (root.exists("/usr/bin/cloud-init") or root.exists("/etc/cloud/cloud.cfg")):
        return []
    root.makedirs("/etc/cloud")
    root.write_file(
        "/etc/cloud/cloud-init.disabled",
        "cloud-init is disabled: this image is configured by the metaboot agent.\n",
        mode=0o644,
    )
    return ["/etc/cloud/cloud-init.disabled"]


def _as_root(base: Root | str | os.PathLike[str]) -> Root:
    return base if isinstance(base, Root) else Root(base)


def prepare(base: Root | str | os.PathLike[str], options: PrepareOptions) -> list[str]:
    """Install the agent into the root at ``base``; returns the guest paths written."""
    root = _as_root(base)
    if not root.base.is_dir():
        raise MetabootError(f"{root.base}: not a directory (give the image's root filesystem)")
    version = _guest_python(root)
    _check_yaml(root, SITE_PACKAGES)
    same_bytecode = options.compile and version == sys.version_info[:2]
    root.makedirs(SITE_PACKAGES)
    written = install_package(root, SITE_PACKAGES, version if same_bytecode else None)
    root.makedirs("/usr/bin")
    root.write_file(LAUNCHER, LAUNCHER_TEXT, mode=0o755)
    written.append(LAUNCHER)
    root.makedirs(os.path.dirname(hostkeys.STARTER))
    root.write_file(hostkeys.STARTER, hostkeys.starter_script(), mode=0o755)
    written.append(hostkeys.STARTER)
    written += _install_units(root)
    root.makedirs("/etc/metaboot/agent.d")
    root.write_file(AGENT_CONFIG, render_agent_config(agent_config(options)), mode=0o644)
    written.append(AGENT_CONFIG)
    from metaboot.guest import config, layout

    if config.prime(root):  # the first boot's local stage then needs no YAML parser
        written.append(layout.AGENT_CONFIG_PARSED)
    if not options.keep_cloud_init:
        written += _disable_cloud_init(root)
    return written


# ---- seal ------------------------------------------------------------------------------------

# Instance state: everything the agents remember about the instances they have configured. The
# image's own seeds and per-boot/per-instance/per-once scripts are part of the image and stay.
STATE_DIRS = {
    "/var/lib/metaboot": ("seed", "scripts"),
    "/var/lib/cloud": ("seed", "scripts"),
}
RUNTIME_DIRS = ("/run/metaboot", "/run/cloud-init")
LOG_FILES = (
    "/var/log/metaboot.log",
    "/var/log/metaboot-output.log",
    "/var/log/cloud-init.log",
    "/var/log/cloud-init-output.log",
)
LOGIN_RECORDS = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog", "/var/log/faillog")
HISTORY_FILES = (".bash_history", ".sh_history", ".zsh_history", ".python_history", ".lesshst")
IDENTITY_FILES = (
    "/var/lib/systemd/random-seed",  # clones must not start from the same entropy
    "/var/lib/dbus/machine-id",
)
LEASE_DIRS = ("/var/lib/dhcp", "/var/lib/NetworkManager")


def _remove(root: Root, guest_path: str, removed: list[str]) -> None:
    path = root.path(guest_path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        return
    removed.append(guest_path)


def _truncate(root: Root, guest_path: str, removed: list[str]) -> None:
    path = root.path(guest_path)
    if path.is_file() and not path.is_symlink() and path.stat().st_size > 0:
        with path.open("r+b") as handle:
            handle.truncate(0)
        removed.append(guest_path)


def _homes(root: Root) -> Iterable[str]:
    yield "/root"
    for line in root.read_text("/etc/passwd", default="").splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[5].startswith("/"):
            yield fields[5]
    for name in root.listdir("/home"):
        yield f"/home/{name}"


def seal(base: Root | str | os.PathLike[str], *, keep_ssh_host_keys: bool = False) -> list[str]:
    """Return the root at ``base`` to the never-booted state; returns what was removed.

    Safe on a live system only when it is about to be shut down and captured: the next boot
    generates a new machine-id and new host keys, and the agent configures it as a new instance.
    """
    root = _as_root(base)
    if not root.base.is_dir():
        raise MetabootError(f"{root.base}: not a directory (give the image's root filesystem)")
    removed: list[str] = []
    for state, keep in STATE_DIRS.items():
        for name in root.listdir(state):
            if name not in keep:
                _remove(root, f"{state}/{name}", removed)
    for runtime in RUNTIME_DIRS:
        if not root.is_live:
            _remove(root, runtime, removed)
    for log_file in LOG_FILES:
        _remove(root, log_file, removed)
    for name in root.listdir("/var/log"):
        if re.search(r"\.(\d+|gz|xz|old)$", name):
            _remove(root, f"/var/log/{name}", removed)
    for journal in root.listdir("/var/log/journal"):
        _remove(root, f"/var/log/journal/{journal}", removed)
    for record in LOGIN_RECORDS:
        _truncate(root, record, removed)
    # An empty machine-id (not a missing one, not "uninitialized"): systemd makes a new id at
    # the next boot without making it a "first boot" (machine-id(5)), which would apply the unit
    # presets and could re-enable services the image builder disabled. See clean.py.
    machine_id = root.path("/etc/machine-id")
    if machine_id.is_symlink() or (machine_id.exists() and machine_id.stat().st_size > 0):
        root.write_file("/etc/machine-id", "", mode=0o444)
        removed.append("/etc/machine-id")
    for identity in IDENTITY_FILES:
        if not root.path(identity).is_symlink():
            _remove(root, identity, removed)
    for leases in LEASE_DIRS:
        for name in root.listdir(leases):
            if name.endswith((".leases", ".lease")) or name.startswith(("dhclient", "internal")):
                _remove(root, f"{leases}/{name}", removed)
    if not keep_ssh_host_keys:
        for name in root.listdir("/etc/ssh"):
            if name.startswith("ssh_host_") and ("_key" in name):
                _remove(root, f"/etc/ssh/{name}", removed)
    # Host keys the agent started ahead on a boot that went no further: never for a clone.
    for name in root.listdir(hostkeys.STAGING):
        _remove(root, f"{hostkeys.STAGING}/{name}", removed)
    if root.exists(hostkeys.STAGING):
        os.rmdir(root.path(hostkeys.STAGING))
    for home in sorted(set(_homes(root))):
        for name in HISTORY_FILES:
            _remove(root, f"{home}/{name}", removed)
    return removed


# ---- command line ----------------------------------------------------------------------------


def _datasources(values: Sequence[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
            raise ConfigError(f"--datasource: {name!r} is not a data source name")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaboot image",
        description="Install the metaboot agent into an image's root filesystem, or seal it.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("prepare", help="install the agent, its units and /etc/metaboot/agent.yaml")
    p.add_argument("root", help="the image's root filesystem (a directory or a mounted image)")
    root_login = p.add_mutually_exclusive_group()
    root_login.add_argument(
        "--disable-root",
        dest="disable_root",
        action="store_true",
        default=None,
        help="refuse SSH logins as root (point them to the default user)",
    )
    root_login.add_argument(
        "--allow-root",
        dest="disable_root",
        action="store_false",
        help="let root log in over SSH with the instance's keys",
    )
    pwauth = p.add_mutually_exclusive_group()
    pwauth.add_argument(
        "--ssh-pwauth",
        dest="ssh_pwauth",
        action="store_true",
        default=None,
        help="allow SSH password logins",
    )
    pwauth.add_argument(
        "--no-ssh-pwauth",
        dest="ssh_pwauth",
        action="store_false",
        help="refuse SSH password logins",
    )
    p.add_argument(
        "--preserve-hostname",
        action="store_true",
        default=None,
        help="never change the hostname the image has",
    )
    p.add_argument(
        "--strip-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="drop this domain suffix (e.g. novalocal) from the instance's hostname",
    )
    p.add_argument(
        "--datasource",
        action="append",
        default=[],
        metavar="NAME[,NAME…]",
        help="data sources to try, in order (ConfigDrive, OpenStack, Ec2, NoCloud)",
    )
    p.add_argument(
        "--no-network-config",
        action="store_true",
        help="leave the image's network configuration alone",
    )
    p.add_argument(
        "--default-user",
        metavar="NAME",
        help="the default user that receives the instance's SSH keys",
    )
    p.add_argument(
        "--keep-cloud-init",
        action="store_true",
        help="do not disable a cloud-init found in the image",
    )
    p.add_argument("--no-compile", action="store_true", help="do not precompile the agent")
    s = sub.add_parser("seal", help="remove instance state, logs, machine-id, host keys, history")
    s.add_argument("root", help="the image's root filesystem (a directory or a mounted image)")
    s.add_argument(
        "--keep-ssh-host-keys",
        action="store_true",
        help="keep /etc/ssh/ssh_host_* (every clone then shares them)",
    )
    for each in (p, s):
        each.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return parser


def main(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "prepare":
        options = PrepareOptions(
            disable_root=args.disable_root,
            ssh_pwauth=args.ssh_pwauth,
            preserve_hostname=args.preserve_hostname,
            strip_domains=[d.strip().strip(".") for d in args.strip_domain if d.strip(". ")],
            datasources=_datasources(args.datasource),
            network_config=not args.no_network_config,
            default_user=args.default_user,
            keep_cloud_init=args.keep_cloud_init,
            compile=not args.no_compile,
        )
        if options.default_user is not None and not re.fullmatch(
            r"[a-z_][a-z0-9_-]*[$]?", options.default_user
        ):
            raise ConfigError(f"--default-user: {options.default_user!r} is not a valid user name")
        done = prepare(args.root, options)
        verb = "installed"
    else:
        done = seal(args.root, keep_ssh_host_keys=args.keep_ssh_host_keys)
        verb = "removed"
    if not args.quiet:
        for path in done:
            print(f"{verb} {path}")
    return 0
