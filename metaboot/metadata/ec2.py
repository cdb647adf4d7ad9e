"""The EC2-format tree and nova's rules for printing it.

A version's tree is a nested dict: ``{"meta-data": {...}, "user-data": bytes}``. A path selects a
node; a dict prints as its sorted keys, one per line, a sub-dict as ``key/`` (or as its
``_name`` when it has one: ``public-keys/`` lists ``0=keyname`` with no slash), a list as its items,
anything else as text; never a trailing newline.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from metaboot.metadata import versions as v
from metaboot.metadata.instance import Instance, _ec2_number
from metaboot.metadata.openstack import full_hostname

_DEFAULT_BLOCK_DEVICES = {"ami": "sda1", "ephemeral0": "sda2", "root": "/dev/sda1", "swap": "sda3"}


def _ec2_ref(prefix: str, value: str | None) -> str | None:
    if not value:
        return None
    return value if value.startswith(prefix + "-") else f"{prefix}-{_ec2_number(value):08x}"


def block_device_mapping(instance: Instance) -> dict[str, str]:
    if instance.root_device_name is None:
        return dict(_DEFAULT_BLOCK_DEVICES)
    root = instance.root_device_name
    mapping = {"ami": root.removeprefix("/dev/"), "root": root}
    mapping.update(instance.block_device_mapping)
    return mapping


def _ipv4s(addresses: Sequence[str | None]) -> list[str]:
    return [a for a in addresses if a and ipaddress.ip_address(a).version == 4]


def ec2_tree(instance: Instance, version: str, *, dhcp_domain: str) -> dict[str, Any]:
    """The tree for a resolved EC2 version."""
    hostname = full_hostname(instance, dhcp_domain)
    fixed = _ipv4s([ip for port in instance.ports for ip in port.fixed_ips])
    floating = _ipv4s([port.floating_ip for port in instance.ports])
    meta: dict[str, Any] = {
        "ami-id": instance.ec2_image_id,
        "ami-launch-index": instance.launch_index,
        "ami-manifest-path": "FIXME",
        "instance-id": instance.ec2_instance_id,
        "hostname": hostname,
        # nova falls back to the requester's address; a tree is per instance, not per request.
        "local-ipv4": fixed[0] if fixed else "",
        "reservation-id": instance.reservation_id,
        "security-groups": list(instance.security_groups),
    }
    if instance.keys:
        first = instance.keys[0]
        meta["public-keys"] = {"0": {"_name": f"0={first.name}", "openssh-key": first.data}}
    if v.since(version, "2007-01-19"):
        meta["local-hostname"] = hostname
        meta["public-hostname"] = hostname
        meta["public-ipv4"] = floating[0] if floating else ""
    if v.since(version, "2007-08-29"):
        meta["instance-type"] = instance.flavor
    if v.since(version, "2007-12-15"):
        meta["block-device-mapping"] = block_device_mapping(instance)
        kernel = _ec2_ref("aki", instance.kernel_id)
        ramdisk = _ec2_ref("ari", instance.ramdisk_id)
        if kernel:
            meta["kernel-id"] = kernel
        if ramdisk:
            meta["ramdisk-id"] = ramdisk
    if v.since(version, "2008-02-01"):
        meta["placement"] = {"availability-zone": instance.availability_zone}
    if v.since(version, "2008-09-01"):
        meta["instance-action"] = "none"
    tree: dict[str, Any] = {"meta-data": meta}
    if instance.user_data is not None:
        tree["user-data"] = instance.user_data
    return tree


def find(tree: Any, tokens: Sequence[str]) -> Any | None:
    """The node at ``tokens`` below ``tree``, or None when there is none."""
    node = tree
    for token in tokens:
        if not isinstance(node, dict) or token == "_name" or token not in node:
            return None
        node = node[token]
    return node


def render(node: Any) -> bytes:
    """A node as the service prints it."""
    if isinstance(node, dict):
        lines = []
        for key in sorted(node):
            if key == "_name":
                continue
            child = node[key]
            if isinstance(child, dict):
                lines.append(str(child["_name"]) if "_name" in child else f"{key}/")
            else:
                lines.append(key)
        return "\n".join(lines).encode("utf-8")
    if isinstance(node, list):
        return "\n".join(str(item) for item in node).encode("utf-8")
    if isinstance(node, bytes):
        return node
    return str(node).encode("utf-8")


def drive_meta_data(tree: dict[str, Any]) -> dict[str, Any]:
    """meta-data.json for a config drive: the meta-data dict without the ``_name`` listing
    helper (nova means to drop it there too)."""
    meta = dict(tree["meta-data"])
    if "public-keys" in meta:
        meta["public-keys"] = {
            idx: {k: val for k, val in entry.items() if k != "_name"}
            for idx, entry in meta["public-keys"].items()
        }
    return meta
