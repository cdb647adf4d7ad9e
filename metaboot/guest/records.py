"""``dataclass``, ``field``, ``replace``, ``asdict`` and ``fields`` for the agent's records.

mypy checks the agent against the standard ``dataclasses`` (the ``TYPE_CHECKING`` branch), so
every record is typed exactly as a dataclass. At run time the same names come from
:mod:`metaboot.guest._records`, which builds the methods without compiling source: the standard
module cost the boot ~30 ms (its import plus ~0.5 ms per class). Guest code imports these
names from here, never from ``dataclasses`` (a test keeps it so).
"""

from __future__ import annotations

TYPE_CHECKING = False  # mypy treats the name as true; at run time typing stays unimported
if TYPE_CHECKING:
    from dataclasses import asdict, dataclass, field, fields, replace
else:
    from metaboot.guest._records import asdict, dataclass, field, fields, replace

__all__ = ["asdict", "dataclass", "field", "fields", "replace"]
