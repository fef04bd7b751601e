"""The :class:`AuthStore` port: identity's short SQL transactions, on SQLite and Postgres alike.

Identity keeps one body of SQL for both databases. Statements use ``?`` placeholders and the
common subset of the two dialects (``INSERT ... ON CONFLICT``, ``COALESCE``, ``LIMIT``); the
Postgres adapter rewrites ``?`` to ``$1, $2, ...``. Rows are plain tuples on both.

Adapters: :class:`meshfs_server.adapters.sqlite_sql.SqliteSql` (on the embedded database file;
statements are microseconds and run inline) and
:class:`meshfs_server.adapters.postgres_sql.PostgresSql` (on an asyncpg pool). Which one the
server uses follows ``MESHFS_DATABASE_URL`` (see :mod:`meshfs_server.auth.storage`).

Transaction semantics both adapters give:

- ``read()``: one consistent snapshot, read only.
- ``write()``: the writes commit together or not at all. Two write transactions that update
  the same row are serialised (SQLite: one writer at a time; Postgres: the row lock), so a
  guarded update (``UPDATE ... WHERE used_at IS NULL``) succeeds in exactly one of them: that,
  not a read followed by a write, is how identity makes a check-then-act race-free.
- ``write(durable=False)``: returns once committed, before the commit is on disk; the next
  durable commit makes it durable too (SQLite: group commit; Postgres:
  ``synchronous_commit = off`` for that transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]
Params = Sequence[Any]
#: component -> ordered migration scripts (``;``-separated statements), per dialect.
Migrations = Mapping[str, Sequence[str]]


class SqlSession(Protocol):
    """One open transaction."""

    @property
    def dialect(self) -> Dialect:
        """Which database this is (for the rare statement the dialects spell differently)."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        ...


class AuthStore(Protocol):
    """Where identity's tables live: accounts, sessions, refresh tokens, device codes, keys,
    rate-limit leases, plans and the audit log (see :mod:`meshfs_server.auth.schema`)."""

    @property
    def dialect(self) -> Dialect:
        """Which database this is (selects the migration scripts)."""
        ...

    def read(self) -> AbstractAsyncContextManager[SqlSession]:
        """A read-only transaction: one consistent snapshot."""
        ...

    def access_revision(self) -> int | None:
        """A value that changes (in every process) as soon as a committed transaction changed
        sessions, users, memberships or tenants; None where that is not tracked. Lets a
        server remember resolved tokens without missing a revocation."""
        ...

    def write(self, *, durable: bool = True) -> AbstractAsyncContextManager[SqlSession]:
        """A write transaction; commits on normal exit, rolls back on an exception."""
        ...

    def autocommit(self) -> AbstractAsyncContextManager[SqlSession]:
        """A session outside any transaction: each statement commits by itself (one round
        trip for a single-statement update such as a rate-limit lease)."""
        ...

    async def migrate(self, migrations: Migrations) -> None:
        """Apply the scripts of each component not applied yet (each exactly once, even with
        several processes starting at once)."""
        ...

    async def close(self) -> None:
        """Release what this adapter owns (not a database it was handed)."""
        ...
