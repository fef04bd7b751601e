"""The metadata store on Postgres (the production backend).

Only what Postgres does its own way is here (see :class:`.metadata_store.MetadataEngine`):

- Every write transaction starts by holding its tenant: the tenant's ``ns_tenants`` row is
  locked ``FOR UPDATE`` (created, with the root, on first use), so the writers of one tenant
  are serialised and each sees everything committed before it, while writers of different
  tenants run in parallel. The sequence is read and bumped under that lock, so sequence
  numbers are gap-free and in commit order. The start (BEGIN and the lock) is retried on
  conflicts by :class:`PostgresDatabase`; the collector's per-tenant transactions are retried
  whole. Lock order is always tenant row first, then that tenant's rows: no deadlocks between
  our own transactions; conflicts that still happen are retried or become retryable 503s.
- A ``durable=False`` write sets ``synchronous_commit = off`` for itself: it returns before
  its WAL is flushed, and the WAL is sequential, so the next durable commit flushes it too.
- Lists of names are matched with one array parameter (``= ANY(?::text[])``).
- ``append_event`` sends ``NOTIFY meshfs_feed, '<tenant_id> <instance>'``; Postgres delivers
  it only when (and if) the transaction commits, once per transaction. Other server processes
  listening on the channel (:mod:`.postgres_notify`) ring their subscribers, who read the feed
  from the table - the table is the truth, the notification only a doorbell.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from meshfs_server.adapters.metadata_schema import namespace_migrations
from meshfs_server.adapters.metadata_store import Match, Prepare, SqlMetadataStore
from meshfs_server.adapters.postgres_db import Connection, PostgresDatabase
from meshfs_server.adapters.postgres_sql import PostgresSession

if TYPE_CHECKING:
    from meshfs_server.adapters.metadata_store import Session

T = TypeVar("T")
X = TypeVar("X")
FEED_CHANNEL = "meshfs_feed"
NAMESPACE_MIGRATIONS: list[str] = namespace_migrations("postgres")


class PostgresEngine:
    """:class:`~.metadata_store.MetadataEngine` on a :class:`PostgresDatabase`."""

    row_lock = " FOR UPDATE"

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db

    @asynccontextmanager
    async def read(self, bind: Callable[[Session], X]) -> AsyncIterator[X]:
        async with self.db.transaction(readonly=True) as conn:
            yield bind(PostgresSession(conn))

    @asynccontextmanager
    async def write(
        self, prepare: Prepare, bind: Callable[[Session], X], *, durable: bool
    ) -> AsyncIterator[X]:
        async def start(conn: Connection) -> None:
            if not durable:
                await conn.execute("SET LOCAL synchronous_commit = off")
            await prepare(PostgresSession(conn))

        async with self.db.transaction(prepare=start) as conn:
            yield bind(PostgresSession(conn))

    async def transact(self, work: Callable[[Session], Awaitable[T]]) -> T:
        async def attempt(conn: Connection) -> T:
            return await work(PostgresSession(conn))

        return await self.db.run(attempt, what="collect")

    def any_of(self, column: str, values: Sequence[str]) -> list[Match]:
        if not values:
            return []
        return [(f"{column} = ANY(?::text[])", (sorted(set(values)),))]

    async def ring(self, session: Session, tenant_id: str, instance: str) -> None:
        # Postgres folds identical notifications of one transaction into one.
        await session.execute("SELECT pg_notify(?, ?)", (FEED_CHANNEL, f"{tenant_id} {instance}"))

    async def check(self) -> None:
        await self.db.check()

    async def close(self) -> None:
        await self.db.close()


class PostgresMetadataStore(SqlMetadataStore):
    """The metadata port on a :class:`PostgresDatabase`."""

    def __init__(self, db: PostgresDatabase, instance: str = "") -> None:
        super().__init__(PostgresEngine(db), instance)
        self.db = db

    @classmethod
    async def open(
        cls, db: PostgresDatabase, *, migrate: bool = True, instance: str = ""
    ) -> PostgresMetadataStore:
        """The store on *db*; applies pending migrations when *migrate* (else the server
        expects ``meshfs-server migrate`` to have run). *instance* names this process in the
        feed notifications it sends."""
        if migrate:
            await db.migrate({"namespace": NAMESPACE_MIGRATIONS})
        return cls(db, instance)
