"""The OpenStack config drive: a filesystem labelled ``config-2`` (or a seed directory)."""

from __future__ import annotations

import os

from metaboot.errors import SourceError
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.sources.drives import DirectoryTree, find_by_label, open_drive
from metaboot.guest.sources.openstack_tree import pick_version, read_tree

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from metaboot.guest.sources.drives import FileTree


def read(ctx: SourceContext) -> InstanceData | None:
    root = ctx.root
    for directory in ctx.settings.get("dirs", []):
        host = root.host_path(directory)
        if os.path.isdir(os.path.join(host, "openstack")):
            return read_from(DirectoryTree(host), f"seed-dir ({directory})", ctx.warnings)
    devices = list(ctx.settings.get("devices", []))
    devices += [
        d
        for d in find_by_label(root, ctx.settings.get("labels", ["config-2", "CONFIG-2"]))
        if d not in devices
    ]
    errors: list[str] = []
    for device in devices:
        if not root.exists(device):
            continue
        try:
            with open_drive(root, device) as tree:
                return read_from(tree, f"config-disk ({device})", ctx.warnings)
        except SourceError as err:
            errors.append(str(err))
    if errors:
        raise SourceError("; ".join(errors))
    return None


def read_from(tree: FileTree, subplatform: str, warnings: list[str]) -> InstanceData:
    versions = tree.listdir("openstack")
    if not versions:
        raise SourceError(f"{subplatform}: no openstack/ directory")
    version = pick_version(versions)
    return read_tree(
        tree.read,
        version,
        source="ConfigDrive",
        subplatform=subplatform,
        warnings=warnings,
        drive=True,
    )
