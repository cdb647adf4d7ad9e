"""Every instance in memory, indexed by address, each with its document tree built on first use.

Why everything is in memory: identification must not cost a query (a boot storm of N VMs doing
~27 requests each would otherwise be 27·N lookups), and an instance record is small. The
registry's ``watch`` tells us, on every worker and node, the moment an instance changes; we then
re-read just that instance (or everything, when the registry says "anything may have changed")
and swap it in. Until the re-read has landed, requests wait for it rather than being answered
from the old record — after an admin change returns, no guest reads stale data.

A cache hit does no database query; :attr:`InstanceCache.queries` counts the ones a miss or a
refresh makes, and tests hold it still across hits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from metaboot.errors import NotFoundError
from metaboot.metadata.instance import Instance
from metaboot.metadata.tree import Document, DocumentTree, MetadataSettings, build_tree
from metaboot.service.http import Response, normalise_address
from metaboot.service.identify import ByAddress, ByNetwork, ByRouter, BySignature, Query

log = logging.getLogger("metaboot.service.cache")
K = TypeVar("K")


class Closeable(Protocol):
    def close(self) -> None: ...


Instances = list[Instance]


class InstanceSource(Protocol):
    """What the cache needs from the registry (``metaboot.registry.Registry`` provides it)."""

    def list(self) -> Instances: ...

    def get(self, uuid: str) -> Instance | None: ...

    def routers(self) -> Mapping[str, Sequence[str]]: ...

    def watch(self, callback: Callable[[str | None], None]) -> Closeable: ...


@dataclass
class Entry:
    """One instance and what we rendered for it; dropped whole when the instance changes."""

    instance: Instance
    tree: DocumentTree
    # raw path -> ready response, or the Document when each read gets a fresh random_seed
    responses: dict[str, Response | Document] = field(default_factory=dict)
    vendor_tree: tuple[float, DocumentTree] | None = None  # with dynamic vendor data, expiry

    @property
    def uuid(self) -> str:
        return self.instance.uuid


@dataclass(frozen=True, slots=True)
class Miss:
    """Identification found no single instance; ``reason`` goes to the log, not the guest."""

    reason: str
    ambiguous: bool = False


class InstanceCache:
    def __init__(
        self,
        source: InstanceSource,
        settings: Callable[[], MetadataSettings],
        *,
        refresh_seconds: float = 0.0,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.source = source
        self._settings = settings
        self.refresh_seconds = refresh_seconds
        self._on_change = on_change
        self.entries: dict[str, Entry] = {}
        self.by_ip: dict[str, list[str]] = {}
        self.by_network: dict[tuple[str, str], list[str]] = {}
        self.routers: dict[str, tuple[str, ...]] = {}
        self.queries = 0  # registry reads made: tests check a hit makes none
        self.refreshing: asyncio.Future[None] | None = None
        self._stale: set[str | None] = set()
        self._refresh_running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refresher: asyncio.TimerHandle | None = None
        self._watch_handle: Closeable | None = None

    # -- loading ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load everything, then follow the registry's change notifications."""
        self._loop = asyncio.get_running_loop()
        self._watch_handle = self.source.watch(self._notified)
        await self._reload()
        if self.refresh_seconds > 0:
            self._refresher = self._loop.call_later(self.refresh_seconds, self._periodic)

    def close(self) -> None:
        if self._refresher:
            self._refresher.cancel()
        if self._watch_handle is not None:
            self._watch_handle.close()
            self._watch_handle = None

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.queries += 1
        assert self._loop is not None
        return await self._loop.run_in_executor(None, fn, *args)

    def _periodic(self) -> None:
        self.invalidate(None)
        assert self._loop is not None
        self._refresher = self._loop.call_later(self.refresh_seconds, self._periodic)

    # -- invalidation -------------------------------------------------------------------------
    def _notified(self, uuid: str | None) -> None:
        """Called by the registry from any thread (its watcher, or a writer's own thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.invalidate, uuid)

    def invalidate(self, uuid: str | None) -> None:
        """Drop ``uuid`` (None: everything) and re-read it; requests wait for the re-read."""
        self._stale.add(uuid)
        if self._on_change is not None:
            self._on_change(uuid)
        assert self._loop is not None
        if self.refreshing is None:
            self.refreshing = self._loop.create_future()
        if not self._refresh_running:
            self._refresh_running = True
            self._loop.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            while self._stale:
                stale, self._stale = self._stale, set()
                try:
                    if None in stale:
                        await self._reload()
                    else:
                        for uuid in stale:
                            assert uuid is not None
                            self._apply_one(uuid, await self._read(self._get, uuid))
                except Exception as err:
                    # The database is unreachable: answer from what we have rather than stall
                    # every guest, and keep trying.
                    log.warning("re-reading changed instances failed (%s); retrying in 1 s", err)
                    self._stale |= stale
                    self._release()
                    await asyncio.sleep(1.0)
        finally:
            self._refresh_running = False
            self._release()

    def _release(self) -> None:
        done, self.refreshing = self.refreshing, None
        if done is not None and not done.done():
            done.set_result(None)

    def _get(self, uuid: str) -> Instance | None:
        try:
            return self.source.get(uuid)
        except NotFoundError:
            return None

    async def _reload(self) -> None:
        instances = await self._read(self.source.list)
        routers = await self._read(self.source.routers)
        self._apply_all(instances, routers)

    def _apply_all(
        self, instances: Iterable[Instance], routers: Mapping[str, Sequence[str]]
    ) -> None:
        self.entries = {}
        self.by_ip = {}
        self.by_network = {}
        self.routers = {router: tuple(nets) for router, nets in routers.items()}
        for instance in instances:
            self._add(instance)

    def _apply_one(self, uuid: str, instance: Instance | None) -> None:
        old = self.entries.pop(uuid, None)
        if old is not None:
            self._unindex(old.instance)
        if instance is not None:
            self._add(instance)

    def _add(self, instance: Instance) -> None:
        self.entries[instance.uuid] = Entry(instance, self.build(instance, {}))
        for network_id, ip in _addresses(instance):
            self.by_ip.setdefault(ip, []).append(instance.uuid)
            self.by_network.setdefault((network_id, ip), []).append(instance.uuid)

    def _unindex(self, instance: Instance) -> None:
        for network_id, ip in _addresses(instance):
            _discard(self.by_ip, ip, instance.uuid)
            _discard(self.by_network, (network_id, ip), instance.uuid)

    def build(self, instance: Instance, dynamic: dict[str, Any]) -> DocumentTree:
        return build_tree(instance, self._settings(), dynamic)

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, query: Query) -> Entry | Miss:
        """The entry for ``query``, or a Miss when nobody (or several) match."""
        if type(query) is ByAddress:
            return self._one(self.by_ip.get(query.ip), f"address {query.ip}")
        if type(query) is ByNetwork:
            return self._one(
                self.by_network.get((query.network_id, query.ip)),
                f"address {query.ip} on network {query.network_id}",
            )
        if type(query) is ByRouter:
            networks = self.routers.get(query.router_id)
            if networks is None:
                return Miss(f"router {query.router_id} is unknown")
            found: list[str] = []
            for network_id in networks:
                found.extend(self.by_network.get((network_id, query.ip), ()))
            return self._one(found, f"address {query.ip} behind router {query.router_id}")
        assert type(query) is BySignature
        entry = self.entries.get(query.instance_id)
        if entry is None:
            return Miss(f"signed request for unknown instance {query.instance_id}")
        if entry.instance.project_id != query.tenant_id:
            return Miss(
                f"signed request for instance {query.instance_id} names tenant "
                f"{query.tenant_id}, not its own"
            )
        return entry

    def _one(self, uuids: list[str] | None, what: str) -> Entry | Miss:
        if not uuids:
            return Miss(f"no instance has {what}")
        if len(uuids) > 1:
            return Miss(f"{what} matches {len(uuids)} instances ({', '.join(uuids)})", True)
        return self.entries[uuids[0]]


def _addresses(instance: Instance) -> list[tuple[str, str]]:
    pairs = [(net, normalise_address(ip)) for net, ip in instance.addresses()]
    for pair in instance.link_local_addresses():
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _discard(index: dict[K, list[str]], key: K, uuid: str) -> None:
    uuids = index.get(key)
    if uuids and uuid in uuids:
        uuids.remove(uuid)
        if not uuids:
            del index[key]
