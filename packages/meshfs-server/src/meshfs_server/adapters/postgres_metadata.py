"""Namespace metadata in Postgres: the production implementation of the metadata port.

The schema and its invariants are those of :mod:`meshfs_server.adapters.sqlite_metadata` (read
the table descriptions there), translated: INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, flags ->
BOOLEAN, ``nodes.name`` compared byte-wise (``COLLATE "C"``, as SQLite does) so listing order and
paging do not depend on the server's locale, and NULLs sorted first where SQLite sorts them first.

Concurrency (what SQLite's single writer gave for free, made explicit per tenant):

- Every write transaction starts by locking its tenant's ``ns_tenants`` row (``SELECT ... FOR
  UPDATE``), so the writers of one tenant are serialised and each sees everything committed
  before it; writers of different tenants run in parallel. ``append_event`` allocates the
  sequence with ``UPDATE ns_tenants SET next_seq = next_seq + 1 ... RETURNING`` in the same
  transaction, so sequence numbers are gap-free and in commit order.
- The garbage collector claims and releases chunks tenant by tenant under the same lock, so a
  claim can never interleave with a commit that is about to reference the chunk.
- Lock order is always tenant row first, then that tenant's rows: no deadlocks between our own
  transactions; conflicts that still happen are retried or become retryable 503s
  (:mod:`meshfs_server.adapters.postgres_db`).
- ``append_event`` also sends ``NOTIFY meshfs_feed, '<tenant_id>'``; Postgres delivers it only
  when (and if) the transaction commits. Other server processes listening on the channel ring
  their subscribers, who read the feed from here - the table is the truth, the notification
  only a doorbell.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from meshfs_common.models import ChangeEvent
from meshfs_server.adapters import snapshot_sql
from meshfs_server.adapters.postgres_db import Connection, PostgresDatabase
from meshfs_server.adapters.postgres_sql import to_dollar
from meshfs_server.adapters.rows import (
    EVENT_COLUMNS,
    NODE_COLUMNS,
    VERSION_COLUMNS,
    chunk_counts,
    event_from,
    node_from,
    pack_chunks,
    unpack_chunks,
    version_from,
    writer_json,
)
from meshfs_server.domain.paging import ChildKey
from meshfs_server.domain.ports import (
    ChunkState,
    FeedBounds,
    GarbageBatch,
    NewEvent,
    NodeRow,
    SnapshotItem,
    SnapshotRow,
    StorageUsage,
    UploadRow,
    VersionRow,
)

FEED_CHANNEL = "meshfs_feed"

NAMESPACE_MIGRATIONS: list[str] = [
    """
    CREATE TABLE ns_tenants (
        tenant_id TEXT PRIMARY KEY,
        next_seq BIGINT NOT NULL,
        log_start BIGINT NOT NULL
    );
    CREATE TABLE nodes (
        tenant_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
        created_at DOUBLE PRECISION NOT NULL,
        modified_at DOUBLE PRECISION NOT NULL,
        head_version_id TEXT,
        size BIGINT NOT NULL DEFAULT 0,
        content_hash TEXT,
        deleted_at DOUBLE PRECISION,
        PRIMARY KEY (tenant_id, node_id)
    );
    CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, parent_id, name)
        WHERE deleted_at IS NULL;
    CREATE INDEX nodes_by_parent ON nodes (tenant_id, parent_id, name, deleted_at);
    CREATE TABLE versions (
        tenant_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        size BIGINT NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        writer TEXT,
        replaces TEXT,
        restored_from TEXT,
        PRIMARY KEY (tenant_id, version_id)
    );
    CREATE INDEX versions_by_node ON versions (tenant_id, node_id, seq);
    CREATE TABLE chunks (
        tenant_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        size BIGINT NOT NULL,
        refs BIGINT NOT NULL DEFAULT 0 CHECK (refs >= 0),
        stored BOOLEAN NOT NULL DEFAULT FALSE,
        collecting BOOLEAN NOT NULL DEFAULT FALSE,
        touched_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant_id, chunk_hash)
    );
    CREATE INDEX chunks_unreferenced ON chunks (refs, collecting, touched_at);
    CREATE TABLE uploads (
        tenant_id TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        path TEXT NOT NULL,
        size BIGINT NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, upload_id)
    );
    CREATE INDEX uploads_by_expiry ON uploads (expires_at);
    CREATE TABLE chunk_holds (
        tenant_id TEXT NOT NULL,
        hold_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant_id, hold_id, chunk_hash)
    );
    CREATE INDEX chunk_holds_by_chunk ON chunk_holds (tenant_id, chunk_hash);
    CREATE INDEX chunk_holds_by_expiry ON chunk_holds (expires_at);
    CREATE TABLE events (
        tenant_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        node_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        old_path TEXT,
        version_id TEXT,
        size BIGINT,
        content_hash TEXT,
        replaced_node_id TEXT,
        at DOUBLE PRECISION NOT NULL,
        writer TEXT,
        PRIMARY KEY (tenant_id, seq)
    )
    """,
    # Deduplicated storage per tenant, kept where chunk references go 0 <-> 1 (see SQLite).
    """
    ALTER TABLE ns_tenants ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
    UPDATE ns_tenants t SET stored_bytes = (SELECT COALESCE(SUM(c.size), 0) FROM chunks c
        WHERE c.tenant_id = t.tenant_id AND c.refs > 0)
    """,
    # The collection epoch: advanced whenever a collector deletes some of the tenant's content.
    """
    ALTER TABLE ns_tenants ADD COLUMN gc_epoch BIGINT NOT NULL DEFAULT 0
    """,
    # Named snapshots of subtrees (and an index for a node's history in the feed).
    snapshot_sql.MIGRATION,
]

_TENANT_SCAN = 100  # tenants the collector visits per claim


async def lock_tenant(conn: Connection, tenant_id: str) -> None:
    """Create the tenant (with its root) on first use and lock its row for this transaction."""
    now = time.time()
    created = await conn.fetchval(
        "INSERT INTO ns_tenants (tenant_id, next_seq, log_start) VALUES ($1, 1, 1)"
        " ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
        tenant_id,
    )
    if created is not None:
        await conn.execute(
            "INSERT INTO nodes (tenant_id, node_id, parent_id, name, kind, created_at,"
            " modified_at) VALUES ($1, $1, NULL, '', 'dir', $2, $2)",
            tenant_id,
            now,
        )
    else:
        await conn.execute("SELECT 1 FROM ns_tenants WHERE tenant_id = $1 FOR UPDATE", tenant_id)


class PostgresReadTx:
    """Read queries bound to one tenant on one connection."""

    def __init__(self, conn: Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    async def root(self) -> NodeRow:
        node = await self.get_node(self.tenant_id)
        if node is None:  # never written to: an empty root, created by the first write
            return NodeRow(self.tenant_id, None, "", "dir", 0.0, 0.0)
        return node

    async def get_node(self, node_id: str) -> NodeRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = $1 AND node_id = $2",
            self.tenant_id,
            node_id,
        )
        return None if row is None else node_from(row)

    async def child(self, parent_id: str, name: str) -> NodeRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = $1 AND parent_id = $2"
            " AND name = $3 AND deleted_at IS NULL",
            self.tenant_id,
            parent_id,
            name,
        )
        return None if row is None else node_from(row)

    async def children(
        self, parent_id: str, *, after: ChildKey | None, limit: int, include_deleted: bool = False
    ) -> list[NodeRow]:
        live = "" if include_deleted else " AND deleted_at IS NULL"
        start: tuple[object, ...] = ()
        if after is not None and after.node_id is not None:
            live += " AND (name, node_id) > ($3, $4)"
            start = (after.name, after.node_id)
        elif after is not None:
            live += " AND name > $3"
            start = (after.name,)
        rows = await self.conn.fetch(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = $1 AND parent_id = $2"
            f"{live} ORDER BY name, node_id LIMIT ${3 + len(start)}",
            self.tenant_id,
            parent_id,
            *start,
            limit,
        )
        return [node_from(r) for r in rows]

    async def has_live_children(self, node_id: str) -> bool:
        found = await self.conn.fetchval(
            "SELECT 1 FROM nodes WHERE tenant_id = $1 AND parent_id = $2"
            " AND deleted_at IS NULL LIMIT 1",
            self.tenant_id,
            node_id,
        )
        return found is not None

    async def get_version(self, version_id: str) -> VersionRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = $1 AND version_id = $2",
            self.tenant_id,
            version_id,
        )
        return None if row is None else version_from(row)

    async def versions(
        self, node_id: str, *, before_seq: int | None, limit: int
    ) -> list[VersionRow]:
        rows = await self.conn.fetch(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = $1 AND node_id = $2"
            " AND seq < $3 ORDER BY seq DESC LIMIT $4",
            self.tenant_id,
            node_id,
            before_seq if before_seq is not None else 2**62,
            limit,
        )
        return [version_from(r) for r in rows]

    async def events_after(self, cursor: int, limit: int) -> list[ChangeEvent]:
        rows = await self.conn.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            self.tenant_id,
            cursor,
            limit,
        )
        return [event_from(r) for r in rows]

    async def feed_bounds(self) -> FeedBounds:
        row = await self.conn.fetchrow(
            "SELECT log_start, next_seq FROM ns_tenants WHERE tenant_id = $1", self.tenant_id
        )
        if row is None:
            return FeedBounds(first=1, last=0)
        return FeedBounds(first=row[0], last=row[1] - 1)

    async def cursor_before(self, at: float) -> int | None:
        value = await self.conn.fetchval(
            "SELECT MAX(seq) FROM events WHERE tenant_id = $1 AND at < $2", self.tenant_id, at
        )
        return None if value is None else int(value)

    async def last_event_of(self, node_id: str, before_seq: int) -> ChangeEvent | None:
        row = await self.conn.fetchrow(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND node_id = $2"
            " AND seq < $3 ORDER BY seq DESC LIMIT 1",
            self.tenant_id,
            node_id,
            before_seq,
        )
        return None if row is None else event_from(row)

    async def snapshot(self, ref: str) -> SnapshotRow | None:
        row = await self.conn.fetchrow(to_dollar(snapshot_sql.SELECT_BY_ID), self.tenant_id, ref)
        if row is None:
            row = await self.conn.fetchrow(
                to_dollar(snapshot_sql.SELECT_BY_NAME), self.tenant_id, ref
            )
        return None if row is None else snapshot_sql.snapshot_from(row)

    async def snapshots(self) -> list[SnapshotRow]:
        rows = await self.conn.fetch(to_dollar(snapshot_sql.SELECT_ALL), self.tenant_id)
        return [snapshot_sql.snapshot_from(r) for r in rows]

    async def snapshot_items(self, snapshot_id: str) -> list[SnapshotItem]:
        rows = await self.conn.fetch(
            to_dollar(snapshot_sql.SELECT_ITEMS), self.tenant_id, snapshot_id
        )
        return [snapshot_sql.item_from(r) for r in rows]

    async def present_chunks(self, hashes: Sequence[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT chunk_hash FROM chunks WHERE tenant_id = $1 AND stored AND NOT collecting"
            " AND chunk_hash = ANY($2::text[])",
            self.tenant_id,
            sorted(set(hashes)),
        )
        return {r[0] for r in rows}

    async def chunk_sizes(self, hashes: Sequence[str]) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT chunk_hash, size FROM chunks WHERE tenant_id = $1 AND stored"
            " AND NOT collecting AND chunk_hash = ANY($2::text[])",
            self.tenant_id,
            sorted(set(hashes)),
        )
        return {r[0]: r[1] for r in rows}

    async def held_chunks(self, hold_id: str) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT chunk_hash FROM chunk_holds WHERE tenant_id = $1 AND hold_id = $2"
            " AND expires_at > $3",
            self.tenant_id,
            hold_id,
            time.time(),
        )
        return {r[0] for r in rows}

    async def chunk_state(self, chunk_hash: str) -> ChunkState:
        row = await self.conn.fetchrow(
            "SELECT stored, collecting FROM chunks WHERE tenant_id = $1 AND chunk_hash = $2",
            self.tenant_id,
            chunk_hash,
        )
        if row is None:
            return "absent"
        if row[1]:
            return "collecting"
        return "stored" if row[0] else "absent"

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        row = await self.conn.fetchrow(
            "SELECT upload_id, path, size, content_hash, chunks, created_at, expires_at, user_id"
            " FROM uploads WHERE tenant_id = $1 AND upload_id = $2",
            self.tenant_id,
            upload_id,
        )
        if row is None:
            return None
        uid, path, size, chash, chunks, created, expires, user = row
        return UploadRow(uid, path, size, chash, unpack_chunks(chunks), created, expires, user)

    async def collection_epoch(self) -> int:
        value = await self.conn.fetchval(
            "SELECT gc_epoch FROM ns_tenants WHERE tenant_id = $1", self.tenant_id
        )
        return 0 if value is None else int(value)

    async def unreferenced_bytes(self, hashes: Sequence[str]) -> int:
        total = await self.conn.fetchval(
            "SELECT COALESCE(SUM(size), 0) FROM chunks WHERE tenant_id = $1 AND refs = 0"
            " AND chunk_hash = ANY($2::text[])",
            self.tenant_id,
            sorted(set(hashes)),
        )
        return int(total)

    async def storage_usage(self, *, excluding_content: str | None = None) -> StorageUsage:
        committed = await self.conn.fetchval(
            "SELECT COALESCE(MAX(stored_bytes), 0) FROM ns_tenants WHERE tenant_id = $1",
            self.tenant_id,
        )
        pending = await self.conn.fetchval(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM uploads"
            " WHERE tenant_id = $1 AND expires_at > $2 AND content_hash IS DISTINCT FROM $3"
            " GROUP BY content_hash) AS p",
            self.tenant_id,
            time.time(),
            excluding_content,
        )
        return StorageUsage(committed=int(committed), pending=int(pending))

    async def live_descendants(self, node_id: str) -> list[NodeRow]:
        cols = ", ".join(f"n.{c.strip()}" for c in NODE_COLUMNS.split(","))
        rows = await self.conn.fetch(
            "WITH RECURSIVE sub(node_id) AS ("
            "  SELECT node_id FROM nodes WHERE tenant_id = $1 AND parent_id = $2"
            "    AND deleted_at IS NULL"
            "  UNION ALL"
            "  SELECT n.node_id FROM nodes n JOIN sub ON n.parent_id = sub.node_id"
            "    WHERE n.tenant_id = $1 AND n.deleted_at IS NULL)"
            f" SELECT {cols} FROM nodes n JOIN sub ON n.node_id = sub.node_id"
            " WHERE n.tenant_id = $1",
            self.tenant_id,
            node_id,
        )
        return [node_from(r) for r in rows]


class PostgresWriteTx(PostgresReadTx):
    """Write statements bound to one tenant inside a transaction holding the tenant's lock."""

    def __init__(self, conn: Connection, tenant_id: str, instance: str = "") -> None:
        super().__init__(conn, tenant_id)
        self.instance = instance  # the notifying process, so it can ignore its own doorbell

    async def insert_node(self, node: NodeRow) -> None:
        await self.conn.execute(
            f"INSERT INTO nodes (tenant_id, {NODE_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            self.tenant_id, node.node_id, node.parent_id, node.name, node.kind, node.created_at,
            node.modified_at, node.head_version_id, node.size, node.content_hash, node.deleted_at,
        )  # fmt: skip

    async def move_node(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        await self.conn.execute(
            "UPDATE nodes SET parent_id = $3, name = $4, modified_at = $5"
            " WHERE tenant_id = $1 AND node_id = $2",
            self.tenant_id, node_id, parent_id, name, at,
        )  # fmt: skip

    async def set_head(self, node_id: str, version: VersionRow) -> None:
        await self.conn.execute(
            "UPDATE nodes SET head_version_id = $3, size = $4, content_hash = $5,"
            " modified_at = $6 WHERE tenant_id = $1 AND node_id = $2",
            self.tenant_id, node_id, version.version_id, version.size, version.content_hash,
            version.created_at,
        )  # fmt: skip

    async def tombstone(self, node_ids: Sequence[str], at: float) -> None:
        await self.conn.execute(
            "UPDATE nodes SET deleted_at = $3 WHERE tenant_id = $1 AND node_id = ANY($2::text[])",
            self.tenant_id,
            list(node_ids),
            at,
        )

    async def revive(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        await self.conn.execute(
            "UPDATE nodes SET deleted_at = NULL, parent_id = $3, name = $4, modified_at = $5"
            " WHERE tenant_id = $1 AND node_id = $2",
            self.tenant_id, node_id, parent_id, name, at,
        )  # fmt: skip

    async def insert_version(self, version: VersionRow) -> None:
        await self.conn.execute(
            f"INSERT INTO versions (tenant_id, {VERSION_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            self.tenant_id, version.version_id, version.node_id, version.seq, version.size,
            version.content_hash, pack_chunks(version.chunks), version.created_at,
            writer_json(version.writer), version.replaces, version.restored_from,
        )  # fmt: skip
        counted = chunk_counts(version.chunks)
        names, counts = list(counted), list(counted.values())
        newly = await self.unreferenced_bytes(names)
        if newly:
            await self.conn.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes + $2 WHERE tenant_id = $1",
                self.tenant_id,
                newly,
            )
        await self.conn.execute(
            "UPDATE chunks c SET refs = c.refs + u.n"
            " FROM unnest($2::text[], $3::bigint[]) AS u(h, n)"
            " WHERE c.tenant_id = $1 AND c.chunk_hash = u.h",
            self.tenant_id,
            names,
            counts,
        )

    async def next_seq(self) -> int:
        value = await self.conn.fetchval(
            "SELECT next_seq FROM ns_tenants WHERE tenant_id = $1", self.tenant_id
        )
        assert value is not None
        return int(value)

    async def prune_events(self, before: float) -> int:
        last = await self.conn.fetchval(
            "SELECT MAX(seq) FROM events WHERE tenant_id = $1 AND at < $2", self.tenant_id, before
        )
        if last is None:
            return 0
        status = await self.conn.execute(
            "DELETE FROM events WHERE tenant_id = $1 AND seq <= $2", self.tenant_id, last
        )
        await self.conn.execute(
            "UPDATE ns_tenants SET log_start = GREATEST(log_start, $2) WHERE tenant_id = $1",
            self.tenant_id,
            int(last) + 1,
        )
        return int(status.split()[-1])

    async def append_event(self, event: NewEvent) -> ChangeEvent:
        seq = await self.conn.fetchval(
            "UPDATE ns_tenants SET next_seq = next_seq + 1 WHERE tenant_id = $1"
            " RETURNING next_seq - 1",
            self.tenant_id,
        )
        assert seq is not None
        at = time.time()
        await self.conn.execute(
            f"INSERT INTO events (tenant_id, {EVENT_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            self.tenant_id, seq, event.type, event.node_id, event.kind, event.path,
            event.old_path, event.version_id, event.size, event.content_hash,
            event.replaced_node_id, at, writer_json(event.writer),
        )  # fmt: skip
        # Delivered at commit, once per transaction (Postgres folds identical notifications).
        await self.conn.execute(
            "SELECT pg_notify($1, $2)", FEED_CHANNEL, f"{self.tenant_id} {self.instance}"
        )
        return ChangeEvent(
            seq=seq, type=event.type, node_id=event.node_id, kind=event.kind, path=event.path,
            old_path=event.old_path, version_id=event.version_id, size=event.size,
            content_hash=event.content_hash, replaced_node_id=event.replaced_node_id,
            at=datetime.fromtimestamp(at, UTC), writer=event.writer,
        )  # fmt: skip

    async def mark_stored(self, chunk_hash: str, size: int) -> None:
        await self.conn.execute(
            "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored, collecting,"
            " touched_at) VALUES ($1, $2, $3, 0, TRUE, FALSE, $4)"
            " ON CONFLICT (tenant_id, chunk_hash)"
            " DO UPDATE SET stored = TRUE, touched_at = excluded.touched_at",
            self.tenant_id,
            chunk_hash,
            size,
            time.time(),
        )

    async def hold_chunks(self, hold_id: str, hashes: Sequence[str], expires_at: float) -> None:
        await self.conn.execute(
            "INSERT INTO chunk_holds (tenant_id, hold_id, chunk_hash, expires_at)"
            " SELECT $1, $2, h, $4 FROM unnest($3::text[]) AS h"
            " ON CONFLICT DO NOTHING",
            self.tenant_id,
            hold_id,
            sorted(set(hashes)),
            expires_at,
        )

    async def release_holds(self, hold_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM chunk_holds WHERE tenant_id = $1 AND hold_id = $2",
            self.tenant_id,
            hold_id,
        )

    async def insert_upload(self, upload: UploadRow) -> None:
        await self.conn.execute(
            "INSERT INTO uploads (tenant_id, upload_id, path, size, content_hash, chunks,"
            " created_at, expires_at, user_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            self.tenant_id, upload.upload_id, upload.path, upload.size, upload.content_hash,
            pack_chunks(upload.chunks), upload.created_at, upload.expires_at, upload.user_id,
        )  # fmt: skip
        await self.hold_chunks(upload.upload_id, upload.chunks, upload.expires_at)

    async def delete_upload(self, upload_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM uploads WHERE tenant_id = $1 AND upload_id = $2",
            self.tenant_id,
            upload_id,
        )
        await self.release_holds(upload_id)

    async def prunable_versions(self, *, keep: int, created_before: float, limit: int) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT v.version_id FROM (SELECT version_id, node_id, created_at, ROW_NUMBER() OVER"
            " (PARTITION BY node_id ORDER BY seq DESC) AS rank FROM versions WHERE tenant_id = $1)"
            " v JOIN nodes n ON n.tenant_id = $1 AND n.node_id = v.node_id"
            " WHERE v.version_id IS DISTINCT FROM n.head_version_id"
            " AND (v.rank > $2 OR v.created_at < $3)"
            f"{snapshot_sql.version_not_pinned('$1')} LIMIT $4",
            self.tenant_id,
            keep,
            created_before,
            limit,
        )
        return [r[0] for r in rows]

    async def delete_versions(self, version_ids: Sequence[str]) -> int:
        deleted = 0
        for vid in version_ids:
            chunks = await self.conn.fetchval(
                "DELETE FROM versions v USING nodes n WHERE v.tenant_id = $1"
                " AND v.version_id = $2 AND n.tenant_id = v.tenant_id AND n.node_id = v.node_id"
                " AND v.version_id IS DISTINCT FROM n.head_version_id"
                f"{snapshot_sql.version_not_pinned('$1')} RETURNING v.chunks",
                self.tenant_id,
                vid,
            )
            if chunks is None:
                continue
            await self._drop_refs(unpack_chunks(chunks))
            deleted += 1
        return deleted

    async def _drop_refs(self, chunks: Sequence[str]) -> None:
        counted = chunk_counts(chunks)
        names, counts = list(counted), list(counted.values())
        freed = await self.conn.fetchval(
            "SELECT COALESCE(SUM(c.size), 0) FROM chunks c"
            " JOIN unnest($2::text[], $3::bigint[]) AS u(h, n) ON c.chunk_hash = u.h"
            " WHERE c.tenant_id = $1 AND c.refs > 0 AND c.refs - u.n <= 0",
            self.tenant_id,
            names,
            counts,
        )
        if freed:
            await self.conn.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes - $2 WHERE tenant_id = $1",
                self.tenant_id,
                int(freed),
            )
        # touched_at restarts the collector's grace period for newly unreferenced chunks.
        await self.conn.execute(
            "UPDATE chunks c SET refs = GREATEST(c.refs - u.n, 0), touched_at = $4"
            " FROM unnest($2::text[], $3::bigint[]) AS u(h, n)"
            " WHERE c.tenant_id = $1 AND c.chunk_hash = u.h",
            self.tenant_id,
            names,
            counts,
            time.time(),
        )

    async def purge_tombstones(self, deleted_before: float, limit: int) -> int:
        purged = 0
        while purged < limit:
            rows = await self.conn.fetch(
                "SELECT n.node_id FROM nodes n WHERE n.tenant_id = $1"
                " AND n.deleted_at IS NOT NULL AND n.deleted_at < $2 AND n.parent_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM nodes c WHERE c.tenant_id = $1"
                f"  AND c.parent_id = n.node_id){snapshot_sql.node_not_pinned('$1')} LIMIT $3",
                self.tenant_id,
                deleted_before,
                limit - purged,
            )
            if not rows:
                break
            for (node_id,) in rows:
                for (chunks,) in await self.conn.fetch(
                    "DELETE FROM versions WHERE tenant_id = $1 AND node_id = $2 RETURNING chunks",
                    self.tenant_id,
                    node_id,
                ):
                    await self._drop_refs(unpack_chunks(chunks))
                await self.conn.execute(
                    "DELETE FROM nodes WHERE tenant_id = $1 AND node_id = $2",
                    self.tenant_id,
                    node_id,
                )
            purged += len(rows)
        return purged

    async def insert_snapshot(self, snapshot: SnapshotRow, items: Sequence[SnapshotItem]) -> None:
        await self.conn.execute(
            to_dollar(snapshot_sql.INSERT), *snapshot_sql.snapshot_params(self.tenant_id, snapshot)
        )
        await self.conn.executemany(
            to_dollar(snapshot_sql.INSERT_ITEM),
            [snapshot_sql.item_params(self.tenant_id, snapshot.snapshot_id, i) for i in items],
        )

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self.conn.execute(to_dollar(snapshot_sql.DELETE_ITEMS), self.tenant_id, snapshot_id)
        await self.conn.execute(to_dollar(snapshot_sql.DELETE), self.tenant_id, snapshot_id)


class PostgresMetadataStore:
    """The metadata port on a :class:`PostgresDatabase`."""

    def __init__(self, db: PostgresDatabase, instance: str = "") -> None:
        self.db = db
        self.instance = instance

    @classmethod
    async def open(
        cls, db: PostgresDatabase, *, migrate: bool = True, instance: str = ""
    ) -> PostgresMetadataStore:
        """The store on *db*; applies pending migrations when *migrate* (else the server
        expects ``meshfs-server migrate`` to have run). *instance* names this process in the
        feed notifications it sends."""
        if migrate:
            await db.migrate({"namespace": NAMESPACE_MIGRATIONS})
        return cls(db, instance)

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[PostgresReadTx]:
        async with self.db.transaction(readonly=True) as conn:
            yield PostgresReadTx(conn, tenant_id)

    @asynccontextmanager
    async def write(
        self, tenant_id: str, *, durable: bool = True
    ) -> AsyncIterator[PostgresWriteTx]:
        async def prepare(conn: Connection) -> None:
            if not durable:
                # The commit returns before its WAL is flushed; the WAL is sequential, so the
                # next durable commit flushes this one too.
                await conn.execute("SET LOCAL synchronous_commit = off")
            await lock_tenant(conn, tenant_id)

        async with self.db.transaction(prepare=prepare) as conn:
            yield PostgresWriteTx(conn, tenant_id, self.instance)

    async def claim_garbage(self, *, older_than: float, limit: int) -> GarbageBatch:
        now = time.time()

        async def tenants(conn: Connection) -> list[str]:
            rows = await conn.fetch(
                "SELECT tenant_id FROM chunks WHERE collecting"
                "  OR (refs = 0 AND touched_at < $1)"
                " UNION SELECT tenant_id FROM uploads WHERE expires_at < $2"
                " UNION SELECT tenant_id FROM chunk_holds WHERE expires_at < $2"
                " LIMIT $3",
                older_than, now, _TENANT_SCAN,
            )  # fmt: skip
            return sorted(r[0] for r in rows)

        batch = GarbageBatch()
        for tenant_id in await self.db.run(tenants, what="collect"):
            if len(batch.chunks) >= limit:
                break

            async def claim(conn: Connection, tenant: str = tenant_id) -> list[str]:
                await conn.execute(
                    "SELECT 1 FROM ns_tenants WHERE tenant_id = $1 FOR UPDATE", tenant
                )
                await conn.execute(
                    "DELETE FROM uploads WHERE tenant_id = $1 AND expires_at < $2", tenant, now
                )
                await conn.execute(
                    "DELETE FROM chunk_holds WHERE tenant_id = $1 AND expires_at < $2",
                    tenant,
                    now,
                )
                rows = await conn.fetch(
                    # Earlier claims whose deletion did not finish are claimed again.
                    "UPDATE chunks SET collecting = TRUE WHERE tenant_id = $1 AND chunk_hash IN ("
                    " SELECT c.chunk_hash FROM chunks c WHERE c.tenant_id = $1 AND (c.collecting"
                    "  OR (c.refs = 0 AND c.touched_at < $2 AND NOT EXISTS ("
                    "   SELECT 1 FROM chunk_holds h"
                    "   WHERE h.tenant_id = c.tenant_id AND h.chunk_hash = c.chunk_hash)))"
                    " LIMIT $3) RETURNING chunk_hash",
                    tenant, older_than, limit - len(batch.chunks),
                )  # fmt: skip
                return [r[0] for r in rows]

            claimed = await self.db.run(claim, what="collect")
            batch.chunks.extend((tenant_id, name) for name in claimed)
        return batch

    async def claim_orphans(self, candidates: Sequence[tuple[str, str]]) -> GarbageBatch:
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, name in candidates:
            by_tenant.setdefault(tenant_id, []).append(name)
        batch = GarbageBatch()
        for tenant_id, names in sorted(by_tenant.items()):

            async def claim(conn: Connection, tenant: str = tenant_id,
                            hashes: list[str] = names) -> list[str]:  # fmt: skip
                # Only tenants of this database: the bucket may hold others' (never touch them).
                ours = await conn.fetchval(
                    "SELECT 1 FROM ns_tenants WHERE tenant_id = $1 FOR UPDATE", tenant
                )
                if ours is None:
                    return []
                rows = await conn.fetch(
                    "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored, collecting,"
                    " touched_at) SELECT $1, h, 0, 0, FALSE, TRUE, $3 FROM unnest($2::text[]) h"
                    " WHERE NOT EXISTS (SELECT 1 FROM chunk_holds k"
                    "  WHERE k.tenant_id = $1 AND k.chunk_hash = h)"
                    " ON CONFLICT (tenant_id, chunk_hash) DO NOTHING RETURNING chunk_hash",
                    tenant, hashes, time.time(),
                )  # fmt: skip
                return [r[0] for r in rows]

            for name in await self.db.run(claim, what="collect"):
                batch.chunks.append((tenant_id, name))
        return batch

    async def release_garbage(self, batch: GarbageBatch) -> None:
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, name in batch.chunks:
            by_tenant.setdefault(tenant_id, []).append(name)
        for tenant_id, names in sorted(by_tenant.items()):

            async def release(conn: Connection, tenant: str = tenant_id,
                              hashes: list[str] = names) -> None:  # fmt: skip
                await conn.execute(
                    "SELECT 1 FROM ns_tenants WHERE tenant_id = $1 FOR UPDATE", tenant
                )
                await conn.execute(
                    "DELETE FROM chunks WHERE tenant_id = $1 AND chunk_hash = ANY($2::text[])"
                    " AND collecting",
                    tenant,
                    hashes,
                )
                await conn.execute(
                    "UPDATE ns_tenants SET gc_epoch = gc_epoch + 1 WHERE tenant_id = $1", tenant
                )

            await self.db.run(release, what="collect")

    async def check(self) -> None:
        await self.db.check()

    async def close(self) -> None:
        await self.db.close()
