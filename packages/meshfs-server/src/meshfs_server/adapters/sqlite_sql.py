"""Identity's SQL port (:mod:`meshfs_server.auth.store`) on the embedded SQLite database.

Statements run inline on the event loop on :class:`SqliteDatabase`'s transactions (they take
microseconds; ``BEGIN IMMEDIATE`` and the fsync of a durable commit are what may wait, and the
database already keeps those off the loop). ``durable`` keeps its group-commit meaning.

A write transaction that changed sessions, users, memberships or tenants publishes a new
:class:`~meshfs_server.adapters.access_revision.AccessRevision` after it commits, so that every
process sharing the file forgets the tokens it resolved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from meshfs_server.adapters.access_revision import ACCESS_WRITE, AccessRevision
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.auth.store import Dialect, Migrations, Params, Row


class SqliteSession:
    """An open SQLite transaction behind the async session interface."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.changed_access = False
        """Whether a statement wrote what a token resolves to (see the module docstring)."""

    @property
    def dialect(self) -> Dialect:
        return "sqlite"

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        if not self.changed_access and ACCESS_WRITE.match(sql):
            self.changed_access = True
        return self.conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        if not self.changed_access and ACCESS_WRITE.match(sql):
            self.changed_access = True
        self.conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        return self.conn.execute(sql, params).fetchall()


class SqliteSql:
    """:class:`~meshfs_server.auth.store.AuthStore` on a :class:`SqliteDatabase` (which
    the caller owns and closes)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.revision = AccessRevision(Path(f"{db.path}-access"))

    @property
    def dialect(self) -> Dialect:
        return "sqlite"

    def access_revision(self) -> int | None:
        """Changes whenever any process sharing the file changed sessions, users,
        memberships or tenants."""
        return self.revision.current()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteSession]:
        """A read transaction (one snapshot)."""
        async with self.db.read() as conn:
            yield SqliteSession(conn)

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[SqliteSession]:
        """An immediate transaction; see :meth:`SqliteDatabase.write` for *durable*."""
        session = None
        async with self.db.write(durable=durable) as conn:
            session = SqliteSession(conn)
            yield session
        if session.changed_access:  # committed: now others may see it
            self.revision.publish()

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[SqliteSession]:
        """One non-durable write transaction around the statements (SQLite has one writer)."""
        async with self.write(durable=False) as session:
            yield session

    async def migrate(self, migrations: Migrations) -> None:
        """Apply pending scripts (see :meth:`SqliteDatabase.migrate`)."""
        await self.db.migrate(dict(migrations))

    async def close(self) -> None:
        """Nothing to release: the database belongs to the caller."""
