"""The agent's byte-code in one file: served by the launcher's finder, never over an edit,
never to another Python version (checked in fresh processes on a copy of the package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_no_bundle_or_another_pythons_bundle_is_not_used(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    assert probe(site)["used"] is False  # none written
    path = bundle.write(str(site / "metaboot"))
    import marshal

    form, _magic, modules = marshal.loads(Path(path).read_bytes())  # noqa: S302 (ours)
    Path(path).write_bytes(marshal.dumps((form, b"\x00\x00\r\n", modules)))
    result = probe(site)
    assert result["used"] is False and result["runner"] == "SourceFileLoader"
    Path(path).write_bytes(b"not a bundle")
    assert probe(site)["used"] is False


def test_the_bundle_holds_every_module_of_the_package(tmp_path: Path) -> None:
    site = installed_copy(tmp_path)
    import marshal

    data = Path(bundle.write(str(site / "metaboot"))).read_bytes()
    _, _, modules = marshal.loads(data)  # noqa: S302 (our own file)
    sources = {
        ".".join(p.relative_to(site).with_suffix("").parts).removesuffix(".__init__")
        for p in (site / "metaboot").rglob("*.py")
    }
    assert set(modules) == sources
    assert os.path.basename(bundle.NAME) == "agent.bundle"
