"""Identity's SQL port (:mod:`meshfs_server.auth.store`) on Postgres (asyncpg).

Statements are written with ``?`` placeholders for both databases; here they are rewritten to
``$1, $2, ...`` once per distinct statement (a ``?`` inside a quoted literal or identifier is
left alone) and asyncpg prepares and caches them per connection. Rows come back as tuples,
as from sqlite3.

Transactions come from :class:`PostgresDatabase` (its pool, its retries of the start of a
transaction and its mapping of a database outage to a 503). Reads are ``REPEATABLE READ READ
ONLY`` snapshots; writes are ``READ COMMITTED``, where identity's guarded updates (``UPDATE ...
WHERE used_at IS NULL``) wait for a concurrent writer of the same row and then re-check the
condition, so exactly one of two racing transactions wins. A ``durable=False`` write sets
``synchronous_commit = off`` for itself: it returns before its WAL record is flushed, and the
next durable commit flushes it too - the same promise as SQLite's group commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache

from meshfs_server.adapters.postgres_db import Connection, PostgresDatabase, translate
from meshfs_server.auth.store import Dialect, Migrations, Params, Row


@lru_cache(maxsize=1024)
def to_dollar(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (not inside '...' literals or "..." names)."""
    out: list[str] = []
    number = 0
    quote: str | None = None
    for char in sql:
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "?":
            number += 1
            out.append(f"${number}")
            continue
        out.append(char)
    return "".join(out)


def _rowcount(status: str) -> int:
    """The row count in a command tag (``UPDATE 3``, ``INSERT 0 1``, ``DELETE 0``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresSession:
    """An open asyncpg transaction behind the async session interface."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> Dialect:
        return "postgres"

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return _rowcount(await self.conn.execute(to_dollar(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        await self.conn.executemany(to_dollar(sql), [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        row = await self.conn.fetchrow(to_dollar(sql), *params)
        return None if row is None else tuple(row)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        return [tuple(r) for r in await self.conn.fetch(to_dollar(sql), *params)]


async def _not_durable(conn: Connection) -> None:
    await conn.execute("SET LOCAL synchronous_commit = off")


class PostgresSql:
    """:class:`~meshfs_server.auth.store.AuthStore` on a :class:`PostgresDatabase`.

    With *owned*, :meth:`close` closes the database's pool too.
    """

    def __init__(self, db: PostgresDatabase, *, owned: bool = False) -> None:
        self.db = db
        self._owned = owned

    @property
    def dialect(self) -> Dialect:
        return "postgres"

    def access_revision(self) -> int | None:
        """Not tracked: server processes on other hosts share nothing but the database, so
        every request reads the session (a revocation applies on the next request)."""
        return None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresSession]:
        """A read-only snapshot transaction."""
        async with self.db.transaction(readonly=True) as conn:
            yield PostgresSession(conn)

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[PostgresSession]:
        """A read-committed write transaction (see the module docstring for *durable*)."""
        async with self.db.transaction(prepare=None if durable else _not_durable) as conn:
            yield PostgresSession(conn)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[PostgresSession]:
        """A pooled connection with no transaction open: each statement commits by itself."""
        try:
            async with self.db.pool.acquire(timeout=self.db.timeout) as conn:
                yield PostgresSession(conn)
        except BaseException as exc:
            failure = translate(exc)
            if failure is not None:
                raise failure from exc
            raise

    async def migrate(self, migrations: Migrations) -> None:
        """Apply pending scripts under the migration advisory lock (once across processes)."""
        await self.db.migrate(migrations)

    async def close(self) -> None:
        """Close the pool when this adapter owns it."""
        if self._owned:
            await self.db.close()
