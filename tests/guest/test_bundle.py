"""The agent's byte-code in one file: served by the launcher's finder, never over an edit,
never to another Python version (checked in fresh processes on a copy of the package)."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metaboot.guest import bundle

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from metaboot.guest import bundle
used = bundle.install()
import inspect
from metaboot.guest import runner, http
from metaboot.guest.modules import timezone
print(json.dumps({
    "used": used,
    "runner": type(runner.__loader__).__name__,
    "http": type(http.__loader__).__name__,
    "file": runner.__file__,
    "code_file": runner.run.__code__.co_filename,
    "source": inspect.getsource(http.split_url).splitlines()[0],
    "package": timezone.__package__,
    "works": http.split_url("http://127.0.0.1:81/a") == ("http", "127.0.0.1", 81, "/a"),
}))
"""


def installed_copy(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "metaboot", site / "metaboot", ignore=shutil.ignore_patterns("__pycache__")
    )
    return site


def probe(site: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, str(site)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


def test_the_launchers_finder_serves_the_agent_from_its_bundle(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    bundle.write(str(site / "metaboot"), ddir="/usr/lib/python3/dist-packages/metaboot")
    result = probe(site)
    assert result["used"] is True
    assert result["runner"] == result["http"] == "BundleFinder"
    assert result["file"] == str(site / "metaboot/guest/runner.py")  # where it is
    # the byte-code names the file where the image has it, as compileall's ddir does
    assert result["code_file"] == "/usr/lib/python3/dist-packages/metaboot/guest/runner.py"
    assert result["source"].startswith("def split_url(")
    assert result["package"] == "metaboot.guest.modules" and result["works"] is True


def test_an_edited_module_is_imported_from_its_source(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    bundle.write(str(site / "metaboot"))
    http = site / "metaboot/guest/http.py"
    http.write_text(http.read_text() + "\nEDITED = True\n")
    result = probe(site)
    assert result["runner"] == "BundleFinder"
    assert result["http"] == "SourceFileLoader"


def rewrite_header(path: str, change: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> None:
    """Rewrite a bundle's index (format, magic, index, code length) through ``change``."""
    data = Path(path).read_bytes()
    length = int.from_bytes(data[:4], "little")
    header = marshal.dumps(change(marshal.loads(data[4 : 4 + length])))  # noqa: S302 (ours)
    Path(path).write_bytes(len(header).to_bytes(4, "little") + header + data[4 + length :])


def test_no_bundle_or_another_pythons_bundle_is_not_used(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    assert probe(site)["used"] is False  # none written
    path = bundle.write(str(site / "metaboot"))
    rewrite_header(path, lambda h: (h[0], b"\x00\x00\r\n", *h[2:]))
    result = probe(site)
    assert result["used"] is False and result["runner"] == "SourceFileLoader"
    for broken in ((2, b"", "index", 0), (2, b"", {}, "size"), (2, b"", {})):
        rewrite_header(path, lambda _, broken=broken: broken)
        assert probe(site)["used"] is False
    Path(path).write_bytes(b"not a bundle")
    assert probe(site)["used"] is False


def test_a_cut_short_bundle_is_not_used(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    path = bundle.write(str(site / "metaboot"))
    Path(path).write_bytes(Path(path).read_bytes()[:-1])
    result = probe(site)
    assert result["used"] is False and result["runner"] == "SourceFileLoader"
    assert result["works"] is True


def test_the_bundle_holds_every_module_of_the_package(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    path = bundle.write(str(site / "metaboot"))
    fd = os.open(path, os.O_RDONLY)
    try:
        _, _, modules, base = bundle.read_index(fd)
        # each entry's code is its module's: the last in the file, read back whole
        name = max(modules, key=lambda n: modules[n][4])
        *_, offset, length = modules[name]
        code = marshal.loads(os.pread(fd, length, base + offset))  # noqa: S302 (ours)
    finally:
        os.close(fd)
    sources = {
        ".".join(p.relative_to(site).with_suffix("").parts).removesuffix(".__init__")
        for p in (site / "metaboot").rglob("*.py")
    }
    assert set(modules) == sources
    assert code.co_filename.endswith(modules[name][1])
    assert os.path.basename(bundle.NAME) == "agent.bundle"


LIBRARY_PROBE = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from metaboot.guest import bundle
bundle.install()
import textwrap, tabnanny, nosuchlib
print(json.dumps({
    name: [type(module.__loader__).__name__, module.__file__, getattr(module, "VALUE", None)]
    for name, module in sys.modules.items() if name in ("textwrap", "tabnanny", "nosuchlib")
}))
"""


def test_library_modules_are_served_from_the_bundle_until_their_source_changes(
    tmp_path: Path,
) -> None:
    """Library modules are bundled from where the guest's sys.path has them, under their guest
    paths; one whose source changed afterwards (an upgraded package) is imported from it."""
    site = installed_copy(tmp_path)
    image = tmp_path / "image"
    (image / "usr/lib/python3.x").mkdir(parents=True)
    (image / "usr/lib/site").mkdir(parents=True)
    for name in ("textwrap", "tabnanny"):
        (image / f"usr/lib/python3.x/{name}.py").write_text(f"VALUE = 'bundled {name}'\n")
    (image / "usr/lib/site/nosuchlib").mkdir()
    (image / "usr/lib/site/nosuchlib/__init__.py").write_text("VALUE = 'bundled package'\n")
    (image / "usr/lib/site/textwrap.py").write_text("VALUE = 'shadowed'\n")  # later on the path
    names = ("textwrap", "tabnanny", "nosuchlib")
    found = bundle.library_sources(
        lambda p: (image / p.lstrip("/")).exists(),
        ("/usr/lib/python3.x", "/usr/lib/site"),
        names,
    )
    assert found == {
        "textwrap": ("/usr/lib/python3.x/textwrap.py", False),
        "tabnanny": ("/usr/lib/python3.x/tabnanny.py", False),
        "nosuchlib": ("/usr/lib/site/nosuchlib/__init__.py", True),
    }
    # The guest paths are this test's image paths: the probe runs "in" the image.
    library = {n: (str(image) + g, str(image) + g, p) for n, (g, p) in found.items()}
    bundle.write(str(site / "metaboot"), library=library)
    (image / "usr/lib/python3.x/tabnanny.py").write_text("VALUE = 'upgraded'\n")
    stdlib, packages = str(image / "usr/lib/python3.x"), str(image / "usr/lib/site")
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", LIBRARY_PROBE, str(site), stdlib, packages],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["textwrap"] == ["BundleFinder", f"{stdlib}/textwrap.py", "bundled textwrap"]
    assert result["nosuchlib"] == [
        "BundleFinder",
        f"{packages}/nosuchlib/__init__.py",
        "bundled package",
    ]
    assert result["tabnanny"] == ["SourceFileLoader", f"{stdlib}/tabnanny.py", "upgraded"]


def test_a_built_in_or_frozen_module_is_never_bundled() -> None:
    found = bundle.library_sources(lambda p: True, ("/lib",), ("os", "sys", "json"))
    assert found == {"json": ("/lib/json/__init__.py", True)}
