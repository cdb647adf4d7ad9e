"""The cache keeps serving when the database fails under it (a fault the real database cannot be
made to produce on demand, so the source here is a small in-memory stand-in)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from metaboot.errors import NotFoundError
from metaboot.metadata.instance import Instance
from metaboot.metadata.tree import MetadataSettings
from metaboot.service.cache import Entry, InstanceCache, Miss
from metaboot.service.identify import ByAddress
from tests.service.harness import instance


class FlakySource:
    def __init__(self, instances: list[Instance]) -> None:
        self.instances = {i.uuid: i for i in instances}
        self.failing = False
        self.callback: Callable[[str | None], None] | None = None

    def list(self) -> list[Instance]:
        if self.failing:
            raise OSError("database unreachable")
        return list(self.instances.values())

    def get(self, uuid: str) -> Instance:
        if self.failing:
            raise OSError("database unreachable")
        if uuid not in self.instances:
            raise NotFoundError(uuid)
        return self.instances[uuid]

    def routers(self) -> Mapping[str, Sequence[str]]:
        return {}

    def watch(self, callback: Callable[[str | None], None]) -> FlakySource:
        self.callback = callback
        return self

    def close(self) -> None:
        pass


def test_a_failing_reread_serves_the_old_record_and_retries() -> None:
    me = instance(ips=("10.0.0.5",), meta={"v": "1"})

    async def scenario() -> None:
        source = FlakySource([me])
        cache = InstanceCache(source, MetadataSettings)
        await cache.start()
        source.failing = True
        source.instances[me.uuid] = instance(me.uuid, ips=("10.0.0.5",), meta={"v": "2"})
        cache.invalidate(me.uuid)
        assert cache.refreshing is not None
        # requests waiting on the re-read are released once it fails, with the data we had
        await asyncio.wait_for(asyncio.shield(cache.refreshing), 5)
        found = cache.resolve(ByAddress("10.0.0.5"))
        assert isinstance(found, Entry) and found.instance.meta == {"v": "1"}
        # the database comes back: the retry lands the change
        source.failing = False
        for _ in range(50):
            await asyncio.sleep(0.1)
            found = cache.resolve(ByAddress("10.0.0.5"))
            if isinstance(found, Entry) and found.instance.meta == {"v": "2"}:
                break
        assert isinstance(found, Entry) and found.instance.meta == {"v": "2"}
        # a deleted instance disappears from the index
        del source.instances[me.uuid]
        cache.invalidate(me.uuid)
        while cache.refreshing is not None:
            await asyncio.shield(cache.refreshing)
        assert isinstance(cache.resolve(ByAddress("10.0.0.5")), Miss)
        cache.close()

    asyncio.run(scenario())
