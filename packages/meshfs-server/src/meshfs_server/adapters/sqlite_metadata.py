"""The metadata store on the embedded SQLite database (the default backend).

Only what SQLite does its own way is here (see :class:`.metadata_store.MetadataEngine`): one
writer at a time (:class:`SqliteDatabase`'s write lock) holds every tenant, so no row lock is
needed; durable commits share WAL fsyncs (group commit, outside the write lock); lists of names
are matched in batches that stay below SQLite's bound-parameter limit; and the doorbell rings
in memory (one process per database file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from meshfs_server.adapters.metadata_schema import namespace_migrations
from meshfs_server.adapters.metadata_store import Match, Prepare, SqlMetadataStore
from meshfs_server.adapters.sqlite_db import Reading, SqliteDatabase
from meshfs_server.adapters.sqlite_sql import SqliteSession

if TYPE_CHECKING:
    from meshfs_server.adapters.metadata_store import Session

T = TypeVar("T")
X = TypeVar("X")
NAMESPACE_MIGRATIONS: list[str] = namespace_migrations("sqlite")

_BATCH = 400  # stay well below SQLite's bound-parameter limit


class _BoundRead(AbstractAsyncContextManager[X]):
    """A read transaction handed out as *bind* makes it (a class: see :class:`Reading`)."""

    __slots__ = ("_bind", "_reading")

    def __init__(self, reading: Reading, bind: Callable[[Session], X]) -> None:
        self._reading = reading
        self._bind = bind

    async def __aenter__(self) -> X:
        conn = await self._reading.__aenter__()
        try:
            return self._bind(SqliteSession(conn))
        except BaseException:
            await self._reading.__aexit__()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self._reading.__aexit__(*exc)


class SqliteEngine:
    """:class:`~.metadata_store.MetadataEngine` on a :class:`SqliteDatabase`."""

    row_lock = ""  # the one writer holds every tenant

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def read(self, bind: Callable[[Session], X]) -> AbstractAsyncContextManager[X]:
        return _BoundRead(self.db.read(), bind)

    @asynccontextmanager
    async def write(
        self, prepare: Prepare, bind: Callable[[Session], X], *, durable: bool
    ) -> AsyncIterator[X]:
        async with self.db.write(durable=durable) as conn:
            session = SqliteSession(conn)
            await prepare(session)
            yield bind(session)

    async def transact(self, work: Callable[[Session], Awaitable[T]]) -> T:
        async with self.db.write() as conn:
            return await work(SqliteSession(conn))

    def any_of(self, column: str, values: Sequence[str]) -> list[Match]:
        distinct = sorted(set(values))
        return [
            (f"{column} IN ({','.join('?' * len(batch))})", tuple(batch))
            for batch in (distinct[i : i + _BATCH] for i in range(0, len(distinct), _BATCH))
        ]

    async def ring(self, session: Session, tenant_id: str, instance: str) -> None:
        """Nothing to send: the process's in-memory bus rings its subscribers."""

    async def check(self) -> None:
        await self.db.check()

    async def close(self) -> None:
        await self.db.close()


class SqliteMetadataStore(SqlMetadataStore):
    """The metadata port on a :class:`SqliteDatabase`."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__(SqliteEngine(db))
        self.db = db

    @classmethod
    async def open(cls, db: SqliteDatabase) -> SqliteMetadataStore:
        """The store on *db*, its pending migrations applied."""
        await db.migrate({"namespace": NAMESPACE_MIGRATIONS})
        return cls(db)
