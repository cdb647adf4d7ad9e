"""PyYAML for the agent: imported once, on first use, without its most expensive line.

``import yaml`` compiles ``yaml.reader.Reader.NON_PRINTABLE``, a character class spanning all
of Unicode; Python's regex compiler walks it one code point at a time, which is about half of
the cost of importing PyYAML (~12 ms of a first boot on Debian 12's Python 3.11). Only PyYAML's
pure-Python reader uses that pattern, and the agent parses with libyaml (``CSafeLoader``)
whenever Debian's python3-yaml provides it. So the import runs with a stand-in for that one
pattern, which compiles the real one the first time it is used: the pure-Python reader, when
it runs, checks exactly what it always checked.

The stand-in is slipped in through ``re``'s pattern cache, the one place a class body's
``re.compile`` can be answered without compiling. If a Python version keeps that cache
elsewhere, nothing is slipped in and PyYAML imports as usual (slower, never wrong).
"""

from __future__ import annotations

import re
import sys

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# yaml/reader.py's pattern, character for character (PyYAML 5.1 to 6.0.x).
NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
_CACHES = ("_cache", "_cache2")  # re's caches (3.11: _cache; 3.12+: _cache2 in front of it)

_module: ModuleType | None = None


class LazyPattern:
    """Stands for a compiled pattern; compiles it when first asked for anything."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    def _pattern(self) -> re.Pattern[str]:
        if self._compiled is None:
            # re.UNICODE is already the default for str patterns; passing it gives a cache key
            # this stand-in never occupied, so this really compiles.
            self._compiled = re.compile(self._source, re.UNICODE)
        return self._compiled

    def search(self, string: str, *args: Any) -> re.Match[str] | None:
        return self._pattern().search(string, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pattern(), name)


def module() -> ModuleType:
    """The ``yaml`` module (imported on the first call)."""
    global _module
    if _module is None:
        _module = _import()
    return _module


def _import() -> ModuleType:
    if "yaml" in sys.modules:
        import yaml

        return yaml
    key = (str, NON_PRINTABLE, 0)
    cache = getattr(re, "_cache", None)
    stand_in = LazyPattern(NON_PRINTABLE)
    planted = isinstance(cache, dict) and key not in cache
    if planted:
        assert isinstance(cache, dict)
        cache[key] = stand_in
    try:
        import yaml
    finally:
        if planted:
            for name in _CACHES:
                found = getattr(re, name, None)
                if isinstance(found, dict) and found.get(key) is stand_in:
                    del found[key]
    return yaml


def safe_loader() -> Any:
    """libyaml's safe loader when PyYAML was built with it (Debian's is), else the Python one."""
    yaml = module()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)
