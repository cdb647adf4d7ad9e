"""Which modules run in which stage, and where they come from.

The lists are cloud.cfg's (``cloud_init_modules`` → network stage, ``cloud_config_modules`` →
config, ``cloud_final_modules`` → final), else the modules package's defaults. Entries are a
name (any cloud-init spelling) or ``[name, frequency]``. Modules are imported only when asked
for, and each at most once per process.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.guest import layout
from metaboot.guest.modules.base import Frequency, Module, Stage
from metaboot.guest.records import dataclass
from metaboot.guest.state import parse_frequency

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any, Protocol

    class ModuleRegistry(Protocol):
        """Where modules come from (the modules package, or a test's own)."""

        def defaults(self) -> Mapping[Stage, list[str]]: ...

        def load(self, name: str) -> Module: ...

        def activated_by(self, name: str) -> tuple[str, ...] | None:
            """The settings without which ``name`` has nothing to do, known without
            loading it (empty: it always runs); None when that cannot be told."""
            ...


STAGE_ORDER = (Stage.LOCAL, Stage.NETWORK, Stage.CONFIG, Stage.FINAL)
MODULE_LIST_KEYS = {
    Stage.NETWORK: "cloud_init_modules",
    Stage.CONFIG: "cloud_config_modules",
    Stage.FINAL: "cloud_final_modules",
}


class PackageRegistry:
    """``metaboot.guest.modules``: its ``DEFAULT_MODULES`` and ``load_module``."""

    def defaults(self) -> Mapping[Stage, list[str]]:
        from metaboot.guest.modules import DEFAULT_MODULES

        return DEFAULT_MODULES

    def load(self, name: str) -> Module:
        from metaboot.guest.modules import load_module

        return load_module(name)

    def activated_by(self, name: str) -> tuple[str, ...] | None:
        from metaboot.guest.modules import activated_by

        return activated_by(name)


@dataclass
class ModuleEntry:
    name: str
    frequency: Frequency | None  # an override from the list, if it named a known one
    raw: Any  # the entry as written, for messages


class Catalog:
    def __init__(self, cfg: Mapping[str, Any], registry: ModuleRegistry) -> None:
        self.cfg = cfg
        self.registry = registry
        self._loaded: dict[str, Module | Exception] = {}

    def entries(self, stage: Stage) -> list[ModuleEntry]:
        key = MODULE_LIST_KEYS.get(stage)
        listed = self.cfg.get(key) if key else None
        raw_list: list[Any] = (
            listed if isinstance(listed, list) else list(self.registry.defaults().get(stage, []))
        )
        entries = []
        for raw in raw_list:
            if isinstance(raw, str):
                entries.append(ModuleEntry(layout.semaphore_name(raw.strip()), None, raw))
            elif isinstance(raw, list) and raw and isinstance(raw[0], str):
                frequency = parse_frequency(raw[1]) if len(raw) > 1 else None
                entries.append(ModuleEntry(layout.semaphore_name(raw[0].strip()), frequency, raw))
        return entries

    def load(self, name: str) -> Module | Exception:
        """The module, or the exception that explains why there is none."""
        if name not in self._loaded:
            try:
                self._loaded[name] = self.registry.load(name)
            except Exception as err:
                self._loaded[name] = err
        return self._loaded[name]

    def idle(self, name: str, cfg: Mapping[str, Any]) -> bool:
        """True when the registry can tell, without loading the module called ``name``, that
        ``cfg`` gives it nothing to do: none of the keys it needs is set."""
        keys = self.registry.activated_by(name)
        if not keys:  # not known without loading it, or a module that always runs
            return False
        return not any(key in cfg for key in keys)

    def listed(
        self, stages: tuple[Stage, ...] = STAGE_ORDER, busy: Mapping[str, Any] | None = None
    ) -> list[Module]:
        """Every module the lists of ``stages`` name that exists, each once; with ``busy``,
        only those that configuration may give something to do (see :meth:`idle`)."""
        found: dict[str, Module] = {}
        for stage in stages:
            for entry in self.entries(stage):
                if busy is not None and self.idle(entry.name, busy):
                    continue
                module = self.load(entry.name)
                if isinstance(module, Module):
                    found.setdefault(module.name, module)
        return list(found.values())
