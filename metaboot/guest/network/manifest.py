"""What the agent wrote, so the next instance can remove it and leave everything else alone.

The manifest (JSON, under /var/lib/metaboot/network) maps each guest path we wrote to the
SHA-256 of what we wrote. A file is ours to replace or remove only while it still has that
content: once someone edits it, it is theirs. A file we must write over that is not ours (an
image's own ``ifcfg-eth0`` from the template machine) is first copied under ``saved/``.
"""

from __future__ import annotations

import json

from metaboot.guest.digests import sha256_hex
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root

STATE_DIR = "/var/lib/metaboot/network"
MANIFEST = f"{STATE_DIR}/manifest.json"
NEVER_REMOVE = frozenset({"/etc/resolv.conf"})  # a stale one still beats none


@dataclass
class Manifest:
    instance_id: str | None = None
    renderer: str | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def load(root: Root) -> tuple[Manifest, list[str]]:
    try:
        raw = root.read_text(MANIFEST)
    except FileNotFoundError:
        return Manifest(), []
    try:
        data = json.loads(raw)
        files = data["files"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise ValueError("files is not a map of paths to digests")
        return Manifest(data.get("instance_id"), data.get("renderer"), files), []
    except (ValueError, KeyError, TypeError) as err:
        return Manifest(), [f"{MANIFEST}: unreadable ({err}); no earlier file will be removed"]


def _read(root: Root, path: str) -> bytes | None:
    try:
        return root.read_bytes(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def apply(
    root: Root,
    instance_id: str,
    renderer: str,
    files: dict[str, bytes],
    modes: dict[str, int],
) -> Outcome:
    """Write ``files``, remove our stale ones, and record the new manifest."""
    old, messages = load(root)
    out = Outcome(messages=messages)
    same_instance = old.instance_id == instance_id
    new = Manifest(instance_id, renderer, {})
    for path, data in sorted(files.items()):
        current = _read(root, path)
        if current == data:
            new.files[path] = sha256_hex(data)
            continue
        if current is not None and old.files.get(path) != sha256_hex(current):
            if same_instance and path in old.files:
                out.messages.append(
                    f"{path}: changed since metaboot wrote it for this instance; left as it is"
                )
                continue
            saved = f"{STATE_DIR}/saved/{instance_id}{path}"
            root.write_file(saved, current, mode=0o600)
            out.messages.append(
                f"{path}: replaced a file metaboot had not written (kept as {saved})"
            )
        root.write_file(path, data, mode=modes.get(path, 0o644), owner=0, group=0)
        new.files[path] = sha256_hex(data)
        out.written.append(path)
    for path, recorded in sorted(old.files.items()):
        if path in files or path in NEVER_REMOVE:
            if path in NEVER_REMOVE and path not in files:
                new.files[path] = recorded
            continue
        current = _read(root, path)
        if current is None:
            continue
        if sha256_hex(current) != recorded:
            out.messages.append(
                f"{path}: stale, but changed since metaboot wrote it; left in place"
            )
            continue
        root.remove(path)
        out.removed.append(path)
    root.write_file(
        MANIFEST,
        json.dumps(
            {"instance_id": new.instance_id, "renderer": new.renderer, "files": new.files},
            indent=2,
            sort_keys=True,
        )
        + "\n",
        mode=0o600,
        owner=0,
        group=0,
    )
    return out
