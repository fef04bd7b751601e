"""Identity's SQL port (:mod:`meshfs_server.auth.store`) on the embedded SQLite database.

Statements run inline on the event loop on :class:`SqliteDatabase`'s transactions (they take
microseconds; ``BEGIN IMMEDIATE`` and the fsync of a durable commit are what may wait, and the
database already keeps those off the loop). ``durable`` keeps its group-commit meaning.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.auth.store import Dialect, Migrations, Params, Row


class SqliteSession:
    """An open SQLite transaction behind the async session interface."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> Dialect:
        return "sqlite"

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self.conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
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

    @property
    def dialect(self) -> Dialect:
        return "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqliteSession]:
        """A read transaction (one snapshot)."""
        async with self.db.read() as conn:
            yield SqliteSession(conn)

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[SqliteSession]:
        """An immediate transaction; see :meth:`SqliteDatabase.write` for *durable*."""
        async with self.db.write(durable=durable) as conn:
            yield SqliteSession(conn)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[SqliteSession]:
        """One non-durable write transaction around the statements (SQLite has one writer)."""
        async with self.db.write(durable=False) as conn:
            yield SqliteSession(conn)

    async def migrate(self, migrations: Migrations) -> None:
        """Apply pending scripts (see :meth:`SqliteDatabase.migrate`)."""
        await self.db.migrate(dict(migrations))

    async def close(self) -> None:
        """Nothing to release: the database belongs to the caller."""
