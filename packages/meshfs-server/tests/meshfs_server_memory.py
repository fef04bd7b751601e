"""The domain on the in-memory ports, built without a server: what unit tests drive.

Mirrors the composition in :mod:`meshfs_server.services` (the same domain objects, the same
wiring) over :mod:`meshfs_server.adapters.memory`, so a test exercises the real rules in
milliseconds with no database, directory or socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from meshfs_common.ids import new_id
from meshfs_server.adapters.memory import MemoryContentStore, MemoryMetadataStore
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.collector import Collector
from meshfs_server.domain.content import ContentService
from meshfs_server.domain.feed import ChangeFeed, LocalBus
from meshfs_server.domain.history import History
from meshfs_server.domain.namespace import Namespace
from meshfs_server.domain.ports import QuotaPolicy
from meshfs_server.domain.snapshots import Snapshots
from meshfs_server.domain.xattrs import ExtendedAttributes


@dataclass
class MemoryDomain:
    """Every domain service over one in-memory metadata store and content store."""

    store: MemoryMetadataStore
    content_store: MemoryContentStore
    bus: LocalBus
    feed: ChangeFeed
    namespace: Namespace
    content: ContentService
    history: History
    snapshots: Snapshots
    collector: Collector
    xattrs: ExtendedAttributes

    @classmethod
    def create(cls, *, grace: float = 0.0, quota: QuotaPolicy | None = None) -> MemoryDomain:
        store, content_store, bus = MemoryMetadataStore(), MemoryContentStore(), LocalBus()
        feed = ChangeFeed(store, bus)
        content = ContentService(store, content_store, feed, quota=quota)
        history = History(store, content)
        return cls(
            store=store, content_store=content_store, bus=bus, feed=feed,
            namespace=Namespace(store, feed), content=content, history=history,
            snapshots=Snapshots(store, feed, history),
            collector=Collector(store, content_store, grace=grace),
            xattrs=ExtendedAttributes(store, feed),
        )  # fmt: skip

    async def close(self) -> None:
        await self.store.close()
        await self.content_store.close()


def new_actor(**fields: object) -> Actor:
    """An actor in a tenant of its own."""
    return Actor(tenant_id=new_id(), user_id=new_id(), **fields)  # type: ignore[arg-type]


async def body(data: bytes) -> AsyncIterator[bytes]:
    """A request body of *data*, as the routes hand it to the domain."""
    yield data
