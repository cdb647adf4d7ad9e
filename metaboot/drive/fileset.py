"""A set of files to put on a drive, checked once and shaped as a sorted tree.

Every writer takes the same input — a mapping of POSIX relative paths to bytes — so the checks
that do not depend on the filesystem (path syntax, a name used both as file and directory) live
here, and each writer only adds its own limits (name characters, depth, capacity).
Directories are implied by the paths; entries are always visited in code-point order, which is
what makes two builds of the same mapping byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from metaboot.errors import DriveError

# POSIX NAME_MAX; Rock Ridge and VFAT long names both fit within it.
MAX_NAME_BYTES = 255


@dataclass
class Directory:
    """One directory of the tree: sub-directories and files, each keyed by its name."""

    dirs: dict[str, Directory] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def entries(self) -> list[tuple[str, Directory | bytes]]:
        """Children in code-point order (directories and files interleaved by name)."""
        merged: dict[str, Directory | bytes] = {**self.dirs, **self.files}
        return sorted(merged.items())

    def walk(self, prefix: str = "") -> Iterator[tuple[str, Directory]]:
        """Yield (path, directory) for this directory and every one below it, parents first."""
        yield prefix, self
        for name, sub in sorted(self.dirs.items()):
            yield from sub.walk(f"{prefix}{name}/")


def check_path(path: str) -> list[str]:
    """Split a drive path into its components, refusing anything that is not a plain
    relative POSIX path (absolute paths, ``.``/``..``, empty components, NUL)."""
    if not isinstance(path, str) or not path:
        raise DriveError(f"drive path {path!r}: must be a non-empty string")
    if path.startswith("/"):
        raise DriveError(f"drive path {path!r}: must be relative (no leading '/')")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise DriveError(f"drive path {path!r}: empty, '.' or '..' component")
        if "\x00" in part:
            raise DriveError(f"drive path {path!r}: contains a NUL character")
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError as err:
            raise DriveError(f"drive path {path!r}: not valid Unicode ({err.reason})") from None
        if size > MAX_NAME_BYTES:
            raise DriveError(
                f"drive path {path!r}: component is {size} bytes, over {MAX_NAME_BYTES}"
            )
    return parts


def build_tree(files: Mapping[str, bytes]) -> Directory:
    """Turn a path → bytes mapping into a tree, refusing a name that is both file and dir."""
    root = Directory()
    for path in sorted(files):
        data = files[path]
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DriveError(f"drive path {path!r}: content must be bytes, not {type(data)}")
        parts = check_path(path)
        node = root
        for i, part in enumerate(parts[:-1]):
            if part in node.files:
                where = "/".join(parts[: i + 1])
                raise DriveError(f"drive path {path!r}: {where!r} is a file, not a directory")
            node = node.dirs.setdefault(part, Directory())
        leaf = parts[-1]
        if leaf in node.dirs:
            raise DriveError(f"drive path {path!r}: already a directory of other files")
        node.files[leaf] = bytes(data)
    return root


def epoch_seconds(build_time: datetime | float) -> int:
    """The build time as whole seconds since the epoch; naive datetimes are refused because
    two hosts in different zones would then build different images from the same input."""
    if isinstance(build_time, datetime):
        if build_time.tzinfo is None:
            raise DriveError("build time must be timezone-aware (e.g. 2024-01-01T00:00:00Z)")
        return int(build_time.timestamp())
    if isinstance(build_time, bool) or not isinstance(build_time, int | float):
        raise DriveError(f"build time must be a datetime or epoch seconds, not {build_time!r}")
    return int(build_time)


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
