"""Time a config-drive build per format against nova's way of building the same drive.

    .venv/bin/python bench/drive_build.py [--count 20] [--spec vm.yaml]

Both sides start from the same rendered documents (the instance's drive files) and end with an
image file on disk, neither side calling fsync (the CLI's atomic, fsynced write is timed on its
own lines, since fsync measures the disk more than the builder):

* ISO:    ours (pycdlib, in process) vs nova's: write a temporary tree, then
          ``genisoimage -o … -ldots -allow-lowercase -allow-multidot -l -quiet -J -r -V config-2``;
* VFAT:   ours (sparse, in process) vs ``truncate`` + ``mkfs.vfat -n config-2`` + ``mcopy -s``
          (nova's mkfs + copy, without the root-only loop mount);
* NoCloud: ours vs genisoimage on a temporary tree labelled cidata (what cloud-localds does).

Each figure is the median of ``--count`` builds; the ratio is baseline / ours (higher is
better for us; the target is >= 3). Timings on a shared machine are noisy: compare the ratios,
which are measured in the same run.
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


def median_seconds(build: Callable[[], None], count: int) -> float:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        build()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20, help="builds per figure (median)")
    parser.add_argument("--spec", help="instance spec to build (default: a typical one)")
    args = parser.parse_args(argv)
    for tool in ("genisoimage", "mkfs.vfat", "mcopy"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: run scripts/setup-system")

    instance = load_spec(args.spec) if args.spec else sample_instance()
    config = drive_files(instance, DriveOptions(build_time=WHEN))
    seed = drive_files(instance, DriveOptions(build_time=WHEN, format="nocloud"))
    print(f"{len(config)} config-drive files, {sum(map(len, config.values()))} bytes; "
          f"median of {args.count} builds each")  # fmt: skip

    rows = []
    with tempfile.TemporaryDirectory(prefix="drive-bench-") as tmp:
        out = Path(tmp, "disk.config")
        cases = [
            ("iso", config, "config-2", "iso", nova_iso, "genisoimage (nova)"),
            ("vfat", config, "config-2", "vfat", mkfs_vfat, "mkfs.vfat + mcopy"),
            ("nocloud", seed, "cidata", "iso", nova_iso, "genisoimage (cloud-localds)"),
        ]
        for name, files, label, fs, baseline, baseline_name in cases:
            ours_s = median_seconds(
                lambda f=files, fs=fs, lb=label: ours(f, out, fs, lb), args.count
            )
            base_s = median_seconds(lambda f=files, b=baseline, lb=label: b(f, out, lb), args.count)
            rows.append((name, ours_s, baseline_name, base_s, base_s / ours_s))
        durable = {
            fs: median_seconds(lambda fs=fs: ours_durable(config, out, fs, "config-2"), args.count)
            for fs in ("iso", "vfat")
        }
        end_to_end = median_seconds(
            lambda: write_drive_file(instance, out, DriveOptions(build_time=WHEN)), args.count
        )

    print(f"{'format':8} {'ours':>10} {'baseline':>10}  {'ratio':>6}  baseline")
    for name, ours_s, baseline_name, base_s, ratio in rows:
        flag = "" if ratio >= TARGET else f"  (below the {TARGET:g}x target)"
        print(f"{name:8} {ours_s * 1e3:8.2f}ms {base_s * 1e3:8.2f}ms  {ratio:5.1f}x  "
              f"{baseline_name}{flag}")  # fmt: skip
    print("(both sides write the image file without fsync)")
    for fs, seconds in durable.items():
        print(f"{fs} through a temporary file + fsync + rename: {seconds * 1e3:.2f}ms")
    print(f"iso from the Instance, rendering and fsync included: {end_to_end * 1e3:.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
