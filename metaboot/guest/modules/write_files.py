"""write_files: files from cloud-config, with cloud-init's encodings, modes, owners and append.

Entries with ``defer: true`` wait for write_files_deferred in the final stage (after users
exist). A bad entry fails alone: every other file is still written, then the module reports
all the entries that failed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from metaboot.errors import ConfigError, MetabootError
from metaboot.guest.modules._schemas import WRITE_FILES, top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage
from metaboot.guest.os.files import gunzip_bounded

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

# Nova limits user-data to 64 KiB; anything expanding past this is a bomb, not a file.
MAX_DECODED_BYTES = 64 * 1024 * 1024
_ENCODINGS = {
    "text/plain": (),
    "b64": ("b64",),
    "base64": ("b64",),
    "gz": ("gz",),
    "gzip": ("gz",),
    "gz+b64": ("b64", "gz"),
    "gz+base64": ("b64", "gz"),
    "gzip+b64": ("b64", "gz"),
    "gzip+base64": ("b64", "gz"),
}
_KNOWN = {"path", "content", "owner", "permissions", "encoding", "append", "defer", "source"}


def decode_content(content: Any, encoding: str, where: str) -> bytes:
    """The bytes to write for ``content`` in ``encoding`` (pure; bounded decompression)."""
    steps = _ENCODINGS.get(encoding.strip().lower())
    if steps is None:
        raise ConfigError(f"{where}.encoding: unknown encoding {encoding!r}")
    if isinstance(content, bytes):
        data = content  # YAML !!binary
    elif isinstance(content, str):
        data = content.encode("utf-8")
    elif content is None:
        data = b""
    else:
        raise ConfigError(f"{where}.content: expected a string, got {content!r}")
    for step in steps:
        if step == "b64":
            try:
                # Line breaks are fine (YAML blocks); anything else outside base64 is an error,
                # rather than silently dropped as b64decode would by default.
                data = base64.b64decode(b"".join(data.split()), validate=True)
            except (binascii.Error, ValueError) as err:
                raise ConfigError(f"{where}.content: invalid base64 ({err})") from None
        else:
            data = gunzip_bounded(data, MAX_DECODED_BYTES, f"{where}.content")
    return data


def parse_permissions(value: Any, where: str) -> int:
    """cloud-init's ``permissions``: an octal string ('0644', '0o644') or a YAML octal int."""
    if value is None:
        return 0o644
    if isinstance(value, bool):
        raise ConfigError(f"{where}.permissions: expected an octal string, got {value!r}")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        try:
            mode = int(text, 8)
        except ValueError:
            raise ConfigError(
                f"{where}.permissions: {value!r} is not an octal mode like '0644'"
            ) from None
    else:
        raise ConfigError(f"{where}.permissions: expected an octal string, got {value!r}")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{where}.permissions: {value!r} is out of range")
    return mode


def parse_owner(value: Any, where: str) -> tuple[str, str | None]:
    """``user:group`` or ``user`` (then the user's primary group)."""
    if value is None:
        return "root", "root"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.owner: expected 'user:group', got {value!r}")
    user, _, group = value.strip().partition(":")
    return user, (group or None)


def write_entry(ctx: ModuleContext, entry: Mapping[str, Any], where: str) -> str:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with a path, got {entry!r}")
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{where}.path: expected an absolute path, got {path!r}")
    for warning in (f"{where}: unknown key {k!r} ignored" for k in entry if k not in _KNOWN):
        ctx.report.warn(warning)
    if "source" in entry:
        ctx.report.warn(f"{where}.source: fetching file content from a URL is not supported")
    data = decode_content(
        entry.get("content", ""), str(entry.get("encoding") or "text/plain"), where
    )
    mode = parse_permissions(entry.get("permissions"), where)
    user, group = parse_owner(entry.get("owner"), where)
    append = entry.get("append", False)
    if not isinstance(append, bool):
        raise ConfigError(f"{where}.append: expected true or false, got {append!r}")
    try:
        ctx.root.uid_of(user)
        if group is not None:
            ctx.root.gid_of(group)
    except KeyError as err:
        raise ConfigError(f"{where}.owner: {err.args[0]}") from None
    ctx.root.write_file(path, data, mode=mode, owner=user, group=group, append=append)
    verb = "appended to" if append else "wrote"
    return f"{verb} {path} ({len(data)} bytes, {mode:04o}, {user}:{group or user})"


def write_files(ctx: ModuleContext, deferred: bool) -> None:
    entries = ctx.cfg.get("write_files")
    if entries is None:
        return
    if not isinstance(entries, list):
        raise ConfigError(f"write_files: expected a list of files, got {entries!r}")
    failures: list[str] = []
    for index, entry in enumerate(entries):
        where = f"write_files[{index}]"
        defer = entry.get("defer", False) if isinstance(entry, Mapping) else False
        if not isinstance(defer, bool):
            failures.append(f"{where}.defer: expected true or false, got {defer!r}")
            continue
        if defer != deferred:
            continue
        try:
            ctx.report.changed(write_entry(ctx, entry, where))
        except (MetabootError, OSError) as err:
            failures.append(str(err))
    if failures:
        raise ConfigError(f"{len(failures)} file(s) not written: " + "; ".join(failures))


def handle(ctx: ModuleContext) -> None:
    write_files(ctx, deferred=False)


MODULE = Module(
    name="write_files",
    stage=Stage.NETWORK,
    frequency=Frequency.INSTANCE,
    keys=("write_files",),
    handle=handle,
    schema=top({"write_files": WRITE_FILES}),
)
