"""The one-statement path walk finds every name through an index, whatever the tenant's size
(SQLite without statistics once planned it as a scan of all the tenant's nodes)."""

from __future__ import annotations

import sqlite3

import pytest

from meshfs_server.adapters.path_sql import CHAIN_LIMIT, chain_params, chain_statement

_NODES = """
CREATE TABLE nodes (
    tenant_id TEXT NOT NULL, node_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, deleted_at REAL, link_of TEXT, PRIMARY KEY (tenant_id, node_id)
);
CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, parent_id, name)
    WHERE deleted_at IS NULL;
CREATE INDEX nodes_by_parent ON nodes (tenant_id, parent_id, name, deleted_at);
CREATE INDEX nodes_links ON nodes (tenant_id, link_of) WHERE link_of IS NOT NULL;
CREATE INDEX nodes_subdirs ON nodes (tenant_id, parent_id)
    WHERE kind = 'dir' AND deleted_at IS NULL;
"""


@pytest.mark.parametrize("count", range(1, CHAIN_LIMIT + 1))
def test_every_name_is_found_by_its_parent_through_an_index(count: int) -> None:
    from meshfs_server.adapters.rows import NODE_COLUMNS

    db = sqlite3.connect(":memory:")
    columns = {c.strip() for c in NODE_COLUMNS.split(",")}
    db.executescript(_NODES)
    for column in sorted(columns - {"tenant_id", "node_id", "parent_id", "name", "kind",
                                    "deleted_at", "link_of"}):  # fmt: skip
        db.execute(f"ALTER TABLE nodes ADD COLUMN {column}")
    names = tuple(f"n{i}" for i in range(count))
    plan = db.execute(
        "EXPLAIN QUERY PLAN " + chain_statement(count), chain_params("t", "root", names)
    ).fetchall()
    steps = [row[3] for row in plan if row[3].startswith(("SEARCH", "SCAN"))]
    for alias in [f"n{i}" for i in range(1, count)] + ["e"]:
        found = [s for s in steps if s.split()[1] == alias]
        assert found, (alias, steps)
        assert "parent_id=?" in found[0], (alias, steps)
        assert "name=?" in found[0], (alias, steps)
