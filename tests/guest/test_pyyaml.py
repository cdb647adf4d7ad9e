"""metaboot.guest.pyyaml: PyYAML imported without compiling its reader's big pattern up front,
and behaving exactly as before (checked in fresh processes, since the test process has yaml)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]


def run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


def test_the_pure_python_reader_still_refuses_non_printable_characters() -> None:
    result = run(
        """
import json, re
from metaboot.guest import pyyaml
yaml = pyyaml.module()
stand_in = yaml.reader.Reader.NON_PRINTABLE
lazy_at_first = isinstance(stand_in, pyyaml.LazyPattern)
try:
    yaml.load("a: \\x01", Loader=yaml.SafeLoader)
    refused = None
except yaml.reader.ReaderError as err:
    refused = str(err)
fine = yaml.load("a: caf\\u00e9 \\U0001F600", Loader=yaml.SafeLoader)
later = re.compile(pyyaml.NON_PRINTABLE)
print(json.dumps({
    "lazy_at_first": lazy_at_first,
    "refused": refused,
    "fine": fine,
    "later_is_real": isinstance(later, re.Pattern),
    "same_answer": bool(later.search("\\x01")) and not later.search("ok"),
}))
"""
    )
    assert result["lazy_at_first"] is True
    assert "special characters are not allowed" in str(result["refused"])
    assert result["fine"] == {"a": "café \U0001f600"}
    assert result["later_is_real"] is True  # nobody else is ever handed the stand-in
    assert result["same_answer"] is True


def test_the_pattern_is_pyyamls_own() -> None:
    """If PyYAML's pattern changes, the stand-in would no longer match it: fail loudly."""
    import yaml.reader

    real = yaml.reader.Reader.NON_PRINTABLE
    from metaboot.guest import pyyaml

    assert getattr(real, "pattern", None) == pyyaml.NON_PRINTABLE or isinstance(
        real, pyyaml.LazyPattern
    )


def test_the_c_loader_is_used_when_present() -> None:
    result = run(
        """
import json
from metaboot.guest import pyyaml
yaml = pyyaml.module()
print(json.dumps({"loader": pyyaml.safe_loader().__name__, "has_c": hasattr(yaml, "CSafeLoader")}))
"""
    )
    assert result["loader"] == ("CSafeLoader" if result["has_c"] else "SafeLoader")
