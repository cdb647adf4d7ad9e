"""Read-only access to disk images: ISO 9660 (Rock Ridge / Joliet names) and FAT12/16/32.

Standard library only: the guest agent uses these readers to take a config drive's files out of
an image or block device without mounting it, and ``metaboot drive inspect`` uses them too.

    with open("disk.config", "rb") as fp:
        image = open_image(fp)
        image.label, image.files(), image.read("openstack/latest/meta_data.json")
"""

from __future__ import annotations

import os
from typing import BinaryIO

from metaboot.diskfs.base import FileEntry, ImageReader
from metaboot.diskfs.fat import FatReader, looks_like_fat
from metaboot.diskfs.iso9660 import SYSTEM_AREA, IsoReader, looks_like_iso
from metaboot.errors import DriveError

__all__ = ["FatReader", "FileEntry", "ImageReader", "IsoReader", "open_image", "read_image"]


def open_image(fp: BinaryIO, name: str | None = None) -> ImageReader:
    """Recognise the filesystem of the seekable binary stream ``fp`` and return its reader."""
    label = name or str(getattr(fp, "name", "image"))
    fp.seek(0)
    head = fp.read(SYSTEM_AREA + 2048)
    if looks_like_iso(head):
        return IsoReader(fp, label)
    if looks_like_fat(head[:512]):
        return FatReader(fp, label)
    raise DriveError(f"{label}: neither an ISO 9660 nor a FAT filesystem")


def read_image(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file of the image at ``path``, keyed by relative POSIX path."""
    try:
        with open(path, "rb") as fp:
            return open_image(fp, os.fspath(path)).read_all()
    except OSError as err:
        raise DriveError(f"{os.fspath(path)}: cannot read image: {err.strerror}") from err
