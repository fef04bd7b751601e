"""Hard links in the SQL store: the ``link_of`` column and how a name is read as its node.

Schema and invariants (migration 9):

``nodes.link_of``
    NULL for a node's own row. An extra name of node N (a hard link) is a row of its own with
    ``link_of = N``: its own ``node_id`` (the name's id, never shown to clients), ``parent_id``,
    ``name`` and ``deleted_at``, so name uniqueness, listings and tombstones work unchanged;
    its other columns mean nothing (a link row's ``kind`` is always ``'file'``; N's own row
    gives the kind read). Any node but a directory is linked, and a link row never points at
    another link row. Everything about content, versions, attributes and extended
    attributes belongs to N: reads resolve the name to N (:data:`NODE_READ`). While any name of
    N is live, N's own row is live too (the domain moves N's row onto a remaining name when its
    own is removed), so N always has a path. N's link rows go when N is purged.
``events.nlink``
    On a ``delete`` of one name of a file that keeps others: how many names it has left.

A read answers each row as :class:`~meshfs_server.domain.ports.NodeRow` with ``node_id`` N, the
name's ``parent_id``, ``name`` and ``deleted_at``, N's other columns, ``edge_id`` (the link
row's id, None for N's own row) and ``nlink``: a file's live names, for a directory 2 plus its
live subdirectories (counted through partial indexes that hold only those rows).
"""

from __future__ import annotations

from typing import Literal

from meshfs_server.adapters.rows import NODE_COLUMNS

_INT = {"sqlite": "INTEGER", "postgres": "BIGINT"}

_MIGRATION = """
    ALTER TABLE nodes ADD COLUMN link_of TEXT;
    CREATE INDEX nodes_links ON nodes (tenant_id, link_of) WHERE link_of IS NOT NULL;
    CREATE INDEX nodes_subdirs ON nodes (tenant_id, parent_id)
        WHERE kind = 'dir' AND deleted_at IS NULL;
    ALTER TABLE events ADD COLUMN nlink {int}
    """


def migration(engine: Literal["sqlite", "postgres"]) -> str:
    """The script that adds hard links, spelled for *engine*."""
    return _MIGRATION.format(int=_INT[engine])


#: The columns that belong to the name rather than to the node.
_NAME_COLUMNS = frozenset({"parent_id", "name", "deleted_at"})
_NLINK = (
    "CASE WHEN d.kind = 'dir' THEN 2 + (SELECT COUNT(*) FROM nodes s"
    " WHERE s.tenant_id = d.tenant_id AND s.parent_id = d.node_id AND s.kind = 'dir'"
    " AND s.deleted_at IS NULL)"
    " ELSE 1 + (SELECT COUNT(*) FROM nodes k WHERE k.tenant_id = d.tenant_id"
    " AND k.link_of = d.node_id AND k.link_of IS NOT NULL AND k.deleted_at IS NULL) END"
)
#: A row read as its node: the columns of NODE_COLUMNS, then the link row's id, then nlink.
#: Use with :data:`NODE_FROM`; conditions name the row read as ``e``.
NODE_READ = (
    ", ".join(
        f"e.{c}" if c in _NAME_COLUMNS else f"d.{c}"
        for c in (c.strip() for c in NODE_COLUMNS.split(","))
    )
    + ", CASE WHEN e.link_of IS NULL THEN NULL ELSE e.node_id END, "
    + _NLINK
)
NODE_FROM = (
    "nodes e JOIN nodes d ON d.tenant_id = e.tenant_id"
    " AND d.node_id = COALESCE(e.link_of, e.node_id)"
)
INSERT = (
    "INSERT INTO nodes (tenant_id, node_id, parent_id, name, kind, created_at, modified_at,"
    " link_of) VALUES (?, ?, ?, ?, 'file', ?, ?, ?)"
)
#: The live extra names of a node, read as the node.
LIVE_LINKS = (
    f"SELECT {NODE_READ} FROM {NODE_FROM} WHERE e.tenant_id = ? AND e.link_of = ?"
    " AND e.link_of IS NOT NULL AND e.deleted_at IS NULL ORDER BY e.node_id"
)
DELETE_LINKS = "DELETE FROM nodes WHERE tenant_id = ? AND link_of = ?"
#: Retention's exclusion of files (aliased ``n``) one of whose link rows a snapshot lists: the
#: file's content and history stay while a snapshot can bring that name back.
NO_PINNED_LINK = (
    " AND NOT EXISTS (SELECT 1 FROM nodes k JOIN snapshot_items p"
    " ON p.tenant_id = k.tenant_id AND p.node_id = k.node_id"
    " WHERE k.tenant_id = ? AND k.link_of = n.node_id AND k.link_of IS NOT NULL)"
)
