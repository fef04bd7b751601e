"""Namespace metadata in SQLite: the embedded default's implementation of the metadata port.

Schema and its invariants (Postgres mirrors it):

``ns_tenants``
    One row per tenant that has used its namespace. ``next_seq`` is the next change sequence
    number; it is read and bumped inside the writing transaction, so sequence numbers are
    allocated in commit order with no gaps (a reader can never see seq N+1 before N).
    ``log_start`` is the oldest retained event. ``stored_bytes`` is the sum of the sizes of the
    tenant's chunks with ``refs > 0`` (deduplicated storage, for quotas).
``nodes``
    Files and directories linked by ``parent_id``; the root has ``node_id = tenant_id`` and no
    parent. Among *live* nodes, (parent_id, name) is unique (partial unique index); tombstones
    (``deleted_at`` set) keep their parent and name for history and never block a new node with
    the same name. A directory rename updates one row.
    ``head_version_id``/``size``/``content_hash`` mirror the file's head version.
``versions``
    Immutable. ``seq`` is the change sequence number of the commit that created the version, so
    ordering versions by ``seq`` is commit order. ``chunks`` is the concatenation of the 64-hex
    chunk names.
``chunks``
    One row per chunk of a tenant whose content is stored (``stored = 1``; rows from older
    versions of the protocol may be 0, meaning absent). ``refs`` counts references from versions
    (a chunk used twice in one version counts twice). ``collecting = 1`` means a garbage
    collector has claimed it: it is absent, and writers wait until the collector has deleted
    the content and the row. A collector only claims unheld chunks, and writers hold a chunk
    before checking that it is not being collected, so it never deletes content someone relies on.
``uploads`` / ``chunk_holds``
    Chunked uploads in progress, and holds on chunks: a held chunk is never claimed by the
    collector (an upload holds every chunk it names until it commits or expires).
``events``
    The change feed, (tenant_id, seq) unique.
``snapshots`` / ``snapshot_items``
    Named snapshots of subtrees and the nodes and versions they keep from retention (see
    :mod:`meshfs_server.adapters.snapshot_sql`, shared with Postgres).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from meshfs_common.models import ChangeEvent
from meshfs_server.adapters import snapshot_sql
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
from meshfs_server.adapters.sqlite_db import SqliteDatabase
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

NAMESPACE_MIGRATIONS: list[str] = [
    """
    CREATE TABLE ns_tenants (
        tenant_id TEXT PRIMARY KEY,
        next_seq INTEGER NOT NULL,
        log_start INTEGER NOT NULL
    );
    CREATE TABLE nodes (
        tenant_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        head_version_id TEXT,
        size INTEGER NOT NULL DEFAULT 0,
        content_hash TEXT,
        deleted_at REAL,
        PRIMARY KEY (tenant_id, node_id)
    );
    CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, parent_id, name)
        WHERE deleted_at IS NULL;
    CREATE INDEX nodes_by_parent ON nodes (tenant_id, parent_id, name, deleted_at);
    CREATE TABLE versions (
        tenant_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        size INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at REAL NOT NULL,
        writer TEXT,
        replaces TEXT,
        restored_from TEXT,
        PRIMARY KEY (tenant_id, version_id)
    );
    CREATE INDEX versions_by_node ON versions (tenant_id, node_id, seq);
    CREATE TABLE chunks (
        tenant_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        refs INTEGER NOT NULL DEFAULT 0 CHECK (refs >= 0),
        stored INTEGER NOT NULL DEFAULT 0,
        collecting INTEGER NOT NULL DEFAULT 0,
        touched_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, chunk_hash)
    );
    CREATE INDEX chunks_unreferenced ON chunks (refs, collecting, touched_at);
    CREATE TABLE uploads (
        tenant_id TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, upload_id)
    );
    CREATE TABLE chunk_holds (
        tenant_id TEXT NOT NULL,
        hold_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, hold_id, chunk_hash)
    );
    CREATE INDEX chunk_holds_by_chunk ON chunk_holds (tenant_id, chunk_hash);
    CREATE INDEX chunk_holds_by_expiry ON chunk_holds (expires_at);
    CREATE TABLE events (
        tenant_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        node_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        old_path TEXT,
        version_id TEXT,
        size INTEGER,
        content_hash TEXT,
        replaced_node_id TEXT,
        at REAL NOT NULL,
        writer TEXT,
        PRIMARY KEY (tenant_id, seq)
    )
    """,
    # Deduplicated storage per tenant, kept up to date where chunk references go 0 <-> 1, so
    # that quota checks never scan the chunk table.
    """
    ALTER TABLE ns_tenants ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE ns_tenants SET stored_bytes = (SELECT COALESCE(SUM(c.size), 0) FROM chunks c
        WHERE c.tenant_id = ns_tenants.tenant_id AND c.refs > 0)
    """,
    # The collection epoch: advanced whenever a collector deletes some of the tenant's content.
    """
    ALTER TABLE ns_tenants ADD COLUMN gc_epoch INTEGER NOT NULL DEFAULT 0
    """,
    # Named snapshots of subtrees (and an index for a node's history in the feed).
    snapshot_sql.MIGRATION,
]

_BATCH = 400  # stay well below SQLite's bound-parameter limit


def _batches(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _BATCH):
        yield items[i : i + _BATCH]


class SqliteReadTx:
    """Read queries bound to one tenant on one connection."""

    def __init__(self, conn: sqlite3.Connection, tenant_id: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.conn.execute(sql, (self.tenant_id, *args)).fetchone()
        return row

    def _all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, (self.tenant_id, *args)).fetchall()

    async def root(self) -> NodeRow:
        node = await self.get_node(self.tenant_id)
        if node is None:  # never written to: an empty root, created by the first write
            return NodeRow(self.tenant_id, None, "", "dir", 0.0, 0.0)
        return node

    async def get_node(self, node_id: str) -> NodeRow | None:
        row = self._one(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = ? AND node_id = ?", node_id
        )
        return None if row is None else node_from(row)

    async def child(self, parent_id: str, name: str) -> NodeRow | None:
        row = self._one(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = ? AND parent_id = ?"
            " AND name = ? AND deleted_at IS NULL",
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
            live += " AND (name, node_id) > (?, ?)"
            start = (after.name, after.node_id)
        elif after is not None:
            live += " AND name > ?"
            start = (after.name,)
        rows = self._all(
            f"SELECT {NODE_COLUMNS} FROM nodes WHERE tenant_id = ? AND parent_id = ?"
            f"{live} ORDER BY name, node_id LIMIT ?",
            parent_id,
            *start,
            limit,
        )
        return [node_from(r) for r in rows]

    async def has_live_children(self, node_id: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM nodes WHERE tenant_id = ? AND parent_id = ?"
                " AND deleted_at IS NULL LIMIT 1",
                node_id,
            )
            is not None
        )

    async def get_version(self, version_id: str) -> VersionRow | None:
        row = self._one(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = ? AND version_id = ?",
            version_id,
        )
        return None if row is None else version_from(row)

    async def versions(
        self, node_id: str, *, before_seq: int | None, limit: int
    ) -> list[VersionRow]:
        rows = self._all(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = ? AND node_id = ?"
            " AND seq < ? ORDER BY seq DESC LIMIT ?",
            node_id,
            before_seq if before_seq is not None else 2**62,
            limit,
        )
        return [version_from(r) for r in rows]

    async def events_after(self, cursor: int, limit: int) -> list[ChangeEvent]:
        rows = self._all(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            cursor,
            limit,
        )
        return [event_from(r) for r in rows]

    async def feed_bounds(self) -> FeedBounds:
        row = self._one("SELECT log_start, next_seq FROM ns_tenants WHERE tenant_id = ?")
        if row is None:
            return FeedBounds(first=1, last=0)
        return FeedBounds(first=row[0], last=row[1] - 1)

    async def cursor_before(self, at: float) -> int | None:
        row = self._one("SELECT MAX(seq) FROM events WHERE tenant_id = ? AND at < ?", at)
        return None if row is None or row[0] is None else int(row[0])

    async def last_event_of(self, node_id: str, before_seq: int) -> ChangeEvent | None:
        row = self._one(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND node_id = ?"
            " AND seq < ? ORDER BY seq DESC LIMIT 1",
            node_id,
            before_seq,
        )
        return None if row is None else event_from(row)

    async def snapshot(self, ref: str) -> SnapshotRow | None:
        row = self._one(snapshot_sql.SELECT_BY_ID, ref) or self._one(
            snapshot_sql.SELECT_BY_NAME, ref
        )
        return None if row is None else snapshot_sql.snapshot_from(row)

    async def snapshots(self) -> list[SnapshotRow]:
        return [snapshot_sql.snapshot_from(r) for r in self._all(snapshot_sql.SELECT_ALL)]

    async def snapshot_items(self, snapshot_id: str) -> list[SnapshotItem]:
        rows = self._all(snapshot_sql.SELECT_ITEMS, snapshot_id)
        return [snapshot_sql.item_from(r) for r in rows]

    async def present_chunks(self, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for batch in _batches(sorted(set(hashes))):
            marks = ",".join("?" * len(batch))
            found.update(
                r[0]
                for r in self._all(
                    f"SELECT chunk_hash FROM chunks WHERE tenant_id = ? AND stored = 1"
                    f" AND collecting = 0 AND chunk_hash IN ({marks})",
                    *batch,
                )
            )
        return found

    async def chunk_sizes(self, hashes: Sequence[str]) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for batch in _batches(sorted(set(hashes))):
            marks = ",".join("?" * len(batch))
            sizes.update(
                (r[0], r[1])
                for r in self._all(
                    f"SELECT chunk_hash, size FROM chunks WHERE tenant_id = ? AND stored = 1"
                    f" AND collecting = 0"
                    f" AND chunk_hash IN ({marks})",
                    *batch,
                )
            )
        return sizes

    async def held_chunks(self, hold_id: str) -> set[str]:
        rows = self._all(
            "SELECT chunk_hash FROM chunk_holds WHERE tenant_id = ? AND hold_id = ?"
            " AND expires_at > ?",
            hold_id,
            time.time(),
        )
        return {r[0] for r in rows}

    async def chunk_state(self, chunk_hash: str) -> ChunkState:
        row = self._one(
            "SELECT stored, collecting FROM chunks WHERE tenant_id = ? AND chunk_hash = ?",
            chunk_hash,
        )
        if row is None:
            return "absent"
        if row[1]:
            return "collecting"
        return "stored" if row[0] else "absent"

    async def collection_epoch(self) -> int:
        row = self._one("SELECT gc_epoch FROM ns_tenants WHERE tenant_id = ?")
        return 0 if row is None else int(row[0])

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        row = self._one(
            "SELECT upload_id, path, size, content_hash, chunks, created_at, expires_at, user_id"
            " FROM uploads WHERE tenant_id = ? AND upload_id = ?",
            upload_id,
        )
        if row is None:
            return None
        uid, path, size, chash, chunks, created, expires, user = row
        return UploadRow(uid, path, size, chash, unpack_chunks(chunks), created, expires, user)

    async def unreferenced_bytes(self, hashes: Sequence[str]) -> int:
        total = 0
        for batch in _batches(sorted(set(hashes))):
            marks = ",".join("?" * len(batch))
            row = self._one(
                f"SELECT COALESCE(SUM(size), 0) FROM chunks WHERE tenant_id = ? AND refs = 0"
                f" AND chunk_hash IN ({marks})",
                *batch,
            )
            total += int(row[0]) if row else 0
        return total

    async def storage_usage(self, *, excluding_content: str | None = None) -> StorageUsage:
        committed = self._one(
            "SELECT COALESCE(MAX(stored_bytes), 0) FROM ns_tenants WHERE tenant_id = ?"
        )
        pending = self._one(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(size) AS size FROM uploads"
            " WHERE tenant_id = ? AND expires_at > ? AND content_hash IS NOT ?"
            " GROUP BY content_hash)",
            time.time(),
            excluding_content,
        )
        assert committed is not None
        assert pending is not None
        return StorageUsage(committed=int(committed[0]), pending=int(pending[0]))

    async def live_descendants(self, node_id: str) -> list[NodeRow]:
        cols = ", ".join(f"n.{c.strip()}" for c in NODE_COLUMNS.split(","))
        rows = self._all(
            f"WITH RECURSIVE sub(node_id) AS ("
            f"  SELECT node_id FROM nodes WHERE tenant_id = ?1 AND parent_id = ?2"
            f"    AND deleted_at IS NULL"
            f"  UNION ALL"
            f"  SELECT n.node_id FROM nodes n JOIN sub ON n.parent_id = sub.node_id"
            f"    WHERE n.tenant_id = ?1 AND n.deleted_at IS NULL)"
            f" SELECT {cols} FROM nodes n JOIN sub ON n.node_id = sub.node_id"
            f" WHERE n.tenant_id = ?1",
            node_id,
        )
        return [node_from(r) for r in rows]


class SqliteWriteTx(SqliteReadTx):
    """Write statements bound to one tenant inside an immediate transaction."""

    def _run(self, sql: str, *args: Any) -> sqlite3.Cursor:
        return self.conn.execute(sql, (self.tenant_id, *args))

    def ensure_tenant(self) -> None:
        now = time.time()
        cur = self._run(
            "INSERT OR IGNORE INTO ns_tenants (tenant_id, next_seq, log_start) VALUES (?, 1, 1)"
        )
        if cur.rowcount:
            self._run(
                "INSERT INTO nodes (tenant_id, node_id, parent_id, name, kind, created_at,"
                " modified_at) VALUES (?, ?, NULL, '', 'dir', ?, ?)",
                self.tenant_id,
                now,
                now,
            )

    async def insert_node(self, node: NodeRow) -> None:
        self._run(
            f"INSERT INTO nodes (tenant_id, {NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            node.node_id, node.parent_id, node.name, node.kind, node.created_at,
            node.modified_at, node.head_version_id, node.size, node.content_hash, node.deleted_at,
        )  # fmt: skip

    async def move_node(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        self.conn.execute(
            "UPDATE nodes SET parent_id = ?, name = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (parent_id, name, at, self.tenant_id, node_id),
        )

    async def set_head(self, node_id: str, version: VersionRow) -> None:
        self.conn.execute(
            "UPDATE nodes SET head_version_id = ?, size = ?, content_hash = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (version.version_id, version.size, version.content_hash, version.created_at,
             self.tenant_id, node_id),
        )  # fmt: skip

    async def tombstone(self, node_ids: Sequence[str], at: float) -> None:
        self.conn.executemany(
            "UPDATE nodes SET deleted_at = ? WHERE tenant_id = ? AND node_id = ?",
            [(at, self.tenant_id, nid) for nid in node_ids],
        )

    async def revive(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        self.conn.execute(
            "UPDATE nodes SET deleted_at = NULL, parent_id = ?, name = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (parent_id, name, at, self.tenant_id, node_id),
        )

    async def insert_version(self, version: VersionRow) -> None:
        self._run(
            f"INSERT INTO versions (tenant_id, {VERSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            version.version_id, version.node_id, version.seq, version.size, version.content_hash,
            pack_chunks(version.chunks), version.created_at, writer_json(version.writer),
            version.replaces, version.restored_from,
        )  # fmt: skip
        counts = chunk_counts(version.chunks)
        newly = await self.unreferenced_bytes(list(counts))
        self.conn.executemany(
            "UPDATE chunks SET refs = refs + ? WHERE tenant_id = ? AND chunk_hash = ?",
            [(n, self.tenant_id, name) for name, n in counts.items()],
        )
        if newly:
            self.conn.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes + ? WHERE tenant_id = ?",
                (newly, self.tenant_id),
            )

    async def next_seq(self) -> int:
        row = self._one("SELECT next_seq FROM ns_tenants WHERE tenant_id = ?")
        assert row is not None
        return int(row[0])

    async def prune_events(self, before: float) -> int:
        row = self._one("SELECT MAX(seq) FROM events WHERE tenant_id = ? AND at < ?", before)
        if row is None or row[0] is None:
            return 0
        last = int(row[0])
        gone = self._run("DELETE FROM events WHERE tenant_id = ? AND seq <= ?", last).rowcount
        self.conn.execute(
            "UPDATE ns_tenants SET log_start = MAX(log_start, ?) WHERE tenant_id = ?",
            (last + 1, self.tenant_id),
        )
        return int(gone)

    async def append_event(self, event: NewEvent) -> ChangeEvent:
        seq = await self.next_seq()
        self._run("UPDATE ns_tenants SET next_seq = next_seq + 1 WHERE tenant_id = ?")
        at = time.time()
        self._run(
            f"INSERT INTO events (tenant_id, {EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            seq, event.type, event.node_id, event.kind, event.path, event.old_path,
            event.version_id, event.size, event.content_hash, event.replaced_node_id, at,
            writer_json(event.writer),
        )  # fmt: skip
        return ChangeEvent(
            seq=seq, type=event.type, node_id=event.node_id, kind=event.kind, path=event.path,
            old_path=event.old_path, version_id=event.version_id, size=event.size,
            content_hash=event.content_hash, replaced_node_id=event.replaced_node_id,
            at=datetime.fromtimestamp(at, UTC), writer=event.writer,
        )  # fmt: skip

    async def mark_stored(self, chunk_hash: str, size: int) -> None:
        self._run(
            "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored, collecting, touched_at)"
            " VALUES (?, ?, ?, 0, 1, 0, ?) ON CONFLICT (tenant_id, chunk_hash)"
            " DO UPDATE SET stored = 1, touched_at = excluded.touched_at",
            chunk_hash,
            size,
            time.time(),
        )

    async def hold_chunks(self, hold_id: str, hashes: Sequence[str], expires_at: float) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO chunk_holds (tenant_id, hold_id, chunk_hash, expires_at)"
            " VALUES (?, ?, ?, ?)",
            [(self.tenant_id, hold_id, c, expires_at) for c in set(hashes)],
        )

    async def release_holds(self, hold_id: str) -> None:
        self._run("DELETE FROM chunk_holds WHERE tenant_id = ? AND hold_id = ?", hold_id)

    async def insert_upload(self, upload: UploadRow) -> None:
        self._run(
            "INSERT INTO uploads (tenant_id, upload_id, path, size, content_hash, chunks,"
            " created_at, expires_at, user_id) VALUES (?,?,?,?,?,?,?,?,?)",
            upload.upload_id, upload.path, upload.size, upload.content_hash,
            pack_chunks(upload.chunks), upload.created_at, upload.expires_at, upload.user_id,
        )  # fmt: skip
        await self.hold_chunks(upload.upload_id, upload.chunks, upload.expires_at)

    async def delete_upload(self, upload_id: str) -> None:
        self._run("DELETE FROM uploads WHERE tenant_id = ? AND upload_id = ?", upload_id)
        await self.release_holds(upload_id)

    async def prunable_versions(self, *, keep: int, created_before: float, limit: int) -> list[str]:
        rows = self._all(
            "SELECT v.version_id FROM (SELECT version_id, node_id, created_at, ROW_NUMBER() OVER"
            " (PARTITION BY node_id ORDER BY seq DESC) AS rank FROM versions WHERE tenant_id = ?1)"
            " v JOIN nodes n ON n.tenant_id = ?1 AND n.node_id = v.node_id"
            " WHERE v.version_id IS NOT n.head_version_id AND (v.rank > ?2 OR v.created_at < ?3)"
            f"{snapshot_sql.version_not_pinned('?1')} LIMIT ?4",
            keep,
            created_before,
            limit,
        )
        return [r[0] for r in rows]

    async def delete_versions(self, version_ids: Sequence[str]) -> int:
        deleted = 0
        for vid in version_ids:
            row = self._one(
                "SELECT v.chunks FROM versions v JOIN nodes n ON n.tenant_id = v.tenant_id"
                " AND n.node_id = v.node_id WHERE v.tenant_id = ? AND v.version_id = ?"
                " AND v.version_id IS NOT n.head_version_id",
                vid,
            )
            if row is None or self._one(snapshot_sql.PINNED_VERSION, vid) is not None:
                continue
            self._drop_refs(unpack_chunks(row[0]))
            self._run("DELETE FROM versions WHERE tenant_id = ? AND version_id = ?", vid)
            deleted += 1
        return deleted

    def _drop_refs(self, chunks: Sequence[str]) -> None:
        counts = chunk_counts(chunks)
        freed = 0
        for name, n in counts.items():
            row = self._one(
                "SELECT refs, size FROM chunks WHERE tenant_id = ? AND chunk_hash = ?", name
            )
            if row is not None and row[0] > 0 and row[0] - n <= 0:
                freed += int(row[1])
        if freed:
            self.conn.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes - ? WHERE tenant_id = ?",
                (freed, self.tenant_id),
            )
        now = time.time()
        # touched_at restarts the collector's grace period for newly unreferenced chunks.
        self.conn.executemany(
            "UPDATE chunks SET refs = MAX(refs - ?, 0), touched_at = ?"
            " WHERE tenant_id = ? AND chunk_hash = ?",
            [(n, now, self.tenant_id, name) for name, n in counts.items()],
        )

    async def purge_tombstones(self, deleted_before: float, limit: int) -> int:
        purged = 0
        while purged < limit:
            rows = self._all(
                "SELECT n.node_id, n.kind FROM nodes n WHERE n.tenant_id = ?1"
                " AND n.deleted_at IS NOT NULL AND n.deleted_at < ?2 AND n.parent_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM nodes c WHERE c.tenant_id = ?1"
                f"  AND c.parent_id = n.node_id){snapshot_sql.node_not_pinned('?1')} LIMIT ?3",
                deleted_before,
                limit - purged,
            )
            if not rows:
                break
            for node_id, _kind in rows:
                for (chunks,) in self._all(
                    "SELECT chunks FROM versions WHERE tenant_id = ? AND node_id = ?", node_id
                ):
                    self._drop_refs(unpack_chunks(chunks))
                self._run("DELETE FROM versions WHERE tenant_id = ? AND node_id = ?", node_id)
                self._run("DELETE FROM nodes WHERE tenant_id = ? AND node_id = ?", node_id)
            purged += len(rows)
        return purged

    async def insert_snapshot(self, snapshot: SnapshotRow, items: Sequence[SnapshotItem]) -> None:
        self.conn.execute(
            snapshot_sql.INSERT, snapshot_sql.snapshot_params(self.tenant_id, snapshot)
        )
        self.conn.executemany(
            snapshot_sql.INSERT_ITEM,
            [snapshot_sql.item_params(self.tenant_id, snapshot.snapshot_id, i) for i in items],
        )

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self._run(snapshot_sql.DELETE_ITEMS, snapshot_id)
        self._run(snapshot_sql.DELETE, snapshot_id)


class SqliteMetadataStore:
    """The metadata port on a :class:`SqliteDatabase`."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    @classmethod
    async def open(cls, db: SqliteDatabase) -> SqliteMetadataStore:
        await db.migrate({"namespace": NAMESPACE_MIGRATIONS})
        return cls(db)

    @asynccontextmanager
    async def read(self, tenant_id: str) -> AsyncIterator[SqliteReadTx]:
        async with self.db.read() as conn:
            yield SqliteReadTx(conn, tenant_id)

    @asynccontextmanager
    async def write(self, tenant_id: str, *, durable: bool = True) -> AsyncIterator[SqliteWriteTx]:
        async with self.db.write(durable=durable) as conn:
            tx = SqliteWriteTx(conn, tenant_id)
            tx.ensure_tenant()
            yield tx

    async def claim_garbage(self, *, older_than: float, limit: int) -> GarbageBatch:
        now = time.time()
        async with self.db.write() as conn:
            conn.execute("DELETE FROM uploads WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM chunk_holds WHERE expires_at < ?", (now,))
            rows = conn.execute(
                # Earlier claims whose deletion did not finish are claimed again.
                "SELECT c.tenant_id, c.chunk_hash FROM chunks c WHERE c.collecting = 1"
                " OR (c.refs = 0 AND c.touched_at < ? AND NOT EXISTS ("
                "  SELECT 1 FROM chunk_holds h"
                "  WHERE h.tenant_id = c.tenant_id AND h.chunk_hash = c.chunk_hash))"
                " LIMIT ?",
                (older_than, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE chunks SET collecting = 1 WHERE tenant_id = ? AND chunk_hash = ?", rows
            )
        return GarbageBatch(chunks=[(t, h) for t, h in rows])

    async def claim_orphans(self, candidates: Sequence[tuple[str, str]]) -> GarbageBatch:
        claimed: list[tuple[str, str]] = []
        now = time.time()
        async with self.db.write() as conn:
            for tenant_id, name in candidates:
                known = conn.execute(
                    "SELECT 1 FROM chunks WHERE tenant_id = ? AND chunk_hash = ?"
                    " UNION ALL SELECT 1 FROM chunk_holds WHERE tenant_id = ? AND chunk_hash = ?",
                    (tenant_id, name, tenant_id, name),
                ).fetchone()
                # Only tenants of this database: the store may hold others' (never touch them).
                ours = conn.execute(
                    "SELECT 1 FROM ns_tenants WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()
                if known is None and ours is not None:
                    conn.execute(
                        "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored,"
                        " collecting, touched_at) VALUES (?, ?, 0, 0, 0, 1, ?)",
                        (tenant_id, name, now),
                    )
                    claimed.append((tenant_id, name))
        return GarbageBatch(chunks=claimed)

    async def release_garbage(self, batch: GarbageBatch) -> None:
        async with self.db.write() as conn:
            conn.executemany(
                "DELETE FROM chunks WHERE tenant_id = ? AND chunk_hash = ? AND collecting = 1",
                batch.chunks,
            )
            conn.executemany(
                "UPDATE ns_tenants SET gc_epoch = gc_epoch + 1 WHERE tenant_id = ?",
                [(t,) for t in sorted({t for t, _ in batch.chunks})],
            )

    async def check(self) -> None:
        await self.db.check()

    async def close(self) -> None:
        await self.db.close()
