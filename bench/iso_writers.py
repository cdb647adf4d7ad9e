"""Why the ISO writer is our own: the ways of building the same drive with pycdlib, timed
against metaboot.drive.iso in one run.

    .venv/bin/python bench/iso_writers.py [--count 20]

pycdlib is a test dependency (``scripts/setup-venv server,test``). Every variant gets the same
files and the same names that metaboot.drive.iso gives them (primary, Joliet, Rock Ridge),
planned before the clock starts, so only the library's own work is timed:

* ``pycdlib``: add_directory / add_fp per entry, then write_fp into memory. This is what the
  former writer did, less its frozen-clock swap (so these images are not reproducible);
* ``pycdlib, hard links``: each distinct document added once, its other paths as hard links
  (the config drive repeats documents across versions);
* ``pycdlib, copy of a cached tree``: only ``copy.deepcopy`` of a PyCdlib object that already
  holds every directory. This is the cost of the cheapest reuse of a cached layout, before any
  file is added;
* ``pycdlib, ISO 9660 only``: no Joliet, no Rock Ridge. This is a floor that no drive can use,
  because the drive needs both;
* ``metaboot``: metaboot.drive.iso.build_iso, everything included.

Builds take turns, one of each variant per round, after uncounted warm-up rounds; medians.
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pycdlib
from drive_build import WHEN, sample_instance

from metaboot.drive import DriveOptions, drive_files
from metaboot.drive.fileset import build_tree
from metaboot.drive.iso import build_iso
from metaboot.drive.names import iso_dir_name, iso_file_name, joliet_name, unique_names

# (iso path, Rock Ridge name, Joliet path) per directory; the same plus data per file
Plan = tuple[list[tuple[str, str, str]], list[tuple[str, str, str, bytes]]]


def plan(files: Mapping[str, bytes]) -> Plan:
    """The three names of every directory and file, as metaboot.drive.iso chooses them."""
    dirs: list[tuple[str, str, str]] = []
    entries: list[tuple[str, str, str, bytes]] = []
    paths = {"": ("", "")}
    for drive_path, directory in build_tree(files).walk():
        iso_parent, joliet_parent = paths[drive_path]
        iso_dirs = unique_names(directory.dirs, iso_dir_name)
        iso_files = unique_names(directory.files, iso_file_name)
        joliet = unique_names([*directory.dirs, *directory.files], joliet_name)
        for name in sorted(directory.dirs):
            here = (f"{iso_parent}/{iso_dirs[name]}", f"{joliet_parent}/{joliet[name]}")
            dirs.append((here[0], name, here[1]))
            paths[f"{drive_path}{name}/"] = here
        for name, data in sorted(directory.files.items()):
            iso_path = f"{iso_parent}/{iso_files[name]}"
            entries.append((iso_path, name, f"{joliet_parent}/{joliet[name]}", data))
    return dirs, entries


def _new(*, extensions: bool = True) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    if extensions:
        iso.new(interchange_level=3, vol_ident="config-2", joliet=3, rock_ridge="1.09")
    else:
        iso.new(interchange_level=3, vol_ident="config-2")
    return iso


def with_pycdlib(layout: Plan, *, hard_links: bool = False, extensions: bool = True) -> bytes:
    dirs, entries = layout
    iso = _new(extensions=extensions)
    for iso_path, name, joliet_path in dirs:
        if extensions:
            iso.add_directory(iso_path, rr_name=name, joliet_path=joliet_path)
        else:
            iso.add_directory(iso_path)
    first: dict[bytes, str] = {}
    for iso_path, name, joliet_path, data in entries:
        if hard_links and data in first:
            iso.add_hard_link(iso_old_path=first[data], iso_new_path=iso_path, rr_name=name)
            iso.add_hard_link(iso_old_path=first[data], joliet_new_path=joliet_path)
        elif extensions:
            first[data] = iso_path
            iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=name, joliet_path=joliet_path)
        else:
            iso.add_fp(io.BytesIO(data), len(data), iso_path)
    out = io.BytesIO()
    iso.write_fp(out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="builds per variant (median)")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted rounds first")
    args = parser.parse_args(argv)

    files = drive_files(sample_instance(), DriveOptions(build_time=WHEN))
    layout = plan(files)
    skeleton = _new()
    for iso_path, name, joliet_path in layout[0]:
        skeleton.add_directory(iso_path, rr_name=name, joliet_path=joliet_path)
    variants: dict[str, Callable[[], object]] = {
        "pycdlib": lambda: with_pycdlib(layout),
        "pycdlib, hard links": lambda: with_pycdlib(layout, hard_links=True),
        "pycdlib, copy of a cached tree": lambda: copy.deepcopy(skeleton),
        "pycdlib, ISO 9660 only": lambda: with_pycdlib(layout, extensions=False),
        "metaboot": lambda: build_iso(files, build_time=WHEN),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(args.warmup + args.count):
        for name, build in variants.items():
            start = time.perf_counter()
            build()
            if round_number >= args.warmup:
                times[name].append(time.perf_counter() - start)

    print(f"{len(files)} files ({len(set(files.values()))} distinct), "
          f"{sum(map(len, files.values()))} bytes; median of {args.count} builds each")  # fmt: skip
    ours = statistics.median(times["metaboot"])
    for name, series in times.items():
        median = statistics.median(series)
        print(f"{name:32} {median * 1e3:7.2f}ms  {median / ours:5.1f}x metaboot's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
