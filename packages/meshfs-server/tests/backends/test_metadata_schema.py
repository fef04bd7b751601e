"""The namespace schema across releases: a database that earlier releases created and wrote
opens with the current store on both SQL backends, keeps its tree and feed, gains the later
migrations, and goes on numbering its feed where it stopped."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

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


async def _write_as_earlier_releases(store: SqlMetadataStore, at: float) -> None:
    """What an earlier release wrote for a tenant: its root, a directory, a file with one
    version and the feed (in the columns those releases had)."""

    async def work(session: Any) -> None:
        await session.execute(
            "INSERT INTO ns_tenants (tenant_id, next_seq, log_start) VALUES (?, 3, 1)", (TENANT,)
        )
        nodes = [
            (TENANT, None, "", "dir", None, 0),
            ("node-1", TENANT, "reports", "dir", None, 0),
            ("node-2", "node-1", "q1.txt", "file", "version-1", 5),
        ]
        for node_id, parent, name, kind, head, size in nodes:
            await session.execute(
                "INSERT INTO nodes (tenant_id, node_id, parent_id, name, kind, created_at,"
                " modified_at, head_version_id, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (TENANT, node_id, parent, name, kind, at, at, head, size),
            )
        await session.execute(
            "INSERT INTO versions (tenant_id, version_id, node_id, seq, size, content_hash,"
            " chunks, created_at) VALUES (?, 'version-1', 'node-2', 2, 5, 'h', '', ?)",
            (TENANT, at),
        )
        for seq, type_, node_id, kind, path in (
            (1, "mkdir", "node-1", "dir", "/reports"),
            (2, "write", "node-2", "file", "/reports/q1.txt"),
        ):
            await session.execute(
                "INSERT INTO events (tenant_id, seq, type, node_id, kind, path, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (TENANT, seq, type_, node_id, kind, path, at),
            )

    await store.engine.transact(work)


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
    async with _store(backend, tmp_path) as old:
        await _earlier_layout(old)
        await _write_as_earlier_releases(old, now)

    async with _store(backend, tmp_path) as unopened:
        store = await _open(unopened)
        async with store.read(TENANT) as rtx:
            folder = await rtx.get_node("node-1")
            assert folder is not None
            assert (folder.parent_id, folder.name, folder.kind) == (TENANT, "reports", "dir")
            assert [e.path for e in await rtx.events_after(0, 10)] == [
                "/reports",
                "/reports/q1.txt",
            ]
        async with store.write(TENANT) as tx:
            event = await tx.append_event(NewEvent("mkdir", "node-1", "dir", "/reports"))
        assert event.seq == 3
        async with store.read(TENANT) as rtx:
            bounds = await rtx.feed_bounds()
        assert (bounds.first, bounds.last) == (1, 3)
        assert "uploads_by_expiry" in await _index_names(store)


async def test_existing_nodes_gain_posix_attributes_and_new_kinds_are_accepted(
    backend: dict[str, Any], tmp_path: Path
) -> None:
    """The migration to POSIX attributes: existing files get 0644, directories 0755, the
    migrating process's uid and gid, all three times from modified_at; versions record 0644;
    the tree keeps its unique names and takes symbolic links and special nodes."""
    at = 1_700_000_000.25
    async with _store(backend, tmp_path) as old:
        await _earlier_layout(old)
        await _write_as_earlier_releases(old, at)

    async with _store(backend, tmp_path) as unopened:
        store = await _open(unopened)
        async with store.read(TENANT) as rtx:
            root = await rtx.root()
            folder = await rtx.get_node("node-1")
            report = await rtx.get_node("node-2")
            version = await rtx.get_version("version-1")
            events = await rtx.events_after(0, 10)
        assert folder is not None
        assert report is not None
        assert version is not None
        owner = (os.getuid(), os.getgid())
        assert (root.mode, folder.mode, report.mode) == (0o755, 0o755, 0o644)
        assert (folder.uid, folder.gid) == (report.uid, report.gid) == owner
        stamp = 1_700_000_000_250_000_000
        assert (report.mtime_ns, report.atime_ns, report.ctime_ns) == (stamp, stamp, stamp)
        assert (report.modified_at, report.head_version_id) == (at, "version-1")
        assert (report.target, report.rdev) == (None, 0)
        assert version.mode == 0o644
        assert [e.attributes for e in events] == [None, None]

        link = NodeRow("node-3", "node-1", "latest", "symlink", at, at, mode=0o777, target="q1.txt")
        fifo = NodeRow("node-4", "node-1", "pipe", "fifo", at, at, rdev=0)
        async with store.write(TENANT) as tx:
            await tx.insert_node(link)
            await tx.insert_node(fifo)
        async with store.read(TENANT) as rtx:
            stored_link = await rtx.child("node-1", "latest")
            stored_fifo = await rtx.child("node-1", "pipe")
        assert stored_link is not None
        assert stored_fifo is not None
        assert (stored_link.node_id, stored_link.kind, stored_link.target) == (
            "node-3", "symlink", "q1.txt",
        )  # fmt: skip
        assert (stored_link.mode, stored_fifo.kind, stored_fifo.rdev) == (0o777, "fifo", 0)
        duplicate = NodeRow("node-5", "node-1", "pipe", "socket", at, at)
        # The engine's integrity error: live names stay unique after the rebuild.
        with pytest.raises(Exception, match=r"(?i)unique"):
            async with store.write(TENANT) as tx:
                await tx.insert_node(duplicate)
        assert {"nodes_live_name", "nodes_by_parent"} <= await _index_names(store)
