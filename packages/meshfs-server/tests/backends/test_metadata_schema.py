"""The namespace schema across releases: a database that earlier releases created and wrote
opens with the current store on both SQL backends, keeps its tree and feed, gains the later
migrations, and goes on numbering its feed where it stopped."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from meshfs_server.adapters import postgres_metadata, sqlite_metadata
from meshfs_server.adapters.metadata_store import SqlMetadataStore
from meshfs_server.adapters.postgres_db import PostgresDatabase
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.domain.ports import NewEvent, NodeRow

TENANT = "tenant-a"
#: Scripts every release up to the unified store shipped (namespace:1 to namespace:4).
EARLIER_RELEASES = 4


@asynccontextmanager
async def _store(backend: dict[str, Any], tmp_path: Path) -> AsyncIterator[SqlMetadataStore]:
    """A store on the test's database, migrations not applied (the caller decides)."""
    url = backend.get("database_url")
    if url is None:
        store: SqlMetadataStore = sqlite_metadata.SqliteMetadataStore(
            await SqliteDatabase.open(tmp_path / "meta.db")
        )
    else:
        store = postgres_metadata.PostgresMetadataStore(await PostgresDatabase.open(str(url)))
    try:
        yield store
    finally:
        await store.close()


async def _index_names(store: SqlMetadataStore) -> set[str]:
    async with store.engine.read(lambda session: session) as session:
        if isinstance(store, postgres_metadata.PostgresMetadataStore):
            rows = await session.fetchall("SELECT indexname FROM pg_indexes")
        else:
            rows = await session.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {r[0] for r in rows}


async def _earlier_layout(store: SqlMetadataStore) -> None:
    """The tables as the earlier releases left them."""
    if isinstance(store, postgres_metadata.PostgresMetadataStore):
        await store.db.migrate(
            {"namespace": postgres_metadata.NAMESPACE_MIGRATIONS[:EARLIER_RELEASES]}
        )
        # Earlier Postgres releases created the expiry index in their first script.
        await store.db.run(
            lambda conn: conn.execute("CREATE INDEX uploads_by_expiry ON uploads (expires_at)")
        )
    else:
        assert isinstance(store, sqlite_metadata.SqliteMetadataStore)
        await store.db.migrate(
            {"namespace": sqlite_metadata.NAMESPACE_MIGRATIONS[:EARLIER_RELEASES]}
        )


async def _open(store: SqlMetadataStore) -> SqlMetadataStore:
    """The store as the server opens it (pending migrations applied)."""
    if isinstance(store, postgres_metadata.PostgresMetadataStore):
        return await postgres_metadata.PostgresMetadataStore.open(store.db)
    assert isinstance(store, sqlite_metadata.SqliteMetadataStore)
    return await sqlite_metadata.SqliteMetadataStore.open(store.db)


async def test_a_database_of_earlier_releases_opens_with_its_tree_and_feed(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    now = time.time()
    folder = NodeRow("node-1", TENANT, "reports", "dir", now, now)
    async with _store(backend, tmp_path) as old:
        await _earlier_layout(old)
        async with old.write(TENANT) as tx:
            await tx.insert_node(folder)
            await tx.append_event(NewEvent("mkdir", folder.node_id, "dir", "/reports"))

    async with _store(backend, tmp_path) as unopened:
        store = await _open(unopened)
        async with store.read(TENANT) as rtx:
            assert await rtx.get_node("node-1") == folder
            assert [e.path for e in await rtx.events_after(0, 10)] == ["/reports"]
        async with store.write(TENANT) as tx:
            event = await tx.append_event(NewEvent("mkdir", folder.node_id, "dir", "/reports"))
        assert event.seq == 2
        async with store.read(TENANT) as rtx:
            bounds = await rtx.feed_bounds()
        assert (bounds.first, bounds.last) == (1, 2)
        assert "uploads_by_expiry" in await _index_names(store)
