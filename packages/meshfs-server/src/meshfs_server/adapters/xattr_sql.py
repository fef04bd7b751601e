"""Extended attributes: their table and statements, written once for both SQL backends.

Schema and invariants:

``xattrs``
    One row per extended attribute of a node: ``(tenant_id, node_id, name)`` is the key, so a
    name is set at most once per node. ``node_id`` is always the node that owns the content
    (never the row of one of its extra names: hard links share one set of attributes). Only
    names the domain accepts are stored (``user.*``); the domain also keeps each node within
    its limits (value size, number of names, total bytes), checked inside the writing
    transaction, which holds the tenant. Rows go when their node is purged.
``events``
    gains ``xattr_name`` and ``xattr_action`` (``set``/``removed``) for ``xattr`` events; the
    value never enters the feed.

Statements use ``?`` placeholders (the Postgres session rewrites them to ``$n``); the first
parameter is always the tenant.
"""

from __future__ import annotations

from typing import Literal

_VALUE_TYPE = {"sqlite": "BLOB", "postgres": "BYTEA"}
_NAME_TYPE = {"sqlite": "TEXT", "postgres": 'TEXT COLLATE "C"'}

_MIGRATION = """
    CREATE TABLE xattrs (
        tenant_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        name {name} NOT NULL,
        value {value} NOT NULL,
        PRIMARY KEY (tenant_id, node_id, name)
    );
    ALTER TABLE events ADD COLUMN xattr_name TEXT;
    ALTER TABLE events ADD COLUMN xattr_action TEXT
    """


def migration(engine: Literal["sqlite", "postgres"]) -> str:
    """The script that adds extended attributes, spelled for *engine*."""
    return _MIGRATION.format(name=_NAME_TYPE[engine], value=_VALUE_TYPE[engine])


SIZES = "SELECT name, LENGTH(value) FROM xattrs WHERE tenant_id = ? AND node_id = ? ORDER BY name"
VALUE = "SELECT value FROM xattrs WHERE tenant_id = ? AND node_id = ? AND name = ?"
SET = (
    "INSERT INTO xattrs (tenant_id, node_id, name, value) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (tenant_id, node_id, name) DO UPDATE SET value = excluded.value"
)
REMOVE = "DELETE FROM xattrs WHERE tenant_id = ? AND node_id = ? AND name = ?"
REMOVE_ALL = "DELETE FROM xattrs WHERE tenant_id = ? AND node_id = ?"
