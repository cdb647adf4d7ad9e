"""``importlib.import_module`` for absolute names, without importing ``importlib``.

The ``importlib`` package itself (not the import machinery, which is always loaded) imports
``warnings`` when it is first imported: about 0.4 ms of a 45 ms first boot here, for one
function that ``__import__`` and ``sys.modules`` do as well for an absolute name.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is for mypy only (it costs a guest boot its import)
if TYPE_CHECKING:
    from types import ModuleType


def import_module(name: str) -> ModuleType:
    """Import ``name`` (absolute, dotted) and return that module, not its top package."""
    __import__(name)
    return sys.modules[name]
