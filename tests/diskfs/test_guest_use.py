"""The readers are for the guest agent: standard library only, and runnable by Debian's own
python3 (the interpreter a Debian 12 guest has)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metaboot.drive.iso import build_iso
from metaboot.drive.vfat import build_vfat
from tests.drive.checkers import sample_files

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"
WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_imports_nothing_beyond_the_standard_library() -> None:
    code = "import sys, metaboot.diskfs\nprint('\\n'.join(sorted(m for m in sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    outside = [
        m
        for m in out
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in ("metaboot", "sitecustomize", "_distutils_hack")
        and not m.startswith("__")  # __main__, the editable-install finder
    ]
    assert outside == []
    ours = {m for m in out if m.startswith("metaboot")}
    assert ours <= {"metaboot", "metaboot.errors", "metaboot.diskfs"} | {
        m for m in ours if m.startswith("metaboot.diskfs.")
    }


@pytest.mark.skipif(not Path(DEBIAN_PYTHON).exists(), reason="Debian's python3 is not installed")
def test_debian_python_reads_both_formats(tmp_path: Path) -> None:
    iso = tmp_path / "d.iso"
    iso.write_bytes(build_iso(sample_files(), build_time=WHEN))
    img = tmp_path / "d.img"
    img.write_bytes(build_vfat(sample_files(), build_time=WHEN, size=4 << 20))
    code = (
        f"import json, sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from metaboot.diskfs import read_image\n"
        "print(json.dumps({p: [read_image(p)[k].hex() for k in sorted(read_image(p))]\n"
        "                  for p in sys.argv[1:]}))\n"
    )
    # -I: Debian's interpreter alone, no site-packages, no environment (as in a bare guest)
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-I", "-c", code, str(iso), str(img)],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [data.hex() for _, data in sorted(sample_files().items())]
    got = json.loads(proc.stdout)
    assert got == {str(iso): expected, str(img): expected}
