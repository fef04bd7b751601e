"""The namespace tables, defined once for SQLite and Postgres, with their invariants.

Each table is written once below; :func:`namespace_migrations` spells the few column types the
two engines name differently (SQLite's INTEGER/REAL affinities and 0/1 flags, Postgres's
BIGINT/DOUBLE PRECISION/BOOLEAN, and ``nodes.name`` compared byte-wise on Postgres with
``COLLATE "C"``, as SQLite compares it, so listing order and paging do not depend on the
server's locale). The scripts each engine runs are exactly those earlier releases ran, so
databases created by them keep their recorded migrations.

Migrations are append-only: a database records which scripts it has run
(``schema_migrations``); never edit one that has shipped, add the next.
"""

from __future__ import annotations

import os
from typing import Literal

from meshfs_server.adapters import link_sql, snapshot_sql, xattr_sql

Engine = Literal["sqlite", "postgres"]

# ``ns_tenants``: one row per tenant that has used its namespace, created with the tenant's
# root node by the tenant's first write. ``next_seq`` is the next change sequence number; it is
# read and bumped inside the writing transaction, which holds the tenant (SQLite: the one
# writer; Postgres: this row, locked ``FOR UPDATE``), so sequence numbers are allocated in
# commit order with no gaps (a reader can never see seq N+1 before N). ``log_start`` is the
# oldest retained event. ``stored_bytes`` (migration 2) is the sum of the sizes of the
# tenant's chunks with ``refs > 0`` (deduplicated storage, for quotas); ``gc_epoch``
# (migration 3) advances whenever a collector deletes some of the tenant's content.
NS_TENANTS = """
    CREATE TABLE ns_tenants (
        tenant_id TEXT PRIMARY KEY,
        next_seq {int} NOT NULL,
        log_start {int} NOT NULL
    )"""

# ``nodes``: files and directories linked by ``parent_id``; the root has ``node_id =
# tenant_id`` and no parent. Among *live* nodes, (parent_id, name) is unique (partial unique
# index); tombstones (``deleted_at`` set) keep their parent and name for history and never
# block a new node with the same name. A directory rename updates one row.
# ``head_version_id``/``size``/``content_hash`` mirror the file's head version.
NODES = """
    CREATE TABLE nodes (
        tenant_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT,
        name {name} NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('file', 'dir')),
        created_at {real} NOT NULL,
        modified_at {real} NOT NULL,
        head_version_id TEXT,
        size {int} NOT NULL DEFAULT 0,
        content_hash TEXT,
        deleted_at {real},
        PRIMARY KEY (tenant_id, node_id)
    );
    CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, parent_id, name)
        WHERE deleted_at IS NULL;
    CREATE INDEX nodes_by_parent ON nodes (tenant_id, parent_id, name, deleted_at)"""

# ``versions``: immutable. ``seq`` is the change sequence number of the commit that created
# the version, so ordering versions by ``seq`` is commit order. ``chunks`` is the
# concatenation of the 64-hex chunk names (see :mod:`.rows`). A file's head version is never
# deleted; retention deletes others unless a snapshot lists them.
VERSIONS = """
    CREATE TABLE versions (
        tenant_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        seq {int} NOT NULL,
        size {int} NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at {real} NOT NULL,
        writer TEXT,
        replaces TEXT,
        restored_from TEXT,
        PRIMARY KEY (tenant_id, version_id)
    );
    CREATE INDEX versions_by_node ON versions (tenant_id, node_id, seq)"""

# ``chunks``: one row per chunk of a tenant whose content is stored (``stored`` true; rows
# from older versions of the protocol may be false, meaning absent). ``refs`` counts
# references from versions (a chunk used twice in one version counts twice). ``collecting``
# means a garbage collector has claimed it: it is absent, and writers wait until the collector
# has deleted the content and the row. A collector only claims unheld chunks, and writers hold
# a chunk before checking that it is not being collected, so it never deletes content someone
# relies on. ``touched_at`` starts the collector's grace period for an unreferenced chunk.
# ``data`` (added later) holds the content of a small chunk kept in the database instead of
# the content store (NULL: the content store has it); it goes with its row.
CHUNKS = """
    CREATE TABLE chunks (
        tenant_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        size {int} NOT NULL,
        refs {int} NOT NULL DEFAULT 0 CHECK (refs >= 0),
        stored {flag} NOT NULL DEFAULT {false},
        collecting {flag} NOT NULL DEFAULT {false},
        touched_at {real} NOT NULL,
        PRIMARY KEY (tenant_id, chunk_hash)
    );
    CREATE INDEX chunks_unreferenced ON chunks (refs, collecting, touched_at)"""

# ``uploads``: chunked uploads in progress; each holds every chunk it names (``chunk_holds``
# under ``hold_id = upload_id``) until it commits or expires. The collector deletes expired
# uploads and holds (index ``uploads_by_expiry``, migration 5). A partial write records its
# ``base_version`` (the head it must still replace at commit) and ``reserved``, the bytes of
# its new chunks, which is what it reserves against the quota (NULL: ``size``).
UPLOADS = """
    CREATE TABLE uploads (
        tenant_id TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        path TEXT NOT NULL,
        size {int} NOT NULL,
        content_hash TEXT NOT NULL,
        chunks TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (tenant_id, upload_id)
    )"""

# ``chunk_holds``: holds on chunks until ``expires_at``; a held chunk is never claimed by the
# collector.
CHUNK_HOLDS = """
    CREATE TABLE chunk_holds (
        tenant_id TEXT NOT NULL,
        hold_id TEXT NOT NULL,
        chunk_hash TEXT NOT NULL,
        expires_at {real} NOT NULL,
        PRIMARY KEY (tenant_id, hold_id, chunk_hash)
    );
    CREATE INDEX chunk_holds_by_chunk ON chunk_holds (tenant_id, chunk_hash);
    CREATE INDEX chunk_holds_by_expiry ON chunk_holds (expires_at)"""

# ``events``: the change feed, (tenant_id, seq) unique and gap-free from ``log_start`` to
# ``next_seq - 1`` (retention deletes a prefix and advances ``log_start``). The two rename
# events of an exchange name each other's node in ``exchanged_with``.
EVENTS = """
    CREATE TABLE events (
        tenant_id TEXT NOT NULL,
        seq {int} NOT NULL,
        type TEXT NOT NULL,
        node_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        old_path TEXT,
        version_id TEXT,
        size {int},
        content_hash TEXT,
        replaced_node_id TEXT,
        at {real} NOT NULL,
        writer TEXT,
        PRIMARY KEY (tenant_id, seq)
    )"""

# POSIX attributes (migration 6). ``nodes`` gains ``mode`` (permission bits incl. setuid,
# setgid and sticky, never file-type bits: ``kind`` says that), ``uid``/``gid`` (as a client set
# them; not enforced by the server), ``mtime_ns``/``atime_ns`` (client-settable) and
# ``ctime_ns`` (bumped by the server on every change of the node), all integer nanoseconds
# (``modified_at`` stays, equal to ``mtime_ns`` in seconds), ``target`` (a symbolic link's
# target, verbatim) and ``rdev`` (device nodes). ``kind`` admits symlinks, FIFOs, sockets and
# devices: SQLite cannot alter a CHECK constraint, so there the table is rebuilt. ``versions``
# gains the ``mode`` the version was written with; ``events`` the ``attributes`` and
# ``old_attributes`` of an attribute change (JSON objects) and a symbolic link's ``target``.
# Existing nodes get 0644 (files) / 0755 (directories), the uid/gid of the server process that
# migrates, and all three times from ``modified_at`` (to the microsecond: a double holds
# epoch microseconds exactly, not nanoseconds).
_KINDS = "('file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev')"
_POSIX_NODES_SQLITE = f"""
    CREATE TABLE nodes_posix (
        tenant_id TEXT NOT NULL,
        node_id TEXT NOT NULL,
        parent_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN {_KINDS}),
        created_at REAL NOT NULL,
        modified_at REAL NOT NULL,
        head_version_id TEXT,
        size INTEGER NOT NULL DEFAULT 0,
        content_hash TEXT,
        deleted_at REAL,
        mode INTEGER NOT NULL DEFAULT 420,
        uid INTEGER NOT NULL DEFAULT 0,
        gid INTEGER NOT NULL DEFAULT 0,
        mtime_ns INTEGER NOT NULL DEFAULT 0,
        atime_ns INTEGER NOT NULL DEFAULT 0,
        ctime_ns INTEGER NOT NULL DEFAULT 0,
        target TEXT,
        rdev INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant_id, node_id)
    );
    INSERT INTO nodes_posix (tenant_id, node_id, parent_id, name, kind, created_at, modified_at,
        head_version_id, size, content_hash, deleted_at, mode, uid, gid, mtime_ns, atime_ns,
        ctime_ns)
    SELECT tenant_id, node_id, parent_id, name, kind, created_at, modified_at, head_version_id,
        size, content_hash, deleted_at, CASE kind WHEN 'dir' THEN 493 ELSE 420 END, {{uid}},
        {{gid}}, CAST(ROUND(modified_at * 1000000) AS INTEGER) * 1000,
        CAST(ROUND(modified_at * 1000000) AS INTEGER) * 1000,
        CAST(ROUND(modified_at * 1000000) AS INTEGER) * 1000
    FROM nodes;
    DROP TABLE nodes;
    ALTER TABLE nodes_posix RENAME TO nodes;
    CREATE UNIQUE INDEX nodes_live_name ON nodes (tenant_id, parent_id, name)
        WHERE deleted_at IS NULL;
    CREATE INDEX nodes_by_parent ON nodes (tenant_id, parent_id, name, deleted_at);
    ALTER TABLE versions ADD COLUMN mode INTEGER NOT NULL DEFAULT 420;
    ALTER TABLE events ADD COLUMN attributes TEXT;
    ALTER TABLE events ADD COLUMN old_attributes TEXT;
    ALTER TABLE events ADD COLUMN target TEXT
    """
_POSIX_NODES_POSTGRES = f"""
    ALTER TABLE nodes DROP CONSTRAINT IF EXISTS nodes_kind_check;
    ALTER TABLE nodes ADD CONSTRAINT nodes_kind_check CHECK (kind IN {_KINDS});
    ALTER TABLE nodes ADD COLUMN mode BIGINT NOT NULL DEFAULT 420,
        ADD COLUMN uid BIGINT NOT NULL DEFAULT 0, ADD COLUMN gid BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN mtime_ns BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN atime_ns BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN ctime_ns BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN target TEXT, ADD COLUMN rdev BIGINT NOT NULL DEFAULT 0;
    UPDATE nodes SET mode = CASE kind WHEN 'dir' THEN 493 ELSE 420 END, uid = {{uid}},
        gid = {{gid}}, mtime_ns = CAST(ROUND(modified_at * 1000000) AS BIGINT) * 1000,
        atime_ns = CAST(ROUND(modified_at * 1000000) AS BIGINT) * 1000,
        ctime_ns = CAST(ROUND(modified_at * 1000000) AS BIGINT) * 1000;
    ALTER TABLE versions ADD COLUMN mode BIGINT NOT NULL DEFAULT 420;
    ALTER TABLE events ADD COLUMN attributes TEXT, ADD COLUMN old_attributes TEXT,
        ADD COLUMN target TEXT
    """


def _posix_attributes(engine: Engine) -> str:
    """Migration 6 for *engine*, owned by the migrating process's user."""
    script = _POSIX_NODES_SQLITE if engine == "sqlite" else _POSIX_NODES_POSTGRES
    return script.format(uid=os.getuid(), gid=os.getgid())


_TYPES: dict[Engine, dict[str, str]] = {
    "sqlite": {"int": "INTEGER", "real": "REAL", "flag": "INTEGER", "false": "0", "name": "TEXT"},
    "postgres": {
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "flag": "BOOLEAN",
        "false": "FALSE",
        "name": 'TEXT COLLATE "C"',
    },
}


_BYTES = {"sqlite": "BLOB", "postgres": "BYTEA"}


def namespace_migrations(engine: Engine) -> list[str]:
    """The namespace's migration scripts (``;``-separated statements) for *engine*."""
    tables = (NS_TENANTS, NODES, VERSIONS, CHUNKS, UPLOADS, CHUNK_HOLDS, EVENTS)
    return [
        ";".join(tables).format(**_TYPES[engine]) + "\n    ",
        # Deduplicated storage per tenant, kept up to date where chunk references go 0 <-> 1,
        # so that quota checks never scan the chunk table.
        f"""
    ALTER TABLE ns_tenants ADD COLUMN stored_bytes {_TYPES[engine]["int"]} NOT NULL DEFAULT 0;
    UPDATE ns_tenants SET stored_bytes = (SELECT COALESCE(SUM(c.size), 0) FROM chunks c
        WHERE c.tenant_id = ns_tenants.tenant_id AND c.refs > 0)
    """,
        f"""
    ALTER TABLE ns_tenants ADD COLUMN gc_epoch {_TYPES[engine]["int"]} NOT NULL DEFAULT 0
    """,
        # Named snapshots of subtrees (and an index for a node's history in the feed).
        snapshot_sql.MIGRATION,
        # The collector's sweep of expired uploads (Postgres databases created before this
        # script have it from script 1).
        """
    CREATE INDEX IF NOT EXISTS uploads_by_expiry ON uploads (expires_at)
    """,
        _posix_attributes(engine),
        # Partial writes (an upload based on a head version, reserving only its new chunks)
        # and exchanges (the two rename events of a swap name each other's node).
        f"""
    ALTER TABLE uploads ADD COLUMN base_version TEXT;
    ALTER TABLE uploads ADD COLUMN reserved {_TYPES[engine]["int"]};
    ALTER TABLE events ADD COLUMN exchanged_with TEXT
    """,
        # Extended attributes (``user.*`` per node) and the feed's ``xattr`` events.
        xattr_sql.migration(engine),
        # Hard links (``nodes.link_of``), the counts behind ``nlink``, and the feed's ``nlink``.
        link_sql.migration(engine),
        # Small chunks kept in the database (``chunks.data``), written by the transaction that
        # commits them: a small file costs one durable write (see domain.placement).
        f"""
    ALTER TABLE chunks ADD COLUMN data {_BYTES[engine]}
    """,
    ]
