"""ISO 9660 images with Joliet and Rock Ridge, written with pycdlib.

pycdlib builds the image in memory in a few milliseconds for a config drive's sixty-odd files
(several times faster than writing a temporary tree and running genisoimage; see
bench/drive_build.py). Two things it does not do on its own are handled here:

* Determinism. pycdlib stamps every record with ``time.time()`` rendered in the host's local
  zone. While an image is built, the ``time`` module seen by pycdlib's own modules is swapped
  for one whose clock is the caller's build time and whose local zone is UTC; a lock makes the
  swap safe between threads of this process.
* Names. Primary ISO 9660 identifiers must be upper-case d-characters; Joliet forbids a few
  characters and caps names at 64. Exact names go in Rock Ridge ``NM`` records (what Linux
  shows); the other two get mangled, unique, stable names (``names.py``).
"""

from __future__ import annotations

import io
import threading
import time
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO

import pycdlib
import pycdlib.dates
import pycdlib.headervd
import pycdlib.pycdlib
import pycdlib.utils
from pycdlib.pycdlibexception import PyCdlibException

from metaboot import __version__
from metaboot.drive.fileset import Directory, build_tree, epoch_seconds
from metaboot.drive.names import iso_dir_name, iso_file_name, joliet_name, unique_names
from metaboot.errors import DriveError

# Deeper directories would need Rock Ridge relocation (rr_moved); a drive never needs them.
MAX_DIR_DEPTH = 7
MAX_LABEL = 32
FILE_MODE = 0o100444
DIR_MODE = 0o040555

_CLOCK_LOCK = threading.Lock()
_PYCDLIB_MODULES = (pycdlib.pycdlib, pycdlib.headervd, pycdlib.dates, pycdlib.utils)


@contextmanager
def _frozen_clock(seconds: int) -> Iterator[None]:
    """Make pycdlib see a clock stopped at ``seconds`` and a host in UTC."""
    fake = types.SimpleNamespace(
        time=lambda: float(seconds),
        localtime=lambda secs=None: time.gmtime(seconds if secs is None else secs),
        gmtime=lambda secs=None: time.gmtime(seconds if secs is None else secs),
        strftime=time.strftime,
        strptime=time.strptime,
        struct_time=time.struct_time,
    )
    with _CLOCK_LOCK:
        saved = [getattr(module, "time") for module in _PYCDLIB_MODULES]  # noqa: B009
        try:
            for module in _PYCDLIB_MODULES:
                setattr(module, "time", fake)  # noqa: B010
            yield
        finally:
            for module, original in zip(_PYCDLIB_MODULES, saved, strict=True):
                setattr(module, "time", original)  # noqa: B010


def _check_label(label: str) -> None:
    if not label or len(label) > MAX_LABEL or not label.isascii() or not label.isprintable():
        raise DriveError(f"ISO volume label {label!r}: must be 1-{MAX_LABEL} printable ASCII")


def _populate(iso: pycdlib.PyCdlib, tree: Directory) -> None:
    """Add every directory and file of ``tree``; parents before children, names sorted."""
    # path on each namespace for each directory of the tree, keyed by its drive path
    iso_paths: dict[str, tuple[str, str]] = {"": ("", "")}
    for drive_path, directory in tree.walk():
        iso_parent, joliet_parent = iso_paths[drive_path]
        depth = drive_path.count("/")
        if directory.dirs and depth >= MAX_DIR_DEPTH:
            deep = drive_path + sorted(directory.dirs)[0]
            raise DriveError(
                f"drive path {deep!r}: directories nest deeper than {MAX_DIR_DEPTH} levels, "
                "which ISO 9660 cannot hold without relocation"
            )
        iso_dirs = unique_names(directory.dirs, iso_dir_name)
        iso_files = unique_names(directory.files, iso_file_name)
        # Joliet and ISO names share one namespace per directory (files and dirs together).
        joliet = unique_names([*directory.dirs, *directory.files], joliet_name)
        for name in sorted(directory.dirs):
            iso_path = f"{iso_parent}/{iso_dirs[name]}"
            joliet_path = f"{joliet_parent}/{joliet[name]}"
            iso.add_directory(iso_path, rr_name=name, joliet_path=joliet_path, file_mode=DIR_MODE)
            iso_paths[f"{drive_path}{name}/"] = (iso_path, joliet_path)
        for name, data in sorted(directory.files.items()):
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                f"{iso_parent}/{iso_files[name]}",
                rr_name=name,
                joliet_path=f"{joliet_parent}/{joliet[name]}",
                file_mode=FILE_MODE,
            )


def write_iso(
    files: Mapping[str, bytes],
    out: BinaryIO,
    *,
    build_time: datetime | float,
    label: str = "config-2",
) -> None:
    """Write an ISO 9660 + Joliet + Rock Ridge image of ``files`` to the binary stream ``out``."""
    _check_label(label)
    tree = build_tree(files)
    seconds = epoch_seconds(build_time)
    try:
        with _frozen_clock(seconds):
            iso = pycdlib.PyCdlib()
            iso.new(
                interchange_level=3,
                sys_ident="LINUX",
                vol_ident=label,
                pub_ident_str=f"metaboot {__version__}",
                app_ident_str="metaboot",
                joliet=3,
                rock_ridge="1.09",
            )
            _populate(iso, tree)
            # pycdlib writes with many small seeks and writes; one write of a staged image is
            # faster on a real file (and works on pipes and at any stream position).
            staged = io.BytesIO()
            iso.write_fp(staged)
            iso.close()
    except PyCdlibException as err:
        raise DriveError(f"cannot build ISO image: {err}") from err
    out.write(staged.getbuffer())


def build_iso(
    files: Mapping[str, bytes], *, build_time: datetime | float, label: str = "config-2"
) -> bytes:
    """The ISO image of ``files`` as bytes."""
    out = io.BytesIO()
    write_iso(files, out, build_time=build_time, label=label)
    return out.getvalue()
