"""metaboot.guest.pyyaml and metaboot.guest.lazyre: PyYAML and json imported with their
patterns compiled on first use, and behaving exactly as before (checked in fresh processes,
since the test process has both imported already)."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

from metaboot.guest import lazyre

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
from metaboot.guest import lazyre, pyyaml
yaml = pyyaml.module()
stand_in = yaml.reader.Reader.NON_PRINTABLE
lazy_at_first = isinstance(stand_in, lazyre.LazyPattern)
try:
    yaml.load("a: \\x01", Loader=yaml.SafeLoader)
    refused = None
except yaml.reader.ReaderError as err:
    refused = str(err)
fine = yaml.load("a: caf\\u00e9 \\U0001F600", Loader=yaml.SafeLoader)
print(json.dumps({
    "lazy_at_first": lazy_at_first,
    "refused": refused,
    "fine": fine,
    "compiled_later": isinstance(stand_in.__dict__.get("_real"), re.Pattern),
    "re_compile_restored": re.compile is lazyre._REAL_COMPILE,
}))
"""
    )
    assert result["lazy_at_first"] is True
    assert "special characters are not allowed" in str(result["refused"])
    assert result["fine"] == {"a": "café \U0001f600"}
    assert result["compiled_later"] is True
    assert result["re_compile_restored"] is True  # nobody else is handed a stand-in


SCALARS = """
when: 2001-12-14t21:59:43.10-05:00
day: 2002-12-14
float: 6.8523015e+5
sexagesimal: 190:20:30
octal: 0o14
hex: 0xC
yes_word: yes
nothing: ~
merged: {<<: {a: 1}, b: 2}
text: plain words
"""


@pytest.mark.parametrize("loader", ["SafeLoader", "CSafeLoader"])
def test_scalars_resolve_as_with_an_eager_import(loader: str) -> None:
    """Every implicit resolver (timestamps, floats, base 60, bools, null, merge) gives what a
    plain ``import yaml`` gives: the test process imported PyYAML the ordinary way."""
    import yaml

    code = f"""
import json
from metaboot.guest import pyyaml
yaml = pyyaml.module()
print(json.dumps(yaml.load({SCALARS!r}, Loader=getattr(yaml, {loader!r})), default=repr))
"""
    eager = yaml.load(SCALARS, Loader=getattr(yaml, loader, yaml.SafeLoader))  # noqa: S506 (safe loaders)
    assert run(code) == json.loads(json.dumps(eager, default=repr))


def test_json_imported_lazily_still_decodes_and_encodes() -> None:
    """``metaboot init`` imports json this way before anything else does."""
    result = run(
        """
import sys
assert "json" not in sys.modules
from metaboot.guest import lazyre
json = lazyre.import_module("json")
lazy = isinstance(json.scanner.NUMBER_RE, lazyre.LazyPattern)
doc = json.loads(' {"a": [1, 2.5e3, -0, "x\\\\u00e9\\\\n", true, null]} ')
text = json.dumps({"k": "caf\\u00e9\\n\\x01"})
ascii_text = json.dumps({"k": "caf\\u00e9"}, ensure_ascii=False)
print(json.dumps({"lazy": lazy, "doc": doc, "text": text, "ascii_text": ascii_text}))
"""
    )
    assert result["lazy"] is True
    assert result["doc"] == {"a": [1, 2500.0, 0, "xé\n", True, None]}
    assert result["text"] == '{"k": "caf\\u00e9\\n\\u0001"}'
    assert result["ascii_text"] == '{"k": "café"}'


def test_a_lazy_pattern_answers_as_the_compiled_one() -> None:
    source, flags = r"(?P<word>[a-z]+)-(\d+)", re.IGNORECASE
    lazy, real = lazyre.LazyPattern(source, flags), re.compile(source, flags)
    text = "Ab-12 cd-3 EF-45"
    assert lazy.pattern == real.pattern and lazy.flags == real.flags
    assert lazy.groupindex == real.groupindex and lazy.groups == real.groups
    assert lazy.search(text).group("word") == "Ab"  # type: ignore[union-attr]
    assert lazy.findall(text) == real.findall(text)
    assert lazy.sub(r"\2", text) == real.sub(r"\2", text)
    assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in real.finditer(text)]
    assert lazy.fullmatch("x-1") is not None and lazy.match("--") is None
    with pytest.raises(AttributeError):
        lazy.__deepcopy__  # noqa: B018  (a protocol probe does not compile it)
    with pytest.raises(re.error):
        lazyre.LazyPattern("(unclosed", 0).match("x")  # a bad pattern fails where it is used


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


def test_init_imports_json_with_deferred_patterns(tmp_path: pathlib.Path) -> None:
    """The agent's entry point imports json lazily before any agent module can import it."""
    # Only a local seed is looked for: nothing in this test goes near the network.
    (tmp_path / "etc/metaboot").mkdir(parents=True)
    (tmp_path / "etc/metaboot/agent.yaml").write_text("datasource_list: [NoCloud]\n")
    result = run(
        f"""
import json as _j, sys
del sys.modules["json"], sys.modules["json.decoder"], sys.modules["json.scanner"]
del sys.modules["json.encoder"]
from metaboot import cli
cli.main(["init", "--root", {str(tmp_path)!r}, "--stage", "local"])
import json
from metaboot.guest import lazyre
print(_j.dumps({{"lazy": isinstance(json.encoder.ESCAPE, lazyre.LazyPattern)}}))
"""
    )
    assert result == {"lazy": True}


def test_a_method_taken_before_use_compiles_only_when_called() -> None:
    """json binds ``WHITESPACE.match`` as a default argument when it is imported: taking the
    method must not compile the pattern, calling it must answer as the compiled one does."""
    lazy = lazyre.LazyPattern(r"[ \t]*", 0)
    match = lazy.match
    assert "_real" not in lazy.__dict__  # not compiled by taking the method
    assert match("  x").end() == 2  # type: ignore[union-attr]
    assert "_real" in lazy.__dict__ and lazy.match("x").end() == 0  # type: ignore[union-attr]
    assert isinstance(lazy.__dict__["_real"], re.Pattern)
