"""PyYAML for the agent: imported once, on first use, with its patterns compiled on first use.

``import yaml`` compiles a dozen regular expressions. One of them,
``yaml.reader.Reader.NON_PRINTABLE``, is a character class spanning all of Unicode, which
Python's regex compiler walks one code point at a time: alone it was half the cost of
importing PyYAML (~12 ms of a first boot on Debian 12's Python 3.11). Only the pure-Python
reader uses that one, and the agent parses with libyaml (``CSafeLoader``) whenever Debian's
python3-yaml provides it. Most of the others are for timestamps, floats and other scalars
that most user-data never has. :mod:`metaboot.guest.lazyre` imports PyYAML with every such
pattern compiled the first time it is used, so what runs checks exactly what it always
checked.
"""

from __future__ import annotations

from metaboot.guest import lazyre

TYPE_CHECKING = False  # mypy takes it as true; at run time typing is not imported
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

_module: ModuleType | None = None


def module() -> ModuleType:
    """The ``yaml`` module (imported on the first call)."""
    global _module
    if _module is None:
        _module = lazyre.import_module("yaml")
    return _module


def safe_loader() -> Any:
    """libyaml's safe loader when PyYAML was built with it (Debian's is), else the Python one."""
    yaml = module()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)
