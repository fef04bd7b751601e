"""The metadata port's reads, written once for SQLite and Postgres.

Statements use ``?`` placeholders (the Postgres session rewrites them to ``$n``) and the SQL
both engines speak; the one thing spelled per engine is a match against a list of chunk names
(:meth:`MetadataEngine.any_of`: batched ``IN (...)`` on SQLite, ``= ANY(array)`` on Postgres).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from meshfs_common.models import ChangeEvent
from meshfs_server.adapters import link_sql, snapshot_sql, xattr_sql
from meshfs_server.adapters.link_sql import NODE_FROM, NODE_READ
from meshfs_server.adapters.path_sql import CHAIN_LIMIT, chain_params, chain_statement
from meshfs_server.adapters.rows import (
    EVENT_COLUMNS,
    VERSION_COLUMNS,
    event_from,
    node_from,
    unpack_chunks,
    version_from,
)
from meshfs_server.domain.paging import ChildKey
from meshfs_server.domain.ports import (
    ChunkState,
    FeedBounds,
    NodeRow,
    SnapshotItem,
    SnapshotRow,
    StorageUsage,
    UploadRow,
    VersionRow,
)

if TYPE_CHECKING:
    from meshfs_server.adapters.metadata_store import MetadataEngine, Session

_ROW = tuple[Any, ...]
R = TypeVar("R")


class SqlReadTx:
    """Read queries bound to one tenant in one transaction."""

    def __init__(self, session: Session, tenant_id: str, engine: MetadataEngine) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.engine = engine

    async def _one(self, sql: str, *args: Any) -> _ROW | None:
        """The first row of *sql*, whose first parameter is the tenant."""
        return await self.session.fetchone(sql, (self.tenant_id, *args))

    async def _all(self, sql: str, *args: Any) -> list[_ROW]:
        """Every row of *sql*, whose first parameter is the tenant."""
        return await self.session.fetchall(sql, (self.tenant_id, *args))

    async def _value(self, sql: str, *args: Any) -> Any:
        row = await self._one(sql, *args)
        return None if row is None else row[0]

    async def _decoded(self, decode: Callable[[_ROW], R], sql: str, *args: Any) -> R | None:
        """The first row of *sql* decoded, or None."""
        row = await self.session.fetchone(sql, (self.tenant_id, *args))
        return None if row is None else decode(row)

    async def root(self) -> NodeRow:
        node = await self.get_node(self.tenant_id)
        return NodeRow.empty_root(self.tenant_id) if node is None else node

    async def get_node(self, node_id: str) -> NodeRow | None:
        return await self._decoded(
            node_from,
            f"SELECT {NODE_READ} FROM {NODE_FROM} WHERE e.tenant_id = ? AND e.node_id = ?",
            node_id,
        )

    async def child(self, parent_id: str, name: str) -> NodeRow | None:
        return await self._decoded(
            node_from,
            f"SELECT {NODE_READ} FROM {NODE_FROM} WHERE e.tenant_id = ? AND e.parent_id = ?"
            " AND e.name = ? AND e.deleted_at IS NULL",
            parent_id,
            name,
        )

    async def walk(self, names: tuple[str, ...]) -> tuple[int, NodeRow]:
        node: NodeRow | None = None  # the directory the next names are under (None: the root)
        depth = 0
        while depth < len(names):
            if node is not None and not node.is_dir:
                return depth, node
            part = names[depth : depth + CHAIN_LIMIT]
            start = self.tenant_id if node is None else node.node_id
            row = await self.session.fetchone(
                chain_statement(len(part)), chain_params(self.tenant_id, start, part)
            )
            if row is None:  # something on the way is missing or not a directory: which?
                return await self._step(node or await self.root(), depth, names)
            node, depth = node_from(row), depth + len(part)
        return depth, node or await self.root()

    async def _step(self, node: NodeRow, depth: int, names: tuple[str, ...]) -> tuple[int, NodeRow]:
        """:meth:`walk` name by name from *node*, found at *depth*."""
        for at in range(depth, len(names)):
            found = await self.child(node.node_id, names[at]) if node.is_dir else None
            if found is None:
                return at, node
            node = found
        return len(names), node

    async def children(
        self, parent_id: str, *, after: ChildKey | None, limit: int, include_deleted: bool = False
    ) -> list[NodeRow]:
        live = "" if include_deleted else " AND e.deleted_at IS NULL"
        start: tuple[object, ...] = ()
        if after is not None and after.node_id is not None:
            live += " AND (e.name, e.node_id) > (?, ?)"
            start = (after.name, after.node_id)
        elif after is not None:
            live += " AND e.name > ?"
            start = (after.name,)
        rows = await self._all(
            f"SELECT {NODE_READ} FROM {NODE_FROM} WHERE e.tenant_id = ? AND e.parent_id = ?"
            f"{live} ORDER BY e.name, e.node_id LIMIT ?",
            parent_id,
            *start,
            limit,
        )
        return [node_from(r) for r in rows]

    async def has_live_children(self, node_id: str) -> bool:
        found = await self._one(
            "SELECT 1 FROM nodes WHERE tenant_id = ? AND parent_id = ?"
            " AND deleted_at IS NULL LIMIT 1",
            node_id,
        )
        return found is not None

    async def live_descendants(self, node_id: str) -> list[NodeRow]:
        t = self.tenant_id
        rows = await self.session.fetchall(
            "WITH RECURSIVE sub(node_id) AS ("
            "  SELECT node_id FROM nodes WHERE tenant_id = ? AND parent_id = ?"
            "    AND deleted_at IS NULL"
            "  UNION ALL"
            "  SELECT n.node_id FROM nodes n JOIN sub ON n.parent_id = sub.node_id"
            "    WHERE n.tenant_id = ? AND n.deleted_at IS NULL)"
            f" SELECT {NODE_READ} FROM {NODE_FROM} JOIN sub ON e.node_id = sub.node_id"
            " WHERE e.tenant_id = ?",
            (t, node_id, t, t),
        )
        return [node_from(r) for r in rows]

    async def get_version(self, version_id: str) -> VersionRow | None:
        return await self._decoded(
            version_from,
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = ? AND version_id = ?",
            version_id,
        )

    async def versions(
        self, node_id: str, *, before_seq: int | None, limit: int
    ) -> list[VersionRow]:
        rows = await self._all(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE tenant_id = ? AND node_id = ?"
            " AND seq < ? ORDER BY seq DESC LIMIT ?",
            node_id,
            before_seq if before_seq is not None else 2**62,
            limit,
        )
        return [version_from(r) for r in rows]

    async def events_after(self, cursor: int, limit: int) -> list[ChangeEvent]:
        rows = await self._all(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            cursor,
            limit,
        )
        return [event_from(r) for r in rows]

    async def feed_bounds(self) -> FeedBounds:
        row = await self._one("SELECT log_start, next_seq FROM ns_tenants WHERE tenant_id = ?")
        if row is None:
            return FeedBounds(first=1, last=0)
        return FeedBounds(first=int(row[0]), last=int(row[1]) - 1)

    async def cursor_before(self, at: float) -> int | None:
        last = await self._value("SELECT MAX(seq) FROM events WHERE tenant_id = ? AND at < ?", at)
        return None if last is None else int(last)

    async def last_event_of(self, node_id: str, before_seq: int) -> ChangeEvent | None:
        return await self._decoded(
            event_from,
            f"SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ? AND node_id = ?"
            " AND seq < ? ORDER BY seq DESC LIMIT 1",
            node_id,
            before_seq,
        )

    async def snapshot(self, ref: str) -> SnapshotRow | None:
        by_id = await self._decoded(snapshot_sql.snapshot_from, snapshot_sql.SELECT_BY_ID, ref)
        if by_id is not None:
            return by_id
        return await self._decoded(snapshot_sql.snapshot_from, snapshot_sql.SELECT_BY_NAME, ref)

    async def snapshots(self) -> list[SnapshotRow]:
        return [snapshot_sql.snapshot_from(r) for r in await self._all(snapshot_sql.SELECT_ALL)]

    async def snapshot_items(self, snapshot_id: str) -> list[SnapshotItem]:
        rows = await self._all(snapshot_sql.SELECT_ITEMS, snapshot_id)
        return [snapshot_sql.item_from(r) for r in rows]

    async def _chunk_rows(self, columns: str, where: str, hashes: Sequence[str]) -> list[_ROW]:
        """*columns* of the tenant's chunks named in *hashes* that match *where*."""
        rows: list[_ROW] = []
        for match, params in self.engine.any_of("chunk_hash", hashes):
            rows += await self._all(
                f"SELECT {columns} FROM chunks WHERE tenant_id = ?{where} AND {match}", *params
            )
        return rows

    async def present_chunks(self, hashes: Sequence[str]) -> set[str]:
        rows = await self._chunk_rows("chunk_hash", " AND stored AND NOT collecting", hashes)
        return {r[0] for r in rows}

    async def chunk_sizes(self, hashes: Sequence[str]) -> dict[str, int]:
        rows = await self._chunk_rows("chunk_hash, size", " AND stored AND NOT collecting", hashes)
        return {r[0]: int(r[1]) for r in rows}

    async def unreferenced_bytes(self, hashes: Sequence[str]) -> int:
        rows = await self._chunk_rows("COALESCE(SUM(size), 0)", " AND refs = 0", hashes)
        return sum(int(r[0]) for r in rows)

    async def held_chunks(self, hold_id: str) -> set[str]:
        rows = await self._all(
            "SELECT chunk_hash FROM chunk_holds WHERE tenant_id = ? AND hold_id = ?"
            " AND expires_at > ?",
            hold_id,
            time.time(),
        )
        return {r[0] for r in rows}

    async def chunk_state(self, chunk_hash: str) -> ChunkState:
        row = await self._one(
            "SELECT stored, collecting FROM chunks WHERE tenant_id = ? AND chunk_hash = ?",
            chunk_hash,
        )
        if row is None:
            return "absent"
        if row[1]:
            return "collecting"
        return "stored" if row[0] else "absent"

    async def chunk_data(self, chunk_hash: str) -> bytes | None:
        data = await self._value(
            "SELECT data FROM chunks WHERE tenant_id = ? AND chunk_hash = ? AND stored"
            " AND NOT collecting",
            chunk_hash,
        )
        return None if data is None else bytes(data)

    async def collection_epoch(self) -> int:
        epoch = await self._value("SELECT gc_epoch FROM ns_tenants WHERE tenant_id = ?")
        return 0 if epoch is None else int(epoch)

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        row = await self._one(
            "SELECT upload_id, path, size, content_hash, chunks, created_at, expires_at, user_id,"
            " base_version, reserved FROM uploads WHERE tenant_id = ? AND upload_id = ?",
            upload_id,
        )
        if row is None:
            return None
        uid, path, size, chash, chunks, created, expires, user, base, reserved = row
        return UploadRow(
            uid, path, size, chash, unpack_chunks(chunks), created, expires, user, base,
            None if reserved is None else int(reserved),
        )  # fmt: skip

    async def committed_bytes(self) -> int:
        committed = await self._value(
            "SELECT COALESCE(MAX(stored_bytes), 0) FROM ns_tenants WHERE tenant_id = ?"
        )
        return int(committed)

    async def storage_usage(self, *, excluding_content: str | None = None) -> StorageUsage:
        committed = await self.committed_bytes()
        # uploads.content_hash is never NULL: "not this content" needs no NULL-safe compare.
        other = "" if excluding_content is None else " AND content_hash <> ?"
        pending = await self._value(
            "SELECT COALESCE(SUM(size), 0) FROM (SELECT MAX(COALESCE(reserved, size)) AS size"
            " FROM uploads"
            f" WHERE tenant_id = ? AND expires_at > ?{other} GROUP BY content_hash) AS p",
            time.time(),
            *(() if excluding_content is None else (excluding_content,)),
        )
        return StorageUsage(committed=int(committed), pending=int(pending))

    async def live_links(self, node_id: str) -> list[NodeRow]:
        return [node_from(r) for r in await self._all(link_sql.LIVE_LINKS, node_id)]

    async def xattr_sizes(self, node_id: str) -> dict[str, int]:
        return {str(n): int(size) for n, size in await self._all(xattr_sql.SIZES, node_id)}

    async def xattr(self, node_id: str, name: str) -> bytes | None:
        value = await self._value(xattr_sql.VALUE, node_id, name)
        return None if value is None else bytes(value)

    async def live_counts(self) -> dict[str, int]:
        rows = await self._all(
            "SELECT kind, COUNT(*) FROM nodes WHERE tenant_id = ? AND deleted_at IS NULL"
            " GROUP BY kind"
        )
        return {str(kind): int(n) for kind, n in rows}
