"""Everything a running server holds, created in one place and closed in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from meshfs_server.adapters.local_content import LocalContentStore
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.adapters.sqlite_metadata import SqliteMetadataStore
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.collector import Collector
from meshfs_server.domain.content import ContentService
from meshfs_server.domain.feed import ChangeFeed, LocalBus
from meshfs_server.domain.namespace import Namespace
from meshfs_server.domain.ports import ContentStore, MetadataStore
from meshfs_server.settings import Settings

Authenticate = Callable[[HTTPConnection], Awaitable[Actor]]


@dataclass
class Services:
    settings: Settings
    db: SqliteDatabase
    store: MetadataStore
    content_store: ContentStore
    bus: LocalBus
    feed: ChangeFeed
    namespace: Namespace
    content: ContentService
    collector: Collector
    authenticate: Authenticate
    identity: Any = None
    settings_heartbeat: float = 15.0


@asynccontextmanager
async def open_services(
    settings: Settings, *, authenticate: Authenticate | None = None
) -> AsyncIterator[Services]:
    """Open storage and build the domain services for *settings*."""
    async with AsyncExitStack() as stack:
        db = await SqliteDatabase.open(settings.sqlite_path)
        stack.push_async_callback(db.close)
        store = await SqliteMetadataStore.open(db)
        content_store = await LocalContentStore.create(settings.content_path)
        stack.push_async_callback(content_store.close)
        bus = LocalBus()
        feed = ChangeFeed(store, bus)
        identity = None
        if authenticate is None:
            from meshfs_server.identity import Identity

            identity = await Identity.open(db, settings)
            stack.push_async_callback(identity.close)
            authenticate = identity.authenticate
        yield Services(
            settings=settings,
            db=db,
            store=store,
            content_store=content_store,
            bus=bus,
            feed=feed,
            namespace=Namespace(store, feed),
            content=ContentService(
                store, content_store, feed,
                commit_hook=identity.quota.commit if identity is not None else None,
                reserve_hook=identity.quota.reserve if identity is not None else None,
            ),  # fmt: skip
            collector=Collector(store, content_store, grace=float(settings.gc_grace_seconds)),
            authenticate=authenticate,
            identity=identity,
        )
