"""Time a config-drive build per format against nova's way of building the same drive.

    .venv/bin/python bench/drive_build.py [--count 20] [--spec vm.yaml]

Both sides start from the same rendered documents (the instance's drive files) and end with an
image file on disk, neither side calling fsync (the CLI's atomic, fsynced write is timed on its
own lines, since fsync measures the disk more than the builder):

* ISO:    ours (metaboot.drive.iso, in process) vs nova's: write a temporary tree, then
          ``genisoimage -o … -ldots -allow-lowercase -allow-multidot -l -quiet -J -r -V config-2``;
* VFAT:   ours (sparse, in process) vs ``truncate`` + ``mkfs.vfat -n config-2`` + ``mcopy -s``
          (nova's mkfs + copy, without the root-only loop mount);
* NoCloud: ours vs genisoimage on a temporary tree labelled cidata (what cloud-localds does).

Each figure is the median of ``--count`` builds, after ``--warmup`` builds of each side that are
not counted (imports, page cache, the first fork of each tool). Ours and the baseline take
turns, one build each, starting side alternating, so that a burst of load elsewhere on a shared
machine slows both sides alike instead of one side's whole series. The ratio is baseline
median / our median (higher is better for us; the target is >= 3).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metaboot.drive import DriveOptions, drive_files, write_drive_file
from metaboot.drive.build import write_atomic, write_image
from metaboot.metadata import Instance, load_spec, parse_spec

WHEN = datetime(2024, 6, 1, 8, 0, 0, tzinfo=UTC)
SIZE = 64 * 1024 * 1024
TARGET = 3.0


def sample_instance() -> Instance:
    """A typical instance: two keys, user-data, two injected files, two ports."""
    return parse_spec(
        {
            "uuid": "6f1c7d2a-0b9e-4c8d-a1e2-93b4c5d6e7f8",
            "name": "bench-vm",
            "keys": [
                {"name": "a", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyA a@x"},
                {"name": "b", "data": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQBenchKeyB b@x"},
            ],
            "meta": {"role": "bench"},
            "user_data": "#cloud-config\n" + "packages: [nginx]\n" * 200,
            "files": [
                {"path": "/etc/motd", "content": "hello\n"},
                {"path": "/etc/app.ini", "content": "[a]\nb=c\n" * 50},
            ],
            "ports": [
                {
                    "network_id": "net-a",
                    "mac": "fa:16:3e:00:00:01",
                    "fixed_ips": ["10.0.0.5"],
                    "subnets": [{"cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "dns": ["1.1.1.1"]}],
                },
                {
                    "network_id": "net-b",
                    "mac": "fa:16:3e:00:00:02",
                    "fixed_ips": ["10.1.0.5"],
                    "subnets": [{"cidr": "10.1.0.0/24", "dhcp": True}],
                },
            ],
        }
    )


def _tree(root: Path, files: Mapping[str, bytes]) -> None:
    for path, data in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)


def _run(argv: list[str]) -> None:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def nova_iso(files: Mapping[str, bytes], out: Path, label: str) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        _tree(Path(tmp), files)
        _run(["genisoimage", "-o", str(out), "-ldots", "-allow-lowercase", "-allow-multidot",
              "-l", "-quiet", "-J", "-r", "-V", label, tmp])  # fmt: skip


def mkfs_vfat(files: Mapping[str, bytes], out: Path, label: str) -> None:
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        _tree(Path(tmp), files)
        with out.open("wb") as fp:
            fp.truncate(SIZE)
        _run(["mkfs.vfat", "-n", label, str(out)])
        entries = [str(p) for p in sorted(Path(tmp).iterdir())]
        _run(["mcopy", "-s", "-i", str(out), *entries, "::/"])


def ours(files: Mapping[str, bytes], out: Path, filesystem: str, label: str) -> None:
    """Like the baselines: write the image file, no fsync."""
    with out.open("wb") as fp:
        write_image(files, fp, filesystem=filesystem, label=label, build_time=WHEN)


def ours_durable(files: Mapping[str, bytes], out: Path, filesystem: str, label: str) -> None:
    """What ``metaboot drive build`` does: temporary file, fsync, rename."""
    write_atomic(
        out,
        lambda fp: write_image(files, fp, filesystem=filesystem, label=label, build_time=WHEN),
    )


def _timed(build: Callable[[], None]) -> float:
    start = time.perf_counter()
    build()
    return time.perf_counter() - start


def median_seconds(build: Callable[[], None], count: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        build()
    return statistics.median(_timed(build) for _ in range(count))


def interleaved_medians(
    ours: Callable[[], None], baseline: Callable[[], None], count: int, warmup: int
) -> tuple[float, float]:
    """Medians of ``count`` builds of each side, taken in turns after ``warmup`` of each."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_times, base_times = [], []
    for i in range(count):
        if i % 2:
            base_times.append(_timed(baseline))
            ours_times.append(_timed(ours))
        else:
            ours_times.append(_timed(ours))
            base_times.append(_timed(baseline))
    return statistics.median(ours_times), statistics.median(base_times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="builds per figure (median)")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted builds of each side first")
    parser.add_argument("--spec", help="instance spec to build (default: a typical one)")
    args = parser.parse_args(argv)
    for tool in ("genisoimage", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: run scripts/setup-system")

    instance = load_spec(args.spec) if args.spec else sample_instance()
    config = drive_files(instance, DriveOptions(build_time=WHEN))
    seed = drive_files(instance, DriveOptions(build_time=WHEN, format="nocloud"))
    for name, files in (("config drive", config), ("NoCloud seed", seed)):
        dirs = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
        print(f"{name}: {len(files)} files in {len(dirs)} directories, "
              f"{sum(map(len, files.values()))} bytes")  # fmt: skip
    print(f"median of {args.count} builds per side, taken in turns, after {args.warmup} "
          "uncounted builds of each")  # fmt: skip

    rows = []
    with tempfile.TemporaryDirectory(prefix="drive-bench-") as tmp:
        out = Path(tmp, "disk.config")
        cases = [
            ("iso", config, "config-2", "iso", nova_iso, "genisoimage (nova)"),
            ("vfat", config, "config-2", "vfat", mkfs_vfat, "mkfs.vfat + mcopy"),
            ("nocloud", seed, "cidata", "iso", nova_iso, "genisoimage (cloud-localds)"),
        ]
        ours_out, base_out = Path(tmp, "ours.img"), Path(tmp, "baseline.img")
        for name, files, label, fs, baseline, baseline_name in cases:
            ours_s, base_s = interleaved_medians(
                lambda f=files, fs=fs, lb=label: ours(f, ours_out, fs, lb),
                lambda f=files, b=baseline, lb=label: b(f, base_out, lb),
                args.count,
                args.warmup,
            )
            size = ours_out.stat().st_size
            rows.append((name, ours_s, baseline_name, base_s, base_s / ours_s, size))
        durable = {
            fs: median_seconds(
                lambda fs=fs: ours_durable(config, out, fs, "config-2"), args.count, args.warmup
            )
            for fs in ("iso", "vfat")
        }
        end_to_end = median_seconds(
            lambda: write_drive_file(instance, out, DriveOptions(build_time=WHEN)),
            args.count,
            args.warmup,
        )

    print(f"{'format':8} {'image':>9} {'ours':>10} {'baseline':>10}  {'ratio':>6}  baseline")
    for name, ours_s, baseline_name, base_s, ratio, size in rows:
        flag = "" if ratio >= TARGET else f"  (below the {TARGET:g}x target)"
        print(f"{name:8} {size / 1024:7.0f}KiB {ours_s * 1e3:8.2f}ms {base_s * 1e3:8.2f}ms  "
              f"{ratio:5.1f}x  {baseline_name}{flag}")  # fmt: skip
    print("(both sides write the image file without fsync)")
    for fs, seconds in durable.items():
        print(f"{fs} through a temporary file + fsync + rename: {seconds * 1e3:.2f}ms")
    print(f"iso from the Instance, rendering and fsync included: {end_to_end * 1e3:.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
