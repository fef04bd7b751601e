"""The mirror's state database: one SQLite file per (server, tenant, remote path, target).

Tables (the invariants are the ones the engine relies on after a crash):

``meta(key, value)``
    ``cursor``: the feed position the ``remote`` table reflects. Both change in the same
    transaction, so after a crash the cursor never runs ahead of the remote tree; replaying
    events after it is idempotent. Also ``server``, ``tenant``, ``remote_root``, ``target``
    and ``status`` (a JSON snapshot written by a running engine, read by ``--status``).
``remote(path, kind, node_id, version_id, content_hash, size, mode, mtime_ns)``
    The server's tree under the mirrored root, kept current from the change feed.
``synced(path, kind, node_id, version_id, content_hash, size, mtime_ns, inode, exec_bits)``
    The merge base: per path, the last state known to be identical on both sides (with the
    executable bits both sides had). A row is written only after the transfer that made both
    sides equal has completed (the local file renamed into place, or the server's commit
    answered). Columns added later are added to an older database when it is opened.
``pending(path, since)``
    Paths the engine still has to look at (for ``--status``; rebuilt from a scan at start).

Paths are mirror-relative (see :mod:`meshfs_client.mirror._model`). The database lives in the
user's state directory (``platformdirs.user_state_dir("meshfs")/mirror``). It names every
mirrored file, so it is private: the file is 0600 (tightened, with a warning, if an older
version left it readable) and directories created for it are 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import platformdirs

from meshfs_client.mirror._model import RemoteNode, SyncedNode

log = logging.getLogger("meshfs.sync")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remote (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, node_id TEXT NOT NULL,
    version_id TEXT, content_hash TEXT, size INTEGER NOT NULL DEFAULT 0,
    mode INTEGER, mtime_ns INTEGER
);
CREATE TABLE IF NOT EXISTS synced (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, node_id TEXT NOT NULL,
    version_id TEXT, content_hash TEXT, size INTEGER NOT NULL DEFAULT 0,
    mtime_ns INTEGER NOT NULL DEFAULT 0, inode INTEGER NOT NULL DEFAULT 0, exec_bits INTEGER
);
CREATE TABLE IF NOT EXISTS pending (path TEXT PRIMARY KEY, since REAL NOT NULL);
"""

_ADDED_COLUMNS = (
    ("remote", "mode", "INTEGER"),
    ("remote", "mtime_ns", "INTEGER"),
    ("synced", "exec_bits", "INTEGER"),
)
"""Columns added since the first release: a database from before gets them (as NULL, i.e.
"not known": attributes are compared again once a path has been transferred)."""


def _migrate(db: sqlite3.Connection) -> None:
    for table, column, sql_type in _ADDED_COLUMNS:
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def default_state_dir() -> Path:
    """Where mirror databases live unless told otherwise."""
    return Path(platformdirs.user_state_dir("meshfs")) / "mirror"


def state_file(state_dir: Path, server: str, tenant: str, remote_root: str, target: Path) -> Path:
    """The database path for one mirror (stable across runs, unique per the four keys)."""
    key = "\n".join([server, tenant, remote_root, str(target.resolve())])
    return state_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.sqlite3"


def _make_private(path: Path) -> None:
    """Create *path*'s missing directories 0700 and *path* itself 0600 (or tighten it, and
    SQLite's ``-wal``/``-shm`` beside it, when other users can read them)."""
    missing = []
    probe = path.parent
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            current = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if current != 0o600:
            file.chmod(0o600)
            if current & 0o077:
                log.warning("%s was readable by other users (mode %04o); made it 0600", file,
                            current)  # fmt: skip


def subtree_bounds(rel: str) -> tuple[str, str]:
    """``[lo, hi)`` of the paths strictly below *rel* in code-point order ('/' + 1 is '0')."""
    prefix = "/" if rel == "/" else rel + "/"
    return prefix, prefix[:-1] + "0"


def within(path: str, rel: str) -> bool:
    """True when *path* is *rel* or below it."""
    return rel == "/" or path == rel or path.startswith(rel + "/")


class StateDB:
    """The tables above, mirrored in memory for the planner (writes go through to SQLite)."""

    def __init__(self, path: Path) -> None:
        _make_private(path)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        _migrate(self._db)
        self._db.execute("BEGIN")
        self.remote: dict[str, RemoteNode] = {
            row[0]: RemoteNode(row[1], row[2], row[3], row[4], row[5], row[6], row[7])
            for row in self._db.execute(
                "SELECT path, kind, node_id, version_id, content_hash, size, mode, mtime_ns"
                " FROM remote"
            )
        }
        self.synced: dict[str, SyncedNode] = {
            row[0]: SyncedNode(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8])
            for row in self._db.execute(
                "SELECT path, kind, node_id, version_id, content_hash, size, mtime_ns, inode,"
                " exec_bits FROM synced"
            )
        }
        self._dirty_writes = 0

    def close(self) -> None:
        """Commit and close."""
        self.commit()
        self._db.execute("COMMIT")
        self._db.close()

    def commit(self) -> None:
        """Make everything written so far durable (a transaction is always open)."""
        if self._dirty_writes:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._dirty_writes = 0

    def _write(self, sql: str, args: Iterable[Any] = ()) -> None:
        self._db.execute(sql, tuple(args))
        self._dirty_writes += 1

    # --- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def cursor(self) -> int | None:
        """The feed cursor the remote table reflects (``None`` before the first listing)."""
        value = self.get_meta("cursor")
        return None if value is None else int(value)

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.set_meta("cursor", str(value))

    # --- remote tree ----------------------------------------------------------------------------

    def set_remote(self, path: str, node: RemoteNode) -> None:
        self.remote[path] = node
        self._write(
            "INSERT OR REPLACE INTO remote (path, kind, node_id, version_id, content_hash, size,"
            " mode, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                path,
                node.kind,
                node.node_id,
                node.version_id,
                node.content_hash,
                node.size,
                node.mode,
                node.mtime_ns,
            ),
        )

    def drop_remote(self, path: str) -> list[str]:
        """Remove *path* and everything below it; returns the removed paths."""
        gone = [p for p in self.remote if within(p, path)]
        for p in gone:
            del self.remote[p]
        lo, hi = subtree_bounds(path)
        self._write("DELETE FROM remote WHERE path = ? OR (path >= ? AND path < ?)", (path, lo, hi))
        return gone

    def clear_remote(self) -> None:
        self.remote.clear()
        self._write("DELETE FROM remote")

    def move_remote(self, old: str, new: str) -> list[tuple[str, str]]:
        """Move the subtree at *old* to *new* (replacing what was at *new*)."""
        self.drop_remote(new)
        moved = [(p, new + p[len(old) :]) for p in self.remote if within(p, old)]
        nodes = {p: self.remote.pop(p) for p, _ in moved}
        lo, hi = subtree_bounds(old)
        self._write("DELETE FROM remote WHERE path = ? OR (path >= ? AND path < ?)", (old, lo, hi))
        for p, q in moved:
            self.set_remote(q, nodes[p])
        return moved

    def swap_remote(self, one: str, other: str) -> None:
        """Exchange the subtrees at *one* and *other* (a rename with exchange)."""
        first = {p[len(one) :]: self.remote[p] for p in self.remote if within(p, one)}
        second = {p[len(other) :]: self.remote[p] for p in self.remote if within(p, other)}
        self.drop_remote(one)
        self.drop_remote(other)
        for tail, node in first.items():
            self.set_remote(other + tail, node)
        for tail, node in second.items():
            self.set_remote(one + tail, node)

    # --- synced (merge base) --------------------------------------------------------------------

    def set_synced(self, path: str, node: SyncedNode) -> None:
        self.synced[path] = node
        self._write(
            "INSERT OR REPLACE INTO synced (path, kind, node_id, version_id, content_hash, size,"
            " mtime_ns, inode, exec_bits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                path,
                node.kind,
                node.node_id,
                node.version_id,
                node.content_hash,
                node.size,
                node.mtime_ns,
                node.inode,
                node.exec_bits,
            ),
        )

    def drop_synced(self, path: str, *, subtree: bool = False) -> None:
        if not subtree:
            self.synced.pop(path, None)
            self._write("DELETE FROM synced WHERE path = ?", (path,))
            return
        for p in [p for p in self.synced if within(p, path)]:
            del self.synced[p]
        lo, hi = subtree_bounds(path)
        self._write("DELETE FROM synced WHERE path = ? OR (path >= ? AND path < ?)", (path, lo, hi))

    def move_synced(self, old: str, new: str) -> None:
        """Move the synced rows of the subtree at *old* to *new*."""
        self.drop_synced(new, subtree=True)
        moved = [(p, new + p[len(old) :]) for p in self.synced if within(p, old)]
        nodes = {p: self.synced[p] for p, _ in moved}
        self.drop_synced(old, subtree=True)
        for p, q in moved:
            self.set_synced(q, nodes[p])

    def swap_synced(self, one: str, other: str) -> None:
        """Exchange the synced rows of the subtrees at *one* and *other*."""
        first = {p[len(one) :]: self.synced[p] for p in self.synced if within(p, one)}
        second = {p[len(other) :]: self.synced[p] for p in self.synced if within(p, other)}
        self.drop_synced(one, subtree=True)
        self.drop_synced(other, subtree=True)
        for tail, node in first.items():
            self.set_synced(other + tail, node)
        for tail, node in second.items():
            self.set_synced(one + tail, node)

    def synced_below(self, rel: str) -> Iterator[str]:
        """Synced paths strictly below *rel*."""
        return (p for p in self.synced if p != rel and within(p, rel))

    def remote_below(self, rel: str) -> Iterator[str]:
        """Remote paths strictly below *rel*."""
        return (p for p in self.remote if p != rel and within(p, rel))

    # --- pending (for --status) -----------------------------------------------------------------

    def set_pending(self, paths_since: dict[str, float]) -> None:
        """Replace the pending list (called now and then by a running engine)."""
        self._write("DELETE FROM pending")
        self._db.executemany(
            "INSERT INTO pending (path, since) VALUES (?, ?)", list(paths_since.items())
        )

    def pending(self) -> list[tuple[str, float]]:
        return [
            (str(r[0]), float(r[1]))
            for r in self._db.execute("SELECT path, since FROM pending ORDER BY path")
        ]
