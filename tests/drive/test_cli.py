"""``metaboot drive``: build from a spec or the registry, --all with progress, inspect."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from metaboot import cli
from metaboot.diskfs import read_image
from metaboot.drive.build import DriveOptions
from metaboot.drive.cli import build_all, parse_size, parse_time
from metaboot.errors import DriveError
from metaboot.metadata import parse_spec
from tests.drive.checkers import blkid, require_tools
from tests.drive.specs import USER_DATA, UUID, rich_spec

TIME = "2024-06-01T08:00:00Z"


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tools()


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "vm.yaml"
    path.write_text(yaml.safe_dump(rich_spec()))
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.key"
    path.write_bytes(b"k" * 32)
    return path


def _run(*argv: str | Path) -> int:
    return cli.main(["drive", *map(str, argv)])


@pytest.mark.parametrize(("fmt", "fs_type"), [("iso", "iso9660"), ("vfat", "vfat")])
def test_build_from_spec(
    tmp_path: Path, spec_file: Path, key_file: Path, fmt: str, fs_type: str
) -> None:
    out = tmp_path / "disk.config"
    args = ["build", "--spec", spec_file, "--format", fmt, "-o", out, "--time", TIME]
    assert _run(*args, "--seed-key-file", key_file) == 0
    assert blkid(out)["TYPE"] == fs_type
    first = out.read_bytes()
    assert _run(*args, "--seed-key-file", key_file) == 0
    assert out.read_bytes() == first  # reproducible from the command line too
    files = read_image(out)
    assert files["openstack/latest/user_data"] == USER_DATA.encode()


def test_source_date_epoch_is_the_default_time(
    tmp_path: Path, spec_file: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1717228800")
    a, b = tmp_path / "a.iso", tmp_path / "b.iso"
    assert _run("build", "--spec", spec_file, "-o", a, "--seed-key-file", key_file) == 0
    assert _run("build", "--spec", spec_file, "-o", b, "--time", "@1717228800",
                "--seed-key-file", key_file) == 0  # fmt: skip
    assert a.read_bytes() == b.read_bytes()


def test_vfat_size_and_nocloud_and_admin_pass(tmp_path: Path, spec_file: Path) -> None:
    out = tmp_path / "small.img"
    assert _run("build", "--spec", spec_file, "--format", "vfat", "--size", "8M", "-o", out) == 0
    assert out.stat().st_size == 8 << 20
    seed = tmp_path / "seed.img"
    args = ["build", "--spec", spec_file, "--format", "nocloud", "--nocloud-fs", "vfat"]
    assert _run(*args, "--size", "1M", "-o", seed) == 0
    assert blkid(seed)["LABEL"] == "cidata"
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    cd = tmp_path / "cd.iso"
    assert _run("build", "--spec", spec_file, "--admin-pass-file", pw, "-o", cd) == 0
    meta = json.loads(read_image(cd)["openstack/latest/meta_data.json"])
    assert meta["admin_pass"] == "hunter2"


def test_settings_options(tmp_path: Path, spec_file: Path) -> None:
    vendor = tmp_path / "vendor.json"
    vendor.write_text('{"ntp": "pool.example"}')
    out = tmp_path / "d.iso"
    args = ["build", "--spec", spec_file, "-o", out, "--dhcp-domain", "lab.example."]
    assert _run(*args, "--vendor-data", vendor) == 0
    files = read_image(out)
    assert json.loads(files["openstack/latest/meta_data.json"])["hostname"] == "drive-1.lab.example"
    assert json.loads(files["openstack/latest/vendor_data.json"])["ntp"] == "pool.example"


def test_inspect_lists_and_prints(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("iso", "vfat"):
        out = tmp_path / f"d.{fmt}"
        assert _run("build", "--spec", spec_file, "--format", fmt, "-o", out) == 0
        capsys.readouterr()
        assert _run("inspect", out) == 0
        listing = capsys.readouterr().out
        assert "label='config-2'" in listing
        assert "openstack/latest/meta_data.json" in listing
        assert _run("inspect", out, "--json") == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["files"]["openstack/latest/user_data"] == len(USER_DATA)
    # printing a file goes to stdout as raw bytes: check through a real process
    proc = subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "drive", "inspect", str(out),
         "openstack/latest/user_data"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert proc.stdout == USER_DATA.encode()


def _fails(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    assert _run(*argv) == 1
    return capsys.readouterr().err


def test_bad_input_is_named_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    no_uuid = tmp_path / "no-uuid.yaml"
    no_uuid.write_text(yaml.safe_dump({k: v for k, v in rich_spec().items() if k != "uuid"}))
    err = _fails(capsys, "build", "--spec", no_uuid, "-o", out_dir / "d.iso")
    assert "metaboot drive: error: uuid" in err and str(no_uuid) in err

    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(rich_spec() | {"user_data": "x" * 70000}))
    err = _fails(capsys, "build", "--spec", big, "-o", out_dir / "d.iso")
    assert "user_data" in err and "65535" in err

    spec = tmp_path / "ok.yaml"
    spec.write_text(yaml.safe_dump(rich_spec() | {"user_data": "y" * 40000}))
    err = _fails(capsys, "build", "--spec", spec, "--format", "vfat", "--size", "128K",
                 "-o", out_dir / "d.img")  # fmt: skip
    assert "does not fit a VFAT volume of 131072 bytes" in err

    err = _fails(capsys, "build", "--spec", spec, "-o", tmp_path / "absent" / "d.iso")
    assert "cannot write here" in err
    err = _fails(capsys, "build", "--spec", spec, "--size", "lots", "-o", out_dir / "d.iso")
    assert "--size 'lots'" in err
    err = _fails(capsys, "build", "--spec", spec, "--time", "2024-01-01", "-o", out_dir / "d.iso")
    assert "give a zone" in err
    short = tmp_path / "short.key"
    short.write_bytes(b"123")
    err = _fails(capsys, "build", "--spec", spec, "--seed-key-file", short, "-o", out_dir / "x")
    assert "at least 16 bytes" in err
    err = _fails(capsys, "inspect", spec)
    assert "neither an ISO 9660 nor a FAT" in err
    assert list(out_dir.iterdir()) == []


def test_build_all_reports_progress_and_isolates_failures(tmp_path: Path) -> None:
    good = [parse_spec(rich_spec() | {"uuid": f"00000000-0000-4000-8000-00000000000{i}"})
            for i in range(3)]  # fmt: skip
    bad = parse_spec(rich_spec() | {"uuid": UUID, "user_data": "z" * 45000})
    options = DriveOptions(build_time=parse_time(TIME), format="vfat", size=parse_size("256K"))
    stream = io.StringIO()
    status = build_all([good[0], bad, good[1], good[2]], tmp_path, options, stream)
    assert status == 1
    text = stream.getvalue()
    assert "[" in text and "4/4" in text
    assert f"{UUID}: content does not fit" in text
    assert "3 of 4 drives built" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i.uuid}.img" for i in good)
    with pytest.raises(DriveError, match="not a directory"):
        build_all(good, tmp_path / "nope", options, stream)


def test_parse_size_and_time() -> None:
    assert parse_size("64M") == parse_size("64MiB") == 64 << 20
    assert parse_size("1g") == 1 << 30 and parse_size("4096") == 4096
    assert parse_time("@0").timestamp() == 0
    assert parse_time("2024-06-01T10:00:00+02:00").timestamp() == parse_time(TIME).timestamp()


def _registry() -> Any:
    return pytest.importorskip("metaboot.registry.store", reason="registry not on main yet")


def test_build_from_the_registry(tmp_path: Path, key_file: Path) -> None:
    store = _registry()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with store.Registry.open(url) as registry:
        for i in range(3):
            registry.add(
                parse_spec(rich_spec() | {"uuid": f"00000000-0000-4000-8000-00000000000{i}"})
            )
    one = tmp_path / "one.iso"
    uuid = "00000000-0000-4000-8000-000000000001"
    assert _run("build", uuid, "--db", url, "-o", one, "--seed-key-file", key_file) == 0
    meta = json.loads(read_image(one)["openstack/latest/meta_data.json"])
    assert meta["uuid"] == uuid
    out = tmp_path / "all"
    out.mkdir()
    assert _run("build", "--all", "--db", url, "-o", out, "--format", "vfat") == 0
    assert len(list(out.iterdir())) == 3
    assert _run("build", "00000000-0000-4000-8000-00000000000f", "--db", url, "-o", one) == 1


def test_help_through_the_real_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metaboot.cli", "drive", "build", "--help"],
        capture_output=True, text=True, check=True, env=dict(os.environ),
    )  # fmt: skip
    assert "--format {iso,vfat,nocloud}" in proc.stdout
