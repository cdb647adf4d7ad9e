"""Import a library with its regular expressions compiled when first used, not at import.

Python compiles regular expressions in pure Python, and libraries compile theirs when they are
imported. A first boot imports two such libraries:

- PyYAML compiles about a dozen patterns. One is the pure-Python reader's character class,
  which spans all of Unicode and is walked one code point at a time; the agent parses with
  libyaml, which never uses it. Others are for timestamps, floats, base-60 integers and other
  scalars that most user-data never holds.
- ``json`` compiles six. Four of them only serve its pure-Python fallbacks, and the C
  accelerator takes their place.

Together that is about 3 ms of a 45 ms boot on this machine. So those two imports run with
``re.compile`` answering a :class:`LazyPattern`, which compiles the real pattern the first
time anything asks it for something. A pattern that is used behaves exactly as it always
did: the same ``re.compile`` call, only later. A pattern that is never used is never
compiled.

Only ``re.compile`` called during that import is deferred. Compiled patterns passed back to
``re`` functions (``re.match(pattern, ...)``) would not be recognised, and neither library
does that with its own.
"""

from __future__ import annotations

import re
import sys

from metaboot import imports

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


class LazyPattern:
    """Stands for ``re.compile(pattern, flags)``; compiles it when first asked for anything,
    then keeps the pattern's matching methods on itself, so later calls cost what a compiled
    pattern's do."""

    def __init__(self, pattern: Any, flags: int) -> None:
        self._source = (pattern, flags)

    def _compiled(self) -> re.Pattern[Any]:
        """The real pattern, compiled the first time (its methods then kept on self)."""
        compiled: re.Pattern[Any] | None = self.__dict__.get("_real")
        if compiled is None:
            compiled = _REAL_COMPILE(*self._source)
            for name in _METHODS:
                setattr(self, name, getattr(compiled, name))
            self.__dict__["_real"] = compiled
        return compiled

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # probes for protocols (copy, pickle) are not uses
            raise AttributeError(name)
        if "_real" not in self.__dict__ and name in _METHODS:
            # Taking the method is not yet using it (json binds ``WHITESPACE.match`` as a
            # default argument at import): compile when it is first called.
            return _LazyMethod(self, name)
        return getattr(self._compiled(), name)

    def __repr__(self) -> str:
        return f"LazyPattern({self._source[0]!r}, {self._source[1]!r})"


_METHODS = ("match", "search", "fullmatch", "sub", "subn", "split", "findall", "finditer")


class _LazyMethod:
    """A pattern's method taken before the pattern was compiled."""

    __slots__ = ("_name", "_pattern")

    def __init__(self, pattern: LazyPattern, name: str) -> None:
        self._pattern, self._name = pattern, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._pattern._compiled(), self._name)(*args, **kwargs)


_REAL_COMPILE = re.compile


def _deferred(pattern: Any, flags: int = 0) -> Any:
    if isinstance(pattern, re.Pattern):
        return pattern  # what re.compile does with a compiled pattern
    return LazyPattern(pattern, flags)


def import_module(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the patterns it compiles deferred; a module
    already imported is returned as it is."""
    found = sys.modules.get(name)
    if found is not None:
        return found
    if re.compile is not _REAL_COMPILE:  # another thread is in here: import it plainly
        return imports.import_module(name)
    re.compile = _deferred
    try:
        return imports.import_module(name)
    finally:
        re.compile = _REAL_COMPILE
