"""The module contract, as cloud-init has it: a name, a stage, a frequency, the keys that
activate it, and a handler. A module whose keys are all absent is skipped; a module that raises
is reported and the next one still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from metaboot.guest.choices import Choices
from metaboot.guest.records import dataclass, field
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from metaboot.guest.log import Logger


class Frequency(Choices):
    """cloud-init's frequency names, so ``[name, frequency]`` module entries carry over."""

    ALWAYS = "always"
    INSTANCE = "once-per-instance"
    ONCE = "once"


class Stage(Choices):
    LOCAL = "local"
    NETWORK = "network"
    CONFIG = "config"
    FINAL = "final"


@dataclass
class Report:
    """What a module did, for ``metaboot status --long`` and ``analyze``."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def changed(self, what: str) -> None:
        self.changes.append(what)

    def warn(self, what: str) -> None:
        self.warnings.append(what)


@dataclass
class ModuleContext:
    cfg: Mapping[str, Any]  # agent config < vendor-data cloud-config < user-data cloud-config
    instance: InstanceData
    root: Root
    log: Logger
    report: Report
    console: Callable[[str], None]  # for things shown once (RANDOM passwords), never logged
    state_dir: str  # guest path of this instance's state directory (e.g. per-module files)


@dataclass(frozen=True)
class Module:
    name: str
    stage: Stage
    frequency: Frequency
    keys: tuple[str, ...]  # empty: always considered
    handle: Callable[[ModuleContext], None]
    # JSON-schema subset for the keys this module reads (type, properties, items, enum,
    # oneOf, required, additionalProperties); `metaboot schema` validates user-data with it.
    schema: Mapping[str, Any] = field(default_factory=dict)
