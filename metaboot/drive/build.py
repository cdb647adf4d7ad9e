"""Instance → config drive: the file set from the metadata core, then one of the writers.

The public entry points, all deterministic for a given instance, build time and seed key:

* ``drive_files`` / ``write_image``: the two halves, for callers with their own file set;
* ``build_drive`` (bytes), ``write_drive`` (a binary stream), ``write_drive_file`` (a path,
  written through a temporary file in the same directory and renamed, so a failure never
  leaves a partial drive where a VM would boot from it).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from metaboot.drive import iso, nocloud, vfat
from metaboot.drive.fileset import epoch_seconds
from metaboot.drive.seed import seed_source
from metaboot.errors import DriveError
from metaboot.metadata.instance import Instance
from metaboot.metadata.tree import MetadataSettings, build_tree

FORMATS = ("iso", "vfat", "nocloud")
FILESYSTEMS = ("iso", "vfat")
CONFIG_DRIVE_LABEL = "config-2"


@dataclass(frozen=True)
class DriveOptions:
    """How to build one drive. ``admin_pass`` and ``seed_key`` never appear in a repr."""

    build_time: datetime | float
    format: str = "iso"
    size: int = vfat.DEFAULT_SIZE  # VFAT volumes only
    nocloud_filesystem: str = "iso"  # what a NoCloud seed is written as
    admin_pass: str | None = field(default=None, repr=False)
    seed_key: bytes | None = field(default=None, repr=False)
    settings: MetadataSettings = field(default_factory=MetadataSettings)
    vendor_data2_dynamic: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DriveError(f"drive format {self.format!r}: choose one of {', '.join(FORMATS)}")
        if self.nocloud_filesystem not in FILESYSTEMS:
            raise DriveError(f"NoCloud filesystem {self.nocloud_filesystem!r}: choose iso or vfat")
        epoch_seconds(self.build_time)  # refuse a naive time before any work

    @property
    def filesystem(self) -> str:
        return self.nocloud_filesystem if self.format == "nocloud" else self.format

    @property
    def label(self) -> str:
        return nocloud.LABEL if self.format == "nocloud" else CONFIG_DRIVE_LABEL


def drive_files(instance: Instance, options: DriveOptions) -> dict[str, bytes]:
    """Every file the drive holds, path → bytes."""
    tree = build_tree(instance, options.settings, options.vendor_data2_dynamic)
    if options.format == "nocloud":
        return nocloud.nocloud_files(tree)
    random_bytes = seed_source(options.seed_key, instance.uuid, epoch_seconds(options.build_time))
    return tree.drive_files(random_bytes, admin_pass=options.admin_pass)


def write_image(
    files: Mapping[str, bytes],
    out: BinaryIO,
    *,
    filesystem: str,
    label: str,
    build_time: datetime | float,
    size: int = vfat.DEFAULT_SIZE,
) -> None:
    """Write ``files`` as an ISO 9660 or VFAT image to ``out``."""
    if filesystem == "iso":
        iso.write_iso(files, out, build_time=build_time, label=label)
    elif filesystem == "vfat":
        vfat.write_vfat(files, out, build_time=build_time, label=label, size=size)
    else:
        raise DriveError(f"filesystem {filesystem!r}: choose iso or vfat")


def _writer(instance: Instance, options: DriveOptions) -> Callable[[BinaryIO], None]:
    """Prepare everything that can fail on bad input, and return the part that only writes."""
    files = drive_files(instance, options)
    if options.filesystem == "vfat":
        image = vfat.vfat_image(
            files, build_time=options.build_time, label=options.label, size=options.size
        )
        return image.write_to

    iso_bytes = iso.build_iso(files, build_time=options.build_time, label=options.label)

    def write(out: BinaryIO) -> None:
        out.write(iso_bytes)

    return write


def write_drive(instance: Instance, out: BinaryIO, options: DriveOptions) -> None:
    """Write the drive of ``instance`` to the binary stream ``out``."""
    _writer(instance, options)(out)


def build_drive(instance: Instance, options: DriveOptions) -> bytes:
    """The drive of ``instance`` as bytes (a VFAT drive is its full size)."""
    out = io.BytesIO()
    write_drive(instance, out, options)
    return out.getvalue()


def write_drive_file(
    instance: Instance, path: str | os.PathLike[str], options: DriveOptions
) -> Path:
    """Write the drive of ``instance`` to ``path`` atomically; returns the path."""
    return write_atomic(Path(path), _writer(instance, options))


def write_atomic(target: Path, write: Callable[[BinaryIO], None], mode: int = 0o600) -> Path:
    """Write through a temporary file beside ``target``, fsync, then rename over it.

    Drives hold user-data and perhaps an admin password, so the file is private to its owner
    (``mode``) unless the caller asks otherwise.
    """
    if target.is_dir():
        raise DriveError(f"{target}: is a directory; give the drive's file name")
    directory = target.parent
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    except OSError as err:
        raise DriveError(f"{target}: cannot write here: {err.strerror}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException as err:
        temp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise DriveError(f"{target}: cannot write: {err.strerror or err}") from None
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return target
