"""The image's /usr/bin/metaboot: Debian's Python with -I -S and the system site packages."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from metaboot.guest.launcher import INTERPRETER, launcher_text

REPO = Path(__file__).resolve().parents[2]
SITE = "/usr/lib/python3/dist-packages"


@pytest.mark.skipif(not Path(INTERPRETER).exists(), reason="needs Debian's python3")
def test_the_launcher_runs_the_agent_isolated_without_site(tmp_path: Path) -> None:
    probe = tmp_path / "probe.txt"
    prelude = (
        f"sys.path.insert(0, {str(REPO)!r})\n"
        f"open({str(probe)!r}, 'w').write("
        "repr((sys.flags.isolated, sys.flags.no_site, 'site' in sys.modules)))\n"
    )
    script = tmp_path / "metaboot"
    script.write_text(launcher_text(SITE, prelude=prelude))
    script.chmod(0o755)
    decoy = tmp_path / "decoy" / "yaml"  # would shadow PyYAML if PYTHONPATH counted
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('PYTHONPATH was used')\n")
    env = dict(os.environ, PYTHONPATH=str(decoy.parent))
    config = tmp_path / "user-data"
    config.write_text("#cloud-config\nhostname: web-1\nruncmd: [[ls]]\n")
    (tmp_path / "root").mkdir()
    done = subprocess.run(
        [str(script), "schema", "--root", str(tmp_path / "root"), str(config)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout  # PyYAML came from the system's site packages
    assert probe.read_text() == "(1, 1, False)"
    assert launcher_text(SITE).startswith(f"#!{INTERPRETER} -IS\n")


def test_the_site_directory_must_be_an_absolute_path() -> None:
    for bad in ("relative/dir", "/a\nimport os"):
        with pytest.raises(ValueError):
            launcher_text(bad)
