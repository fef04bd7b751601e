"""Snapshot tables and statements, written once for both SQL backends.

The migration and every statement here run unchanged on SQLite and on Postgres (SQLite maps
BIGINT and DOUBLE PRECISION to its INTEGER and REAL affinities); statements use ``?``
placeholders, which the Postgres adapter rewrites to ``$n``. ``?1`` is always the tenant.

Schema and invariants:

``snapshots``
    One row per named snapshot of a subtree: ``path`` and its root ``node_id`` when taken,
    ``cursor`` (the last committed sequence number then), who took it and totals of what it
    holds. ``name`` is unique per tenant.
``snapshot_items``
    The nodes live under the root (the root included) when the snapshot was taken: their
    parent, name and path then and, for files, the head version then. This is the exact state
    the snapshot names, independent of the change log's retention. Retention never prunes a
    version listed here, nor purges a tombstone listed here, while the snapshot exists.
"""

from __future__ import annotations

from typing import Any

from meshfs_server.adapters.rows import writer_from, writer_json
from meshfs_server.domain.ports import SnapshotItem, SnapshotRow

MIGRATION = """
    CREATE TABLE snapshots (
        tenant_id TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        node_id TEXT NOT NULL,
        cursor BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        created_by TEXT,
        files BIGINT NOT NULL DEFAULT 0,
        directories BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, snapshot_id)
    );
    CREATE UNIQUE INDEX snapshots_by_name ON snapshots (tenant_id, name);
    CREATE TABLE snapshot_items (
        tenant_id TEXT NOT NULL,
        snapshot_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        version_id TEXT,
        size BIGINT NOT NULL DEFAULT 0,
        content_hash TEXT,
        PRIMARY KEY (tenant_id, snapshot_id, node_id)
    );
    CREATE INDEX snapshot_items_by_version ON snapshot_items (tenant_id, version_id);
    CREATE INDEX snapshot_items_by_node ON snapshot_items (tenant_id, node_id);
    CREATE INDEX events_by_node ON events (tenant_id, node_id, seq)
"""

_SNAPSHOT_COLUMNS = (
    "snapshot_id, name, path, node_id, cursor, created_at, created_by, files, directories, bytes"
)
_ITEM_COLUMNS = "node_id, parent_id, name, kind, path, version_id, size, content_hash"

SELECT_BY_ID = f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE tenant_id = ? AND snapshot_id = ?"
SELECT_BY_NAME = f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE tenant_id = ? AND name = ?"
SELECT_ALL = (
    f"SELECT {_SNAPSHOT_COLUMNS} FROM snapshots WHERE tenant_id = ?"
    " ORDER BY created_at DESC, snapshot_id DESC"
)
SELECT_ITEMS = (
    f"SELECT {_ITEM_COLUMNS} FROM snapshot_items WHERE tenant_id = ? AND snapshot_id = ?"
    " ORDER BY path"
)
INSERT = (
    f"INSERT INTO snapshots (tenant_id, {_SNAPSHOT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
    " ?, ?)"
)
INSERT_ITEM = (
    f"INSERT INTO snapshot_items (tenant_id, snapshot_id, {_ITEM_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DELETE_ITEMS = "DELETE FROM snapshot_items WHERE tenant_id = ? AND snapshot_id = ?"
DELETE = "DELETE FROM snapshots WHERE tenant_id = ? AND snapshot_id = ?"


def version_not_pinned(tenant: str) -> str:
    """Retention's exclusion of versions (aliased ``v``) a snapshot references; *tenant* is
    how the enclosing query names its tenant parameter (``?1``, ``$1``)."""
    return (
        f" AND NOT EXISTS (SELECT 1 FROM snapshot_items p WHERE p.tenant_id = {tenant}"
        " AND p.version_id = v.version_id)"
    )


def node_not_pinned(tenant: str) -> str:
    """Retention's exclusion of nodes (aliased ``n``) a snapshot references."""
    return (
        f" AND NOT EXISTS (SELECT 1 FROM snapshot_items p WHERE p.tenant_id = {tenant}"
        " AND p.node_id = n.node_id)"
    )


PINNED_VERSION = "SELECT 1 FROM snapshot_items WHERE tenant_id = ? AND version_id = ? LIMIT 1"


def snapshot_from(row: Any) -> SnapshotRow:
    sid, name, path, node_id, cursor, created, by, files, dirs, size = row
    return SnapshotRow(
        sid, name, path, node_id, int(cursor), float(created), writer_from(by), int(files),
        int(dirs), int(size),
    )  # fmt: skip


def item_from(row: Any) -> SnapshotItem:
    node_id, parent_id, name, kind, path, version_id, size, chash = row
    return SnapshotItem(node_id, parent_id, name, kind, path, version_id, int(size), chash)


def snapshot_params(tenant_id: str, s: SnapshotRow) -> tuple[Any, ...]:
    return (
        tenant_id, s.snapshot_id, s.name, s.path, s.node_id, s.cursor, s.created_at,
        writer_json(s.created_by), s.files, s.directories, s.bytes,
    )  # fmt: skip


def item_params(tenant_id: str, snapshot_id: str, i: SnapshotItem) -> tuple[Any, ...]:
    return (
        tenant_id, snapshot_id, i.node_id, i.parent_id, i.name, i.kind, i.path, i.version_id,
        i.size, i.content_hash,
    )  # fmt: skip
