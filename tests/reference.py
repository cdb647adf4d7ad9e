"""Debian's cloud-init as the reference client.

cloud-init is unpacked by scripts/setup-system (files only) and imported by Debian's own
``/usr/bin/python3`` in a child process, exactly as it runs in a Debian guest. The child loads
tests/netguard (via PYTHONPATH) so it can never reach the link-local metadata address.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

CLOUDINIT_DIR = Path(os.environ.get("METABOOT_CLOUDINIT_DIR", "/opt/metaboot/reference/cloud-init"))
CLOUDINIT_PATH = CLOUDINIT_DIR / "usr/lib/python3/dist-packages"
DEBIAN_PYTHON = "/usr/bin/python3"
SCHEMA_DIR = CLOUDINIT_PATH / "cloudinit/config/schemas"

_PRELUDE = '''
import json, sys
def point_ec2_at(base_url):
    """MetadataReader crawls EC2 at http://169.254.169.254 whatever its base URL; aim it here."""
    from cloudinit.sources.helpers import ec2
    original = ec2.get_instance_metadata
    def patched(*args, **kwargs):
        kwargs["metadata_address"] = base_url
        return original(*args, **kwargs)
    ec2.get_instance_metadata = patched
def _default(obj):
    if isinstance(obj, bytes):
        return {"__bytes__": obj.decode("latin-1")}
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)
'''

_EPILOGUE = """
sys.stdout.write("\\n@@RESULT@@" + json.dumps(result, default=_default, sort_keys=True))
"""


def available() -> bool:
    return Path(DEBIAN_PYTHON).exists() and (CLOUDINIT_PATH / "cloudinit").is_dir()


def run_cloudinit(snippet: str, timeout: float = 120) -> Any:
    """Run ``snippet`` (which must assign ``result``) under Debian's python3 with cloud-init
    importable, and return ``result`` decoded from JSON (bytes come back as
    ``{"__bytes__": latin-1 text}``)."""
    code = _PRELUDE + textwrap.dedent(snippet) + _EPILOGUE
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent / "netguard"), str(CLOUDINIT_PATH)]
    )
    env.pop("PYTHONHOME", None)
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        raise AssertionError(
            f"cloud-init snippet failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.rsplit("@@RESULT@@", 1)[1])


def unbytes(value: Any) -> Any:
    """Turn the ``{"__bytes__": ...}`` wrappers of run_cloudinit back into bytes."""
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return value["__bytes__"].encode("latin-1")
        return {k: unbytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unbytes(v) for v in value]
    return value


# ---- cloudbase-init --------------------------------------------------------------------------

CLOUDBASEINIT_DIR = Path(
    os.environ.get("METABOOT_CLOUDBASEINIT_DIR", "/opt/metaboot/reference/cloudbase-init")
)

# cloudbase-init reads its settings through oslo.config; the child sets them before any
# service is made: both HTTP services aimed at BASE (never 169.254.169.254), no route
# fiddling (a Windows-only step), one try each.
_CBI_PRELUDE = """
import json, sys
from cloudbaseinit import conf
CONF = conf.CONF
CONF([], project="cloudbase-init")
BASE = sys.argv[1]
for group in ("openstack", "ec2"):
    CONF.set_override("metadata_base_url", BASE + "/", group=group)
    CONF.set_override("add_metadata_private_ip_route", False, group=group)
CONF.set_override("retry_count", 1)
CONF.set_override("retry_count_interval", 0)
def plain(value):
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode()
    return value
"""


def run_cloudbaseinit(snippet: str, base_url: str = "http://127.0.0.1:9") -> Any:
    """Run ``snippet`` (which must assign ``result``) with cloudbase-init from its own venv,
    its metadata URLs set to ``base_url`` (loopback; the default is a port nothing answers on)
    and tests/netguard loaded; returns ``result`` decoded from JSON (namedtuples as dicts,
    bytes as text)."""
    python = CLOUDBASEINIT_DIR / "bin" / "python"
    assert python.exists(), "cloudbase-init is missing: run scripts/setup-system"
    code = (
        _CBI_PRELUDE
        + textwrap.dedent(snippet)
        + "\nprint('@@RESULT@@' + json.dumps(plain(result)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent / "netguard"))
    proc = subprocess.run(
        [str(python), "-c", code, base_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        raise AssertionError(
            f"cloudbase-init failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.rsplit("@@RESULT@@", 1)[1])
