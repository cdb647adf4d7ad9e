"""The guest agent: runs inside the VM; standard library plus PyYAML only.

Nothing under this package may import from ``metaboot.service``, ``metaboot.registry``,
``metaboot.proxy`` or ``metaboot.drive`` (a test enforces it), so the agent starts fast and
installs into an image with no server dependency.

Start-up is most of a boot's time, so the agent imports what a boot uses and nothing else
(``tests/guest/test_boot_imports.py`` holds it to that): parts a boot may not need are imported
inside the function that needs them, records come from :mod:`metaboot.guest.records` rather
than ``dataclasses``, string enumerations from :mod:`metaboot.guest.choices` rather than
``enum``, and ``typing`` is for mypy only. Its names are imported under
``TYPE_CHECKING = False`` / ``if TYPE_CHECKING:`` — mypy takes any ``TYPE_CHECKING`` as true,
while at run time the block is skipped (``from typing import TYPE_CHECKING`` would itself load
typing); with ``from __future__ import annotations`` no annotation is evaluated at run time.
"""
