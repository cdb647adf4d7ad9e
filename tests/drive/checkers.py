"""Independent tools that judge our images: blkid, isoinfo, osirrox, pycdlib, fsck.vfat, mtools.

Each helper runs the real tool and returns what it reports, so a test compares our bytes with
another implementation's reading of them rather than with our own reader.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pycdlib

TOOLS = ("blkid", "isoinfo", "osirrox", "genisoimage", "fsck.vfat", "mkfs.vfat", "mcopy")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    assert not missing, (
        f"checkers missing: {missing}; run scripts/setup-system (setup/apt/drive.list)"
    )


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", LC_ALL="C.UTF-8")
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def blkid(image: Path) -> dict[str, str]:
    """blkid's probe of the image, low-level mode, without its cache."""
    out = run(["blkid", "-p", "-o", "export", str(image)])
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def isoinfo_d(image: Path) -> str:
    out = run(["isoinfo", "-d", "-i", str(image)])
    assert out.returncode == 0, out.stderr
    return out.stdout


def isoinfo_x(image: Path, path: str, *, joliet: bool = False) -> bytes:
    """One file through isoinfo, by its Rock Ridge (or Joliet) path."""
    flag = "-J" if joliet else "-R"
    out = subprocess.run(
        ["isoinfo", flag, "-x", "/" + path, "-i", str(image)], capture_output=True, check=True
    )
    return out.stdout


def _tree(root: Path) -> dict[str, bytes]:
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath, name)
            files[full.relative_to(root).as_posix()] = full.read_bytes()
    return files


def _writable(root: Path) -> None:
    for dirpath, dirs, _names in os.walk(root):
        for name in dirs:
            Path(dirpath, name).chmod(0o755)


def osirrox_extract(image: Path, dest: Path) -> dict[str, bytes]:
    """Every file of an ISO, extracted by xorriso (Rock Ridge names)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = run(["osirrox", "-indev", str(image), "-extract", "/", str(dest)])
    assert out.returncode == 0, out.stderr
    _writable(dest)
    return _tree(dest)


def pycdlib_read(image: Path, namespace: str) -> dict[str, bytes]:
    """Every file of an ISO as pycdlib reads it, by its path in one namespace: ``rr`` (Rock
    Ridge names), ``joliet`` or ``iso`` (the primary ISO 9660 identifiers, ``;1`` included).

    pycdlib checks the structure as it opens an image (descriptors, path tables against the
    directories, record lengths), so merely opening it is a test of its own.
    """
    iso = pycdlib.PyCdlib()
    with image.open("rb") as fp:
        iso.open_fp(fp)
        files: dict[str, bytes] = {}
        for dirpath, _dirs, names in iso.walk(**{f"{namespace}_path": "/"}):
            for name in names:
                path = f"{dirpath.rstrip('/')}/{name}"
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, **{f"{namespace}_path": path})
                files[path.lstrip("/")] = out.getvalue()
        iso.close()
    return files


def isoinfo_paths(image: Path, *, joliet: bool = False) -> set[str]:
    """Every path (files and directories) isoinfo finds, by Rock Ridge (or Joliet) name."""
    flag = "-J" if joliet else "-R"
    out = subprocess.run(
        ["isoinfo", flag, "-f", "-i", str(image)], capture_output=True, check=True
    ).stdout
    return {line.lstrip("/") for line in out.decode("utf-8", "surrogateescape").splitlines()}


def mcopy_extract(image: Path, dest: Path) -> dict[str, bytes]:
    """Every file of a FAT volume, copied out by mtools."""
    dest.mkdir(parents=True, exist_ok=True)
    out = run(["mcopy", "-s", "-n", "-m", "-i", str(image), "::/", str(dest)])
    assert out.returncode == 0, out.stderr
    return _tree(dest)


def fsck_vfat(image: Path) -> subprocess.CompletedProcess[str]:
    """fsck.vfat in check-only mode; returncode 0 means nothing to fix."""
    return run(["fsck.vfat", "-n", "-v", str(image)])


def mkfs_vfat(image: Path, size: int, label: str, *extra: str) -> None:
    with open(image, "wb") as fp:
        fp.truncate(size)
    out = run(["mkfs.vfat", *extra, "-n", label, str(image)])
    assert out.returncode == 0, out.stderr


def mcopy_in(image: Path, source: Path) -> None:
    """Copy the contents of ``source`` into the root of the FAT volume."""
    entries = [str(p) for p in sorted(source.iterdir())]
    if entries:
        out = run(["mcopy", "-s", "-i", str(image), *entries, "::/"])
        assert out.returncode == 0, out.stderr


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)


def genisoimage(image: Path, source: Path, *extra: str) -> None:
    """nova's command line, plus ``extra`` options."""
    argv = [
        "genisoimage",
        "-o",
        str(image),
        "-ldots",
        "-allow-lowercase",
        "-allow-multidot",
        "-l",
        "-quiet",
        "-J",
        "-r",
        "-V",
        "config-2",
        *extra,
        str(source),
    ]
    out = run(argv)
    assert out.returncode == 0, out.stderr


def sample_files() -> dict[str, bytes]:
    """A config-drive-shaped file set with a few awkward members."""
    files: dict[str, bytes] = {}
    for version in ("2012-08-10", "2013-04-04", "2016-06-30", "2018-08-27", "latest"):
        base = f"openstack/{version}/"
        files[base + "meta_data.json"] = b'{"uuid": "0b4b9d3e", "hostname": "vm-%s"}' % (
            version.encode()
        )
        files[base + "user_data"] = b"#cloud-config\nhostname: vm\n" + bytes(range(256)) * 9
        files[base + "network_data.json"] = b'{"links": [], "networks": [], "services": []}'
        files[base + "vendor_data.json"] = b"{}"
        files[base + "vendor_data2.json"] = b"{}"
    files["openstack/content/0000"] = b"injected file\n"
    files["openstack/content/0001"] = b""
    for version in ("2009-04-04", "latest"):
        files[f"ec2/{version}/meta-data.json"] = b'{"instance-id": "i-00000001"}'
        files[f"ec2/{version}/user-data"] = b"#cloud-config\n"
    files["big.bin"] = bytes(range(256)) * 1500  # several clusters / blocks
    files["Mixed Case.Name.tar.gz"] = b"mixed"
    files["UPPER.TXT"] = b"plain 8.3"
    files["d\u00e9j\u00e0 vu/\u65e5\u672c\u8a9e.txt"] = b"unicode"
    files["x" * 120 + ".long"] = b"a long name"
    return files
