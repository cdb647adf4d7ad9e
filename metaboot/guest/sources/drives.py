"""Finding a labelled drive (config-2, cidata) and reading files from it.

Found by label the way udev and blkid see it: ``/dev/disk/by-label/<label>`` inside the Root
first (a test tree can point it at an image file), then, on a live system, ``blkid``. A drive
is read in user space by metaboot.diskfs when that reader is present — no mount, and it works
on image files too — otherwise mounted read-only on a private directory and unmounted after.
A seed directory is read as it is.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
from collections.abc import Iterable, Iterator

from metaboot.errors import MetabootError, SourceError
from metaboot.guest.os import spawn
from metaboot.guest.system import Root
from metaboot.imports import import_module

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any, Protocol

    class FileTree(Protocol):
        def read(self, path: str) -> bytes | None: ...

        def listdir(self, path: str) -> list[str]: ...


MAX_FILE = 64 * 1024 * 1024  # ironic's config-drive limit; nothing on a drive is larger


class DirectoryTree:
    """A directory on the host (a seed dir inside the Root, or a mount point)."""

    def __init__(self, base: str | os.PathLike[str]) -> None:
        self.base = os.fspath(base)

    def _path(self, path: str) -> str:
        clean = posixpath.normpath("/" + path).lstrip("/")
        return os.path.join(self.base, clean) if clean else self.base

    def read(self, path: str) -> bytes | None:
        target = self._path(path)
        try:
            with open(target, "rb") as handle:
                data = handle.read(MAX_FILE + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as err:
            raise SourceError(f"{target}: cannot read: {err.strerror}") from None
        if len(data) > MAX_FILE:
            raise SourceError(f"{target}: larger than {MAX_FILE} bytes")
        return data

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []


class DiskfsTree:
    """Adapter over metaboot.diskfs's readers (ISO 9660 / FAT, pure Python, no mount)."""

    def __init__(self, image: Any) -> None:
        self.image = image
        self.files: set[str] = set(image.files())
        self.dirs: set[str] = set(image.directories())

    def read(self, path: str) -> bytes | None:
        key = posixpath.normpath("/" + path).strip("/")
        if key not in self.files:
            return None
        if self.image.size(key) > MAX_FILE:
            raise SourceError(f"{self.image.name}: {key} is larger than {MAX_FILE} bytes")
        try:
            data: bytes = self.image.read(key)
        except MetabootError as err:
            raise SourceError(str(err)) from None
        return data

    def listdir(self, path: str) -> list[str]:
        key = posixpath.normpath("/" + path).strip("/")
        prefix = f"{key}/" if key else ""
        names = {
            entry[len(prefix) :].split("/", 1)[0]
            for entry in self.files | self.dirs
            if entry.startswith(prefix) and entry != key
        }
        return sorted(names)


def resolve_guest_link(root: Root, guest_path: str, hops: int = 40) -> str:
    """Follow a symlink at a guest path the way the guest would, staying inside the Root."""
    current = posixpath.normpath(guest_path)
    for _ in range(hops):
        host = root.host_path(current)
        if not os.path.islink(host):
            return current
        target = os.readlink(host)
        current = posixpath.normpath(
            target if target.startswith("/") else posixpath.join(posixpath.dirname(current), target)
        )
    raise SourceError(f"{guest_path}: too many levels of symbolic links")


def find_by_label(root: Root, labels: Iterable[str]) -> list[str]:
    """Guest paths of devices (or image files) carrying one of ``labels``, in label order."""
    found: list[str] = []
    labels = list(labels)
    for label in labels:
        link = f"/dev/disk/by-label/{label}"
        if os.path.islink(root.host_path(link)) or root.exists(link):
            device = resolve_guest_link(root, link)
            if root.exists(device) and device not in found:
                found.append(device)
    if found or not root.is_live:
        return found
    for label in labels:
        for device in blkid_by_label(label):
            if device not in found:
                found.append(device)
    return found


_BLKID_REUSE = 10.0  # seconds one listing serves (the sources are searched one after another)
_blkid_listing: tuple[float, dict[str, str]] | None = None


def blkid_labels() -> dict[str, str]:
    """Device -> label of every labelled filesystem, from one ``blkid`` run reused by the
    sources searched right after (each label asked separately cost a process start apiece,
    four per first boot without a drive)."""
    global _blkid_listing
    now = time.monotonic()
    if _blkid_listing is not None and now - _blkid_listing[0] < _BLKID_REUSE:
        return _blkid_listing[1]
    try:
        _, output = spawn.output(["blkid", "-o", "export", "-s", "LABEL"], timeout=10)
    except (OSError, TimeoutError):
        output = ""
    labels: dict[str, str] = {}
    device = None
    for line in output.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "DEVNAME":
            device = value
        elif key == "LABEL" and device is not None:
            labels[device] = value
        elif not line.strip():
            device = None
    _blkid_listing = (now, labels)
    return labels


def blkid_by_label(label: str) -> list[str]:
    return sorted((d for d, found in blkid_labels().items() if found == label), reverse=True)


def _diskfs() -> Any | None:
    try:
        return import_module("metaboot.diskfs")
    except ImportError:
        return None


def open_drive(root: Root, device: str) -> AbstractContextManager[FileTree]:
    """The files of the drive at guest path ``device`` (block device or image file), for a
    ``with`` block."""
    from contextlib import contextmanager  # only when there is a drive: most boots have none

    return contextmanager(_drive_files)(root, device)


def _drive_files(root: Root, device: str) -> Iterator[FileTree]:
    host = root.host_path(device)
    try:
        mode = os.stat(host).st_mode
    except OSError as err:
        raise SourceError(f"{device}: {err.strerror}") from None
    if stat.S_ISDIR(mode):
        yield DirectoryTree(host)
        return
    mountable = root.is_live and stat.S_ISBLK(mode)
    diskfs = _diskfs()
    if diskfs is not None:
        try:
            handle = open(host, "rb")  # noqa: SIM115 - closed below, after the caller is done
        except OSError as err:
            raise SourceError(f"{device}: cannot open: {err.strerror}") from None
        try:
            try:
                tree: FileTree | None = DiskfsTree(diskfs.open_image(handle, device))
            except MetabootError as err:
                # Not ISO 9660 or FAT as our reader knows them: the kernel may still read it.
                if not mountable:
                    raise SourceError(f"{device}: {err}") from None
                tree = None
            if tree is not None:
                yield tree
                return
        finally:
            handle.close()
    if not mountable:
        raise SourceError(f"{device}: no user-space filesystem reader available to read it")
    from contextlib import contextmanager

    with contextmanager(_mounted)(str(host)) as mount_point:
        yield DirectoryTree(mount_point)


def _mounted(device: str) -> Iterator[str]:
    """Mount read-only, without devices, setuid or exec, on a private directory."""
    import subprocess  # only when a drive must be mounted
    import tempfile

    base = "/run" if os.path.isdir("/run") else None
    mount_point = tempfile.mkdtemp(prefix="metaboot-drive.", dir=base)
    os.chmod(mount_point, 0o700)
    try:
        proc = subprocess.run(
            ["mount", "-o", "ro,nosuid,nodev,noexec", device, mount_point],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            raise SourceError(f"{device}: cannot mount: {proc.stderr.strip() or proc.returncode}")
        try:
            yield mount_point
        finally:
            subprocess.run(["umount", mount_point], capture_output=True, timeout=30, check=False)
    finally:
        try:  # noqa: SIM105 - as in the rest of the agent
            os.rmdir(mount_point)
        except OSError:
            pass
