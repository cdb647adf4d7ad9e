"""NoCloud: ``meta-data``/``user-data``/``vendor-data``/``network-config`` from a seed
directory, a drive labelled ``cidata``, or inline in the agent config."""

from __future__ import annotations

import os

from metaboot.errors import SourceError, UserDataError
from metaboot.guest.schema import load_yaml
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.sources.detect import SourceContext
from metaboot.guest.sources.drives import DirectoryTree, find_by_label, open_drive

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from metaboot.guest.sources.drives import FileTree


def read(ctx: SourceContext) -> InstanceData | None:
    settings = ctx.settings
    if "meta-data" in settings:
        inline = settings["meta-data"]
        meta_text = inline if isinstance(inline, str) else None
        meta = (
            inline
            if isinstance(inline, dict)
            else _meta(meta_text or "", "datasource.NoCloud.meta-data")
        )
        user = settings.get("user-data")
        return _build(
            meta,
            user.encode() if isinstance(user, str) else None,
            None,
            None,
            "config (agent.yaml)",
            ctx,
        )
    for directory in settings.get("dirs", []):
        host = ctx.root.host_path(directory)
        if os.path.isfile(os.path.join(host, "meta-data")):
            return read_from(DirectoryTree(host), f"seed-dir ({directory})", ctx)
    errors: list[str] = []
    for device in find_by_label(ctx.root, settings.get("labels", ["cidata", "CIDATA"])):
        try:
            with open_drive(ctx.root, device) as tree:
                return read_from(tree, f"config-disk ({device})", ctx)
        except SourceError as err:
            errors.append(str(err))
    if errors:
        raise SourceError("; ".join(errors))
    return None


def _meta(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        meta = load_yaml(text, what)
    except UserDataError as err:
        raise SourceError(str(err)) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise SourceError(f"{what}: expected a mapping")
    return meta


def read_from(tree: FileTree, subplatform: str, ctx: SourceContext) -> InstanceData:
    raw = tree.read("meta-data")
    if raw is None:
        raise SourceError(f"{subplatform}: no meta-data file")
    meta = _meta(raw, f"{subplatform} meta-data")
    network: dict[str, Any] | None = None
    raw_net = tree.read("network-config")
    if raw_net is not None and raw_net.strip():
        try:
            parsed = load_yaml(raw_net, f"{subplatform} network-config")
            if isinstance(parsed, dict):
                network = parsed.get("network", parsed) if "version" not in parsed else parsed
            elif parsed is not None:
                ctx.warnings.append(f"{subplatform} network-config: expected a mapping; ignored")
        except UserDataError as err:
            ctx.warnings.append(f"{err}; ignored")
    return _build(meta, tree.read("user-data"), tree.read("vendor-data"), network, subplatform, ctx)


def _build(
    meta: dict[str, Any],
    user_data: bytes | None,
    vendor_data: bytes | None,
    network: dict[str, Any] | None,
    subplatform: str,
    ctx: SourceContext,
) -> InstanceData:
    instance_id = meta.get("instance-id", meta.get("instance_id"))
    if instance_id is None or not str(instance_id).strip():
        raise SourceError(f"{subplatform} meta-data: no instance-id")
    hostname = meta.get("local-hostname", meta.get("hostname"))
    return InstanceData(
        source="NoCloud",
        instance_id=str(instance_id).strip(),
        local_hostname=str(hostname) if hostname else None,
        public_keys=_keys(meta.get("public-keys", meta.get("public_keys"))),
        availability_zone=meta.get("availability-zone") or meta.get("availability_zone"),
        metadata=meta,
        user_data=user_data,
        vendor_data=vendor_data,
        network_config=network,
        platform="nocloud",
        subplatform=subplatform,
    )


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, dict):
        keys: list[str] = []
        for item in value.values():
            keys += _keys(item.get("openssh-key") if isinstance(item, dict) else item)
        return keys
    return []
