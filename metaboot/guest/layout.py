"""Where the agent keeps things, as guest paths (always resolved through a Root).

Two trees: ``/var/lib/metaboot`` survives reboots and holds what must be remembered per instance
(semaphores, processed user-data, scripts); ``/run/metaboot`` is a tmpfs on a live system and
holds what belongs to this boot only (status, instance-data for ``query``). docs/agent.md
describes the same layout for the people who write modules and image recipes.
"""

from __future__ import annotations

import functools

from metaboot.guest.charsets import ASCII_ALNUM

STATE_DIR = "/var/lib/metaboot"
DATA_DIR = f"{STATE_DIR}/data"
INSTANCES_DIR = f"{STATE_DIR}/instances"
ONCE_SEM_DIR = f"{STATE_DIR}/sem"
SEED_DIR = f"{STATE_DIR}/seed"
SCRIPTS_DIR = f"{STATE_DIR}/scripts"  # per-boot/, per-instance/, per-once/ (image or MIME parts)

INSTANCE_ID_FILE = f"{DATA_DIR}/instance-id"
PREVIOUS_INSTANCE_ID_FILE = f"{DATA_DIR}/previous-instance-id"
SOURCE_FILE = f"{DATA_DIR}/source"
STATUS_COPY = f"{DATA_DIR}/status.json"
RESULT_COPY = f"{DATA_DIR}/result.json"

RUN_DIR = "/run/metaboot"
STATUS_FILE = f"{RUN_DIR}/status.json"
RESULT_FILE = f"{RUN_DIR}/result.json"
BOOT_INSTANCE_FILE = f"{RUN_DIR}/instance.json"  # the source's findings this boot (0600)
INSTANCE_DATA = f"{RUN_DIR}/instance-data.json"  # world-readable, sensitive keys redacted
INSTANCE_DATA_SENSITIVE = f"{RUN_DIR}/instance-data-sensitive.json"  # 0600
AGENT_CONFIG_CACHE = f"{RUN_DIR}/agent-config.json"  # the merged agent config, for later stages
# The agent config files' parse, kept across boots and keyed by their contents (config.load).
AGENT_CONFIG_PARSED = "/var/cache/metaboot/agent-config.json"

AGENT_CONFIG = "/etc/metaboot/agent.yaml"
AGENT_CONFIG_DIR = "/etc/metaboot/agent.d"
DISABLED_MARKER = "/etc/metaboot/disabled"

LOG_FILE = "/var/log/metaboot.log"
OUTPUT_LOG_FILE = "/var/log/metaboot-output.log"

# Names inside an instance directory (instances/<iid>/...).
SEM = "sem"
USER_DATA_RAW = "user-data.bin"
VENDOR_DATA_RAW = "vendor-data.json"
CLOUD_CONFIG = "cloud-config.json"  # merged vendor + user cloud-config (0600)
USERDATA_REPORT = "userdata.json"  # which parts were found, what went wrong with them
INSTANCE_SCRIPTS = "scripts"  # user-data #! parts and runcmd, run by scripts_user (final)
VENDOR_SCRIPTS = "scripts/vendor"  # vendor-data #! parts, run by scripts_vendor
BOOTHOOKS = "boothooks"
BOOT_FINISHED = "boot-finished"

_SAFE = frozenset(ASCII_ALNUM + "._-")


@functools.lru_cache(maxsize=8)  # a boot asks for its instance's a few dozen times
def instance_dirname(instance_id: str) -> str:
    """An instance-id as one safe path component (cloud-init replaces ``/``; we go further
    so that no id coming from a metadata service can name ``..`` or a hidden file)."""
    name = "".join(c if c in _SAFE else "_" for c in instance_id) or "_"
    if name in (".", "..") or name.startswith("."):
        name = "_" + name
    return name


def instance_dir(instance_id: str) -> str:
    return f"{INSTANCES_DIR}/{instance_dirname(instance_id)}"


def semaphore_name(module_name: str) -> str:
    """cloud-init canonicalises module names (``users-groups`` is ``users_groups``)."""
    return module_name.replace("-", "_")
