"""The agent's own configuration: ``/etc/metaboot/agent.yaml`` plus ``agent.d/*.yaml``.

Shaped like cloud-init's ``cloud.cfg`` so that image recipes carry over. Files are merged in
order (agent.yaml, then agent.d sorted by name, then ``--config``): mappings merge key by key,
anything else is replaced by the later file. A broken file or a key of the wrong type is
reported and left out, and the agent carries on with the defaults, because an image that cannot
be logged into is worse than one with a default setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from metaboot import __version__
from metaboot.errors import UserDataError
from metaboot.guest import layout, volatile
from metaboot.guest.records import dataclass, field
from metaboot.guest.schema import line_map, load_yaml, locate, validate
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOURCES = ["ConfigDrive", "OpenStack", "Ec2", "NoCloud"]

DEFAULTS: dict[str, Any] = {
    "datasource_list": list(DEFAULT_SOURCES),
    "datasource": {
        "ConfigDrive": {
            "dirs": [
                f"{layout.SEED_DIR}/config_drive",
                "/var/lib/cloud/seed/config_drive",
                "/config-drive",
            ],
            "labels": ["config-2", "CONFIG-2"],
        },
        "OpenStack": {
            "metadata_urls": ["http://169.254.169.254", "http://[fe80::a9fe:a9fe%IFACE]"],
            "max_wait": 30.0,
            "timeout": 5.0,
            "retries": 3,
            "crawl_ec2": False,
            "pipelining": True,
        },
        "Ec2": {
            "metadata_urls": ["http://169.254.169.254"],
            "max_wait": 10.0,
            "timeout": 5.0,
            "retries": 3,
            "api_version": "2009-04-04",
        },
        "NoCloud": {
            "dirs": [
                f"{layout.SEED_DIR}/nocloud",
                "/var/lib/cloud/seed/nocloud",
                "/var/lib/cloud/seed/nocloud-net",
            ],
            "labels": ["cidata", "CIDATA"],
        },
    },
    "user_data": {
        # A 10 MB YAML document takes PyYAML tens of seconds; nova caps user-data at 64 KiB
        # (base64). Anything decoded or decompressed beyond this is refused, not truncated.
        "max_bytes": 1024 * 1024,
        "include_depth": 5,
        "include_timeout": 5.0,
        "include_retries": 3,
    },
    "network": {},
    # The local stage's short DHCP lease for reaching the metadata service before the OS
    # network starts (first boot, no config drive). "auto": only when configuring the live
    # system — never the network of a machine that runs the agent against another root.
    "ephemeral_dhcp": {"enabled": "auto", "timeout": 5.0, "max_wait": 10.0},
}

_MODULE_LIST = {
    "type": "array",
    "items": {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        ]
    },
}
_SOURCE_SETTINGS = {
    "type": "object",
    "properties": {
        "metadata_urls": {"type": "array", "items": {"type": "string"}},
        "max_wait": {"type": "number"},
        "timeout": {"type": "number", "minimum": 0},
        "retries": {"type": "integer", "minimum": 0},
        "sec_between_retries": {"type": "number", "minimum": 0},
        "crawl_ec2": {"type": "boolean"},
        "apply_network_config": {"type": "boolean"},
        "dirs": {"type": "array", "items": {"type": "string"}},
        "devices": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "array", "items": {"type": "string"}},
        "api_version": {"type": "string"},
        "seedfrom": {"type": "string"},
        "meta-data": {"type": ["object", "string"]},
        "user-data": {"type": "string"},
    },
}

# Only the keys the agent itself reads or hands to modules with a fixed shape; anything else is
# passed through untouched (modules validate their own keys).
AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "datasource_list": {"type": "array", "items": {"type": "string"}},
        "datasource": {
            "type": "object",
            "properties": {
                "pin": {"type": "string"},
                **{name: _SOURCE_SETTINGS for name in DEFAULT_SOURCES},
            },
        },
        "cloud_init_modules": _MODULE_LIST,
        "cloud_config_modules": _MODULE_LIST,
        "cloud_final_modules": _MODULE_LIST,
        "disable_root": {"type": "boolean"},
        "ssh_pwauth": {"type": ["boolean", "string"]},
        "preserve_hostname": {"type": "boolean"},
        "manage_etc_hosts": {"type": ["boolean", "string"]},
        "network": {
            "type": "object",
            "properties": {"config": {"oneOf": [{"enum": ["disabled"]}, {"type": "object"}]}},
        },
        "system_info": {
            "type": "object",
            "properties": {"default_user": {"type": ["object", "null"]}},
        },
        "ephemeral_dhcp": {
            "type": "object",
            "properties": {
                "enabled": {"oneOf": [{"type": "boolean"}, {"enum": ["auto"]}]},
                "timeout": {"type": "number", "minimum": 0},
                "max_wait": {"type": "number", "minimum": 0},
            },
        },
        "user_data": {
            "type": "object",
            "properties": {
                "max_bytes": {"type": "integer", "minimum": 1},
                "include_depth": {"type": "integer", "minimum": 0},
                "include_timeout": {"type": "number", "minimum": 0},
                "include_retries": {"type": "integer", "minimum": 0},
            },
        },
    },
}


@dataclass
class AgentConfig:
    cfg: dict[str, Any]
    files: list[str] = field(default_factory=list)  # what was read, in order
    problems: list[str] = field(default_factory=list)  # each names the file and line

    def source_settings(self, name: str) -> dict[str, Any]:
        settings = self.cfg.get("datasource", {}).get(name)
        return dict(settings) if isinstance(settings, Mapping) else {}

    @property
    def pinned_source(self) -> str | None:
        """One source named by ``datasource.pin`` or a one-entry ``datasource_list``."""
        pin = self.cfg.get("datasource", {}).get("pin")
        if isinstance(pin, str) and pin:
            return pin
        sources = [s for s in self.cfg.get("datasource_list", []) if s != "None"]
        return sources[0] if len(sources) == 1 else None


def _fresh(value: Any) -> Any:
    """A copy of plain data (what YAML and JSON give) that shares no dict or list with it:
    ``copy.deepcopy`` for the one kind of value the agent's config holds, without importing
    ``copy`` (and ``weakref``) on every boot."""
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; any other value in ``override`` replaces ``base``'s."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def config_files(root: Root) -> list[str]:
    """The guest paths of the agent's config files, in the order they apply."""
    files = [layout.AGENT_CONFIG] if root.exists(layout.AGENT_CONFIG) else []
    files += [
        f"{layout.AGENT_CONFIG_DIR}/{name}"
        for name in root.listdir(layout.AGENT_CONFIG_DIR)
        if name.endswith((".yaml", ".yml", ".cfg")) and not name.startswith(".")
    ]
    return files


# cloud-init's per-distribution default users (its cloud.cfg template), by os-release ID.
# Used only when no configuration names a default user at all, so that an instance whose agent
# configuration is missing or broken still has a user that the instance's SSH keys log in as
# (with ``disable_root``, root's keys only say "log in as <default user>").
DISTRO_DEFAULT_USERS: dict[str, tuple[str, list[str]]] = {
    "debian": ("debian", ["adm", "sudo"]),
    "ubuntu": ("ubuntu", ["adm", "sudo"]),
    "fedora": ("fedora", ["adm", "wheel"]),
    "rhel": ("cloud-user", ["adm", "wheel"]),
    "centos": ("cloud-user", ["adm", "wheel"]),
    "rocky": ("rocky", ["adm", "wheel"]),
    "almalinux": ("almalinux", ["adm", "wheel"]),
    "alpine": ("alpine", ["wheel"]),
    "arch": ("arch", ["wheel"]),
}


def distro_default_user(root: Root) -> dict[str, Any] | None:
    """The default user cloud-init's own configuration gives this distribution, if known."""
    from metaboot.guest.instancedata import os_release  # the one os-release parser

    fields = os_release(root)
    for distro in [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]:
        if distro in DISTRO_DEFAULT_USERS:
            name, groups = DISTRO_DEFAULT_USERS[distro]
            return {
                "name": name,
                "lock_passwd": True,
                "groups": groups,
                "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
                "shell": "/bin/bash" if root.exists("/bin/bash") else "/bin/sh",
            }
    return None


def load(root: Root, extra: str | None = None, *, remember: bool = False) -> AgentConfig:
    """Read and merge every config file; never raises for bad content.

    With ``remember`` (the runner), the result is kept for this boot in /run/metaboot with the
    identity of every file read (inode, size, modification and change times), and a later
    stage's process whose files are all unchanged takes it from there: the config and final
    stages then need no YAML parser at all (PyYAML is a tenth of a stage's start-up).

    The files' parse is also kept across boots in /var/cache/metaboot, keyed by their contents
    (``metaboot image prepare`` leaves one there for the configuration it writes, and a clone
    does not change it): the local stage of a first boot, which reads no user-data, then does
    not load PyYAML either. Any change to a file's bytes, the agent's version or its defaults
    means a new key, so a stale parse is never used."""
    sources = [(f, root.host_path(f)) for f in config_files(root)]
    if extra is not None:
        sources.append((extra, extra))
    stamp = _stamp(sources) if remember else None
    if stamp is not None:
        cached = _recall(root, layout.AGENT_CONFIG_CACHE, "stamp", stamp)
        if cached is not None:
            return cached
    texts = _read(sources)
    key = _content_key(texts) if remember else None
    result = _recall(root, layout.AGENT_CONFIG_PARSED, "key", key) if key is not None else None
    if result is None:
        result = _parse_all(texts)
        if key is not None:
            _remember(root, layout.AGENT_CONFIG_PARSED, "key", key, result)
    system_info = result.cfg.get("system_info")
    if not (isinstance(system_info, Mapping) and "default_user" in system_info):
        fallback = distro_default_user(root)
        if fallback is not None:
            result.cfg = merge(result.cfg, {"system_info": {"default_user": fallback}})
    if stamp is not None:
        _remember(root, layout.AGENT_CONFIG_CACHE, "stamp", stamp, result)
    return result


def prime(root: Root) -> bool:
    """Leave the parse of ``root``'s agent config files in the cache across boots (``metaboot
    image prepare`` does, for the files it writes), so that a first boot's local stage needs
    no YAML parser. True when the cache holds it."""
    texts = _read([(f, root.host_path(f)) for f in config_files(root)])
    key = _content_key(texts)
    if key is None:
        return False
    _remember(root, layout.AGENT_CONFIG_PARSED, "key", key, _parse_all(texts))
    return _recall(root, layout.AGENT_CONFIG_PARSED, "key", key) is not None


def _read(sources: list[tuple[str, str]]) -> list[tuple[str, bytes | None, str]]:
    """(label, bytes or None, why not) per file, in order."""
    texts: list[tuple[str, bytes | None, str]] = []
    for label, host_path in sources:
        try:
            with open(host_path, "rb") as handle:
                texts.append((label, handle.read(), ""))
        except OSError as err:
            texts.append((label, None, f"{label}: cannot read: {err.strerror or err}"))
    return texts


def _parse_all(texts: list[tuple[str, bytes | None, str]]) -> AgentConfig:
    result = AgentConfig(cfg=_fresh(DEFAULTS))
    for label, text, error in texts:
        if text is None:
            result.problems.append(error)
            continue
        result.files.append(label)
        layer = parse(text, label, result.problems)
        if layer:
            result.cfg = merge(result.cfg, layer)
    return result


def _content_key(texts: list[tuple[str, bytes | None, str]]) -> str | None:
    from metaboot.guest.digests import sha256_hex

    try:
        identity = json.dumps([__version__, DEFAULTS], sort_keys=True)
    except (TypeError, ValueError):
        return None
    parts = [identity.encode()]
    for label, text, error in texts:
        parts.append(label.encode("utf-8", "surrogateescape"))
        parts.append(sha256_hex(text).encode() if text is not None else error.encode())
    return sha256_hex(b"\0".join(parts))


def _stamp(sources: list[tuple[str, str]]) -> list[Any] | None:
    """What identifies the files read, or None when one cannot be looked at (no caching)."""
    stamp: list[Any] = [__version__, DEFAULTS]  # and the defaults the files apply over
    for label, host_path in sources:
        try:
            info = os.stat(host_path)
        except OSError:
            return None
        stamp.append([label, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns])
    return stamp


def _recall(root: Root, guest_path: str, name: str, value: Any) -> AgentConfig | None:
    """The result kept at ``guest_path`` if its ``name`` (the stamp or the key) is ``value``."""
    try:
        doc = json.loads(root.read_bytes(guest_path))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get(name) != value:
        return None
    cfg, files, problems = doc.get("cfg"), doc.get("files"), doc.get("problems")
    if not (isinstance(cfg, dict) and isinstance(files, list) and isinstance(problems, list)):
        return None
    return AgentConfig(cfg=cfg, files=files, problems=problems)


def _remember(root: Root, guest_path: str, name: str, value: Any, result: AgentConfig) -> None:
    doc = {name: value, "cfg": result.cfg, "files": result.files, "problems": result.problems}
    try:
        text = json.dumps(doc, separators=(",", ":"))
    except (TypeError, ValueError):
        return  # YAML gave something JSON cannot hold (a date, …): parse it again next time
    if json.loads(text)["cfg"] != result.cfg:
        return
    try:  # noqa: SIM105 - only a cache: a lost one is parsed again (no contextlib on a boot)
        volatile.write(root, guest_path, text, 0o600)
    except OSError:
        pass


def parse(text: bytes, label: str, problems: list[str]) -> dict[str, Any]:
    """One config file as a mapping, minus anything invalid (reported in ``problems``)."""
    try:
        data = load_yaml(text, label)
    except UserDataError as err:
        problems.append(f"{err}; the file is ignored")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{label}: expected a mapping at the top level; the file is ignored")
        return {}
    found = validate(data, AGENT_SCHEMA)
    if not found:
        return data
    found = locate(found, line_map(text))
    for problem in found:
        problems.append(f"{label}: {problem}; the default is used instead")
    pruned: dict[str, Any] = _fresh(data)
    for problem in found:
        _prune(pruned, problem.path)
    return pruned


def _prune(data: dict[str, Any], path: tuple[str | int, ...]) -> None:
    """Remove the innermost mapping key on ``path`` (a bad list item takes its list with it),
    so that its default applies and sibling settings survive."""
    cut = max((i for i, part in enumerate(path) if isinstance(part, str)), default=-1)
    if cut < 0:
        return
    parent: Any = data
    for part in path[:cut]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(parent, dict):
        parent.pop(path[cut], None)
