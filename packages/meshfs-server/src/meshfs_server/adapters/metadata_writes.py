"""The metadata port's writes, written once for SQLite and Postgres.

A write transaction holds its tenant from its first statement (:func:`ensure_tenant`), so
everything here reads and updates the tenant's rows without racing another writer of the same
tenant; that is what makes the feed's sequence gap-free and the reference counts exact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from meshfs_common.models import ChangeEvent
from meshfs_server.adapters import link_sql, snapshot_sql, xattr_sql
from meshfs_server.adapters.metadata_reads import SqlReadTx
from meshfs_server.adapters.rows import (
    EVENT_COLUMNS,
    NODE_COLUMNS,
    VERSION_COLUMNS,
    attributes_json,
    chunk_counts,
    node_values,
    pack_chunks,
    placeholders,
    unpack_chunks,
    writer_json,
)
from meshfs_server.domain.ports import (
    NewEvent,
    NodeRow,
    SnapshotItem,
    SnapshotRow,
    UploadRow,
    VersionRow,
)

if TYPE_CHECKING:
    from meshfs_server.adapters.metadata_store import MetadataEngine, Session


async def ensure_tenant(session: Session, tenant_id: str, engine: MetadataEngine) -> None:
    """Create the tenant (with its root) on first use, else hold it for this transaction
    (Postgres locks its ``ns_tenants`` row; SQLite's one writer holds everything already)."""
    created = await session.execute(
        "INSERT INTO ns_tenants (tenant_id, next_seq, log_start) VALUES (?, 1, 1)"
        " ON CONFLICT (tenant_id) DO NOTHING",
        (tenant_id,),
    )
    if created:
        await session.execute(
            f"INSERT INTO nodes (tenant_id, {NODE_COLUMNS}) VALUES ({placeholders(NODE_COLUMNS)})",
            (tenant_id, *node_values(NodeRow.new_root(tenant_id))),
        )
    elif engine.row_lock:
        await session.execute(
            f"SELECT 1 FROM ns_tenants WHERE tenant_id = ?{engine.row_lock}", (tenant_id,)
        )


class SqlWriteTx(SqlReadTx):
    """Write statements bound to one tenant inside a transaction that holds the tenant."""

    def __init__(
        self, session: Session, tenant_id: str, engine: MetadataEngine, instance: str = ""
    ) -> None:
        super().__init__(session, tenant_id, engine)
        self.instance = instance  # the notifying process, so it can ignore its own doorbell

    async def _run(self, sql: str, *args: object) -> int:
        """Run *sql*, whose first parameter is the tenant; the number of rows it changed."""
        return await self.session.execute(sql, (self.tenant_id, *args))

    async def _many(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        """Run *sql* once per row of parameters (none for no rows)."""
        if rows:
            await self.session.executemany(sql, rows)

    async def insert_node(self, node: NodeRow) -> None:
        await self._run(
            f"INSERT INTO nodes (tenant_id, {NODE_COLUMNS}) VALUES ({placeholders(NODE_COLUMNS)})",
            *node_values(node),
        )

    async def save_attributes(self, node: NodeRow) -> None:
        await self.session.execute(
            "UPDATE nodes SET mode = ?, uid = ?, gid = ?, mtime_ns = ?, atime_ns = ?,"
            " ctime_ns = ?, modified_at = ? WHERE tenant_id = ? AND node_id = ?",
            (node.mode, node.uid, node.gid, node.mtime_ns, node.atime_ns, node.ctime_ns,
             node.modified_at, self.tenant_id, node.node_id),
        )  # fmt: skip

    async def move_node(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        await self.session.execute(
            "UPDATE nodes SET parent_id = ?, name = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (parent_id, name, at, self.tenant_id, node_id),
        )

    async def insert_link(
        self, edge_id: str, node_id: str, parent_id: str, name: str, at: float
    ) -> None:
        await self._run(link_sql.INSERT, edge_id, parent_id, name, at, at, node_id)

    async def set_head(self, node_id: str, version: VersionRow) -> None:
        await self.session.execute(
            "UPDATE nodes SET head_version_id = ?, size = ?, content_hash = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (version.version_id, version.size, version.content_hash, version.created_at,
             self.tenant_id, node_id),
        )  # fmt: skip

    async def tombstone(self, node_ids: Sequence[str], at: float) -> None:
        for match, params in self.engine.any_of("node_id", node_ids):
            await self.session.execute(
                f"UPDATE nodes SET deleted_at = ? WHERE tenant_id = ? AND {match}",
                (at, self.tenant_id, *params),
            )

    async def revive(self, node_id: str, parent_id: str, name: str, at: float) -> None:
        await self.session.execute(
            "UPDATE nodes SET deleted_at = NULL, parent_id = ?, name = ?, modified_at = ?"
            " WHERE tenant_id = ? AND node_id = ?",
            (parent_id, name, at, self.tenant_id, node_id),
        )

    async def set_xattr(self, node_id: str, name: str, value: bytes) -> None:
        await self._run(xattr_sql.SET, node_id, name, value)

    async def remove_xattr(self, node_id: str, name: str) -> bool:
        return await self._run(xattr_sql.REMOVE, node_id, name) > 0

    async def insert_version(self, version: VersionRow) -> None:
        await self._run(
            f"INSERT INTO versions (tenant_id, {VERSION_COLUMNS})"
            f" VALUES ({placeholders(VERSION_COLUMNS)})",
            version.version_id, version.node_id, version.seq, version.size, version.content_hash,
            pack_chunks(version.chunks), version.created_at, writer_json(version.writer),
            version.replaces, version.restored_from, version.mode,
        )  # fmt: skip
        counts = chunk_counts(version.chunks)
        newly = await self.unreferenced_bytes(list(counts))
        await self._many(
            "UPDATE chunks SET refs = refs + ? WHERE tenant_id = ? AND chunk_hash = ?",
            [(n, self.tenant_id, name) for name, n in counts.items()],
        )
        if newly:
            await self.session.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes + ? WHERE tenant_id = ?",
                (newly, self.tenant_id),
            )

    async def next_seq(self) -> int:
        seq = await self._value("SELECT next_seq FROM ns_tenants WHERE tenant_id = ?")
        assert seq is not None
        return int(seq)

    async def prune_events(self, before: float) -> int:
        last = await self._value(
            "SELECT MAX(seq) FROM events WHERE tenant_id = ? AND at < ?", before
        )
        if last is None:
            return 0
        gone = await self._run("DELETE FROM events WHERE tenant_id = ? AND seq <= ?", last)
        await self.session.execute(
            "UPDATE ns_tenants SET log_start = ? WHERE tenant_id = ? AND log_start < ?",
            (int(last) + 1, self.tenant_id, int(last) + 1),
        )
        return gone

    async def append_event(self, event: NewEvent) -> ChangeEvent:
        seq = await self.next_seq()
        await self._run("UPDATE ns_tenants SET next_seq = next_seq + 1 WHERE tenant_id = ?")
        at = time.time()
        await self._run(
            f"INSERT INTO events (tenant_id, {EVENT_COLUMNS})"
            f" VALUES ({placeholders(EVENT_COLUMNS)})",
            seq, event.type, event.node_id, event.kind, event.path, event.old_path,
            event.version_id, event.size, event.content_hash, event.replaced_node_id, at,
            writer_json(event.writer), attributes_json(event.attributes),
            attributes_json(event.old_attributes), event.target, event.exchanged_with,
            event.xattr_name, event.xattr_action, event.nlink,
        )  # fmt: skip
        await self.engine.ring(self.session, self.tenant_id, self.instance)
        return ChangeEvent(
            seq=seq, type=event.type, node_id=event.node_id, kind=event.kind, path=event.path,
            old_path=event.old_path, version_id=event.version_id, size=event.size,
            content_hash=event.content_hash, replaced_node_id=event.replaced_node_id,
            at=datetime.fromtimestamp(at, UTC), writer=event.writer,
            attributes=event.attributes, old_attributes=event.old_attributes, target=event.target,
            exchanged_with=event.exchanged_with, xattr_name=event.xattr_name,
            xattr_action=event.xattr_action, nlink=event.nlink,
        )  # fmt: skip

    async def mark_stored(self, chunk_hash: str, size: int, data: bytes | None = None) -> None:
        # Content once kept in the row stays there (a later copy in the content store is
        # never read).
        await self._run(
            "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored, collecting,"
            " touched_at, data) VALUES (?, ?, ?, 0, TRUE, FALSE, ?, ?)"
            " ON CONFLICT (tenant_id, chunk_hash) DO UPDATE SET stored = TRUE,"
            " touched_at = excluded.touched_at, data = COALESCE(excluded.data, chunks.data)",
            chunk_hash,
            size,
            time.time(),
            data,
        )

    async def hold_chunks(self, hold_id: str, hashes: Sequence[str], expires_at: float) -> None:
        await self._many(
            "INSERT INTO chunk_holds (tenant_id, hold_id, chunk_hash, expires_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(self.tenant_id, hold_id, c, expires_at) for c in sorted(set(hashes))],
        )

    async def release_holds(self, hold_id: str) -> None:
        await self._run("DELETE FROM chunk_holds WHERE tenant_id = ? AND hold_id = ?", hold_id)

    async def insert_upload(self, upload: UploadRow) -> None:
        await self._run(
            "INSERT INTO uploads (tenant_id, upload_id, path, size, content_hash, chunks,"
            " created_at, expires_at, user_id, base_version, reserved)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            upload.upload_id, upload.path, upload.size, upload.content_hash,
            pack_chunks(upload.chunks), upload.created_at, upload.expires_at, upload.user_id,
            upload.base_version, upload.reserved,
        )  # fmt: skip
        await self.hold_chunks(upload.upload_id, upload.chunks, upload.expires_at)

    async def delete_upload(self, upload_id: str) -> None:
        await self._run("DELETE FROM uploads WHERE tenant_id = ? AND upload_id = ?", upload_id)
        await self.release_holds(upload_id)

    async def prunable_versions(self, *, keep: int, created_before: float, limit: int) -> list[str]:
        t = self.tenant_id
        rows = await self.session.fetchall(
            "SELECT v.version_id FROM (SELECT version_id, node_id, created_at, ROW_NUMBER() OVER"
            " (PARTITION BY node_id ORDER BY seq DESC) AS rank FROM versions WHERE tenant_id = ?)"
            " v JOIN nodes n ON n.tenant_id = ? AND n.node_id = v.node_id"
            " WHERE (n.head_version_id IS NULL OR v.version_id <> n.head_version_id)"
            " AND (v.rank > ? OR v.created_at < ?)"
            f"{snapshot_sql.version_not_pinned('?')} LIMIT ?",
            (t, t, keep, created_before, t, limit),
        )
        return [r[0] for r in rows]

    async def delete_versions(self, version_ids: Sequence[str]) -> int:
        deleted = 0
        for vid in version_ids:
            row = await self._one(
                "SELECT v.chunks FROM versions v JOIN nodes n ON n.tenant_id = v.tenant_id"
                " AND n.node_id = v.node_id WHERE v.tenant_id = ? AND v.version_id = ?"
                " AND (n.head_version_id IS NULL OR v.version_id <> n.head_version_id)",
                vid,
            )
            if row is None or await self._one(snapshot_sql.PINNED_VERSION, vid) is not None:
                continue
            await self._drop_refs(unpack_chunks(row[0]))
            await self._run("DELETE FROM versions WHERE tenant_id = ? AND version_id = ?", vid)
            deleted += 1
        return deleted

    async def _drop_refs(self, chunks: Sequence[str]) -> None:
        """Release one version's references to *chunks* (and their bytes from the tenant's
        storage where a chunk's last reference goes)."""
        counts = chunk_counts(chunks)
        rows = await self._chunk_rows("chunk_hash, refs, size", "", list(counts))
        freed = sum(int(size) for name, refs, size in rows if 0 < refs <= counts[name])
        if freed:
            await self.session.execute(
                "UPDATE ns_tenants SET stored_bytes = stored_bytes - ? WHERE tenant_id = ?",
                (freed, self.tenant_id),
            )
        # touched_at restarts the collector's grace period for newly unreferenced chunks.
        now = time.time()
        await self._many(
            "UPDATE chunks SET refs = ?, touched_at = ? WHERE tenant_id = ? AND chunk_hash = ?",
            [(max(refs - counts[name], 0), now, self.tenant_id, name) for name, refs, _ in rows],
        )

    async def purge_tombstones(self, deleted_before: float, limit: int) -> int:
        t = self.tenant_id
        purged = 0
        while purged < limit:
            rows = await self.session.fetchall(
                "SELECT n.node_id FROM nodes n WHERE n.tenant_id = ?"
                " AND n.deleted_at IS NOT NULL AND n.deleted_at < ? AND n.parent_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM nodes c WHERE c.tenant_id = ?"
                f"  AND c.parent_id = n.node_id){snapshot_sql.node_not_pinned('?')}"
                f"{link_sql.NO_PINNED_LINK} LIMIT ?",
                (t, deleted_before, t, t, t, limit - purged),
            )
            if not rows:
                break
            for (node_id,) in rows:
                for (chunks,) in await self._all(
                    "SELECT chunks FROM versions WHERE tenant_id = ? AND node_id = ?", node_id
                ):
                    await self._drop_refs(unpack_chunks(chunks))
                await self._run("DELETE FROM versions WHERE tenant_id = ? AND node_id = ?", node_id)
                await self._run(xattr_sql.REMOVE_ALL, node_id)
                await self._run(link_sql.DELETE_LINKS, node_id)
                await self._run("DELETE FROM nodes WHERE tenant_id = ? AND node_id = ?", node_id)
            purged += len(rows)
        return purged

    async def insert_snapshot(self, snapshot: SnapshotRow, items: Sequence[SnapshotItem]) -> None:
        await self.session.execute(
            snapshot_sql.INSERT, snapshot_sql.snapshot_params(self.tenant_id, snapshot)
        )
        await self._many(
            snapshot_sql.INSERT_ITEM,
            [snapshot_sql.item_params(self.tenant_id, snapshot.snapshot_id, i) for i in items],
        )

    async def delete_snapshot(self, snapshot_id: str) -> None:
        await self._run(snapshot_sql.DELETE_ITEMS, snapshot_id)
        await self._run(snapshot_sql.DELETE, snapshot_id)
