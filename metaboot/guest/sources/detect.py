"""Finding the instance's data: try the configured sources in order, first one wins.

A source module exposes ``read(ctx) -> InstanceData | None``: None means "not here" (no drive,
no service answering), SourceError means "here but unreadable" — reported, and the next source
is tried, so a damaged config drive does not stop the metadata service from being used.
Sources are imported only when tried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from metaboot.errors import MetabootError
from metaboot.guest.records import dataclass, field
from metaboot.guest.sources.base import InstanceData
from metaboot.guest.system import Root
from metaboot.imports import import_module

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from metaboot.guest.log import Logger

# name -> (module, needs the network)
SOURCES: dict[str, tuple[str, bool]] = {
    "ConfigDrive": ("metaboot.guest.sources.configdrive", False),
    "NoCloud": ("metaboot.guest.sources.nocloud", False),
    "OpenStack": ("metaboot.guest.sources.openstack", True),
    "Ec2": ("metaboot.guest.sources.ec2", True),
}
_ALIASES = {name.lower(): name for name in SOURCES} | {"configdrive2": "ConfigDrive", "ec2": "Ec2"}


@dataclass
class SourceContext:
    root: Root
    settings: dict[str, Any]  # datasource.<Name> from the agent config
    log: Logger
    pinned: bool = False  # the only configured source: wait for it as long as allowed
    interface: str | None = None  # for ``%IFACE`` URLs: the NIC of an ephemeral lease
    warnings: list[str] = field(default_factory=list)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class Attempt:
    source: str
    outcome: str  # "found", "absent", "error", "unknown"
    detail: str = ""
    duration: float = 0.0


def canonical(name: str) -> str | None:
    return _ALIASES.get(name.lower())


def is_network_source(name: str) -> bool:
    known = canonical(name)
    return known is not None and SOURCES[known][1]


def _close_idle() -> None:
    """A source is done with the service: close its kept connections (the HTTP client is
    looked up, not imported: a drive-only boot never loads it)."""
    http = sys.modules.get("metaboot.guest.http")
    if http is not None:
        http.close_idle()


def find(
    names: Iterable[str],
    make_context: Callable[[str], SourceContext],
    log: Logger,
) -> tuple[InstanceData | None, list[Attempt], list[str]]:
    """Try ``names`` in order; returns (data or None, what each try did, warnings)."""
    attempts: list[Attempt] = []
    warnings: list[str] = []
    for name in names:
        known = canonical(name)
        if known is None:
            if name != "None":
                attempts.append(Attempt(name, "unknown", "no such source in metaboot"))
            continue
        ctx = make_context(known)
        start = time.monotonic()
        try:
            module = import_module(SOURCES[known][0])
            data: InstanceData | None = module.read(ctx)
        except MetabootError as err:
            _close_idle()
            attempts.append(Attempt(known, "error", str(err), time.monotonic() - start))
            log.warning("source %s: %s", known, err)
            warnings.extend(ctx.warnings)
            continue
        except Exception as err:  # a bug in one source must not stop the others
            _close_idle()
            log.exception("source %s failed", known)
            attempts.append(
                Attempt(known, "error", f"{type(err).__name__}: {err}", time.monotonic() - start)
            )
            continue
        _close_idle()
        warnings.extend(ctx.warnings)
        elapsed = time.monotonic() - start
        if data is None:
            attempts.append(Attempt(known, "absent", "", elapsed))
            log.debug("source %s: not found (%.3f s)", known, elapsed)
            continue
        attempts.append(Attempt(known, "found", data.subplatform, elapsed))
        log.info("source %s: found instance %s (%s)", known, data.instance_id, data.subplatform)
        return data, attempts, warnings
    return None, attempts, warnings
