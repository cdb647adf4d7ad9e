"""The modules run under Debian 12's own python3 (3.11.2), as they will inside a guest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests import reference
from tests.guest.os.guestroots import build_root

REPO = Path(__file__).resolve().parents[3]

_SNIPPET = r"""
import json, logging, sys
from metaboot.guest.modules import load_module, module_names
from metaboot.guest.modules.base import ModuleContext, Report
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root
from metaboot.guest.os.passwords import hash_password

for name in module_names():
    load_module(name)
root = Root(sys.argv[1])
report = Report()
ctx = ModuleContext(
    cfg={"write_files": [{"path": "/etc/from-debian-python", "content": "ok\n"}],
         "hostname": "deb-py", "users": [{"name": "pyuser", "plain_text_passwd": "pw"}]},
    instance=InstanceData(source="NoCloud", instance_id="i-1"),
    root=root, log=logging.getLogger("t"), report=report, console=print,
    state_dir="/var/lib/metaboot/instances/i-1",
)
for name in ("write_files", "set_hostname", "users_groups"):
    load_module(name).handle(ctx)
print(json.dumps({"version": sys.version.split()[0], "hash": hash_password("pw", "saltsalt"),
                  "changes": report.changes}))
"""


def test_modules_under_debian_python(tmp_path: Path) -> None:
    assert Path(reference.DEBIAN_PYTHON).exists(), "Debian's python3 (setup/apt) is needed"
    root = build_root(tmp_path / "root")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [reference.DEBIAN_PYTHON, "-c", _SNIPPET, str(root.base)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["version"].startswith("3.11")
    expected = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "saltsalt", "-stdin"],
        input="pw\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert result["hash"] == expected
    assert root.read_text("/etc/from-debian-python") == "ok\n"
    assert root.read_text("/etc/hostname") == "deb-py\n"
    assert "\npyuser:" in root.read_text("/etc/passwd")
