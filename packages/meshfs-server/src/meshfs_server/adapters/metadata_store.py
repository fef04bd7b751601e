"""The metadata port (:class:`~meshfs_server.domain.ports.MetadataStore`) on SQL, written once.

The tables are in :mod:`.metadata_schema`, the reads in :mod:`.metadata_reads`, the writes in
:mod:`.metadata_writes`; all of it runs on the server's one SQL session layer (``?``
placeholders, rows as tuples: :mod:`.sqlite_sql`, :mod:`.postgres_sql`). A
:class:`MetadataEngine` supplies what the two databases really do differently:

- transactions: SQLite has one writer (an asyncio lock) and group commit; Postgres starts a
  transaction on a pooled connection, retrying its start on conflicts, and holds the tenant
  with a row lock (``SELECT ... FOR UPDATE`` on ``ns_tenants``: :attr:`row_lock`), so writers
  of one tenant are serialised and writers of different tenants run in parallel;
- matching a list of names: batched ``IN (?, ...)`` on SQLite (bounded parameters),
  ``= ANY(?::text[])`` on Postgres;
- the doorbell: Postgres sends ``NOTIFY`` with each event (delivered at commit) so other
  server processes wake their subscribers; SQLite serves one process, which rings in memory.

The garbage collector's claims and releases run tenant by tenant, each in one transaction that
holds the tenant, so a claim never interleaves with a commit about to reference the chunk.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, TypeVar

from meshfs_server.adapters.metadata_reads import SqlReadTx
from meshfs_server.adapters.metadata_writes import SqlWriteTx, ensure_tenant
from meshfs_server.domain.ports import GarbageBatch

if TYPE_CHECKING:
    from meshfs_server.adapters.postgres_sql import PostgresSession
    from meshfs_server.adapters.sqlite_sql import SqliteSession

    #: An open transaction of the server's SQL session layer.
    Session = SqliteSession | PostgresSession

T = TypeVar("T")
X = TypeVar("X")
Prepare = Callable[["Session"], Awaitable[None]]
#: SQL that matches a column against a list, with its parameters.
Match = tuple[str, tuple[object, ...]]

_TENANT_SCAN = 100  # tenants the collector visits per claim


class MetadataEngine(Protocol):
    """What one database engine does its own way under the metadata store."""

    #: Appended to a ``SELECT`` of a tenant's ``ns_tenants`` row to hold the tenant until the
    #: transaction ends ("" where the engine's one writer holds everything already).
    row_lock: str

    def read(self, bind: Callable[[Session], X]) -> AbstractAsyncContextManager[X]:
        """A read-only transaction (one consistent snapshot), handed out as *bind* makes it."""
        ...

    def write(
        self, prepare: Prepare, bind: Callable[[Session], X], *, durable: bool
    ) -> AbstractAsyncContextManager[X]:
        """A write transaction that runs *prepare* first (retried with the transaction's
        start where the engine retries starts), handed out as *bind* makes it; see
        :meth:`SqlMetadataStore.write`."""
        ...

    async def transact(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run *work* as one whole write transaction (retried on conflicts where they occur)."""
        ...

    def any_of(self, column: str, values: Sequence[str]) -> list[Match]:
        """``column`` matching the distinct *values*: a condition per batch (none for none)."""
        ...

    async def ring(self, session: Session, tenant_id: str, instance: str) -> None:
        """Announce, at commit, that *tenant_id*'s feed grew (*instance*: this process)."""
        ...

    async def check(self) -> None:
        """Raise ``UnavailableError`` unless the database answers."""
        ...

    async def close(self) -> None:
        """Release the database."""
        ...


class SqlMetadataStore:
    """The metadata port on a :class:`MetadataEngine`."""

    def __init__(self, engine: MetadataEngine, instance: str = "") -> None:
        self.engine = engine
        self.instance = instance  # names this process in the doorbells it rings

    def read(self, tenant_id: str) -> AbstractAsyncContextManager[SqlReadTx]:
        """A consistent read of *tenant_id*'s namespace."""
        return self.engine.read(lambda session: SqlReadTx(session, tenant_id, self.engine))

    def write(
        self, tenant_id: str, *, durable: bool = True
    ) -> AbstractAsyncContextManager[SqlWriteTx]:
        """A write transaction holding *tenant_id* (created on first use). ``durable=False``
        returns before the commit is on disk; the next durable commit covers it too."""

        async def hold(session: Session) -> None:
            await ensure_tenant(session, tenant_id, self.engine)

        def bind(session: Session) -> SqlWriteTx:
            return SqlWriteTx(session, tenant_id, self.engine, self.instance)

        return self.engine.write(hold, bind, durable=durable)

    async def claim_garbage(self, *, older_than: float, limit: int) -> GarbageBatch:
        now = time.time()
        async with self.engine.read(_session) as session:
            rows = await session.fetchall(
                "SELECT tenant_id FROM chunks WHERE collecting OR (refs = 0 AND touched_at < ?)"
                " UNION SELECT tenant_id FROM uploads WHERE expires_at < ?"
                " UNION SELECT tenant_id FROM chunk_holds WHERE expires_at < ?"
                " LIMIT ?",
                (older_than, now, now, _TENANT_SCAN),
            )
        batch = GarbageBatch()
        for tenant_id in sorted(r[0] for r in rows):
            room = limit - len(batch.chunks)
            if room <= 0:
                break

            async def claim(
                session: Session, tenant: str = tenant_id, room: int = room
            ) -> list[str]:
                await self._hold(session, tenant)
                await session.execute(
                    "DELETE FROM uploads WHERE tenant_id = ? AND expires_at < ?", (tenant, now)
                )
                await session.execute(
                    "DELETE FROM chunk_holds WHERE tenant_id = ? AND expires_at < ?", (tenant, now)
                )
                rows = await session.fetchall(
                    # Earlier claims whose deletion did not finish are claimed again.
                    "SELECT c.chunk_hash FROM chunks c WHERE c.tenant_id = ? AND (c.collecting"
                    "  OR (c.refs = 0 AND c.touched_at < ? AND NOT EXISTS ("
                    "   SELECT 1 FROM chunk_holds h"
                    "   WHERE h.tenant_id = c.tenant_id AND h.chunk_hash = c.chunk_hash)))"
                    " LIMIT ?",
                    (tenant, older_than, room),
                )
                names = [r[0] for r in rows]
                for match, params in self.engine.any_of("chunk_hash", names):
                    await session.execute(
                        f"UPDATE chunks SET collecting = TRUE WHERE tenant_id = ? AND {match}",
                        (tenant, *params),
                    )
                return names

            batch.chunks.extend((tenant_id, name) for name in await self.engine.transact(claim))
        return batch

    async def claim_orphans(self, candidates: Sequence[tuple[str, str]]) -> GarbageBatch:
        batch = GarbageBatch()
        for tenant_id, names in sorted(_by_tenant(candidates).items()):

            async def claim(session: Session, tenant: str = tenant_id,
                            hashes: list[str] = names) -> list[str]:  # fmt: skip
                # Only tenants of this database: the store may hold others' (never touch them).
                if not await self._hold(session, tenant):
                    return []
                claimed: list[str] = []
                for name in hashes:
                    held = await session.fetchone(
                        "SELECT 1 FROM chunk_holds WHERE tenant_id = ? AND chunk_hash = ?",
                        (tenant, name),
                    )
                    if held is None and await session.execute(
                        "INSERT INTO chunks (tenant_id, chunk_hash, size, refs, stored,"
                        " collecting, touched_at) VALUES (?, ?, 0, 0, FALSE, TRUE, ?)"
                        " ON CONFLICT (tenant_id, chunk_hash) DO NOTHING",
                        (tenant, name, time.time()),
                    ):
                        claimed.append(name)
                return claimed

            batch.chunks.extend((tenant_id, name) for name in await self.engine.transact(claim))
        return batch

    async def release_garbage(self, batch: GarbageBatch) -> None:
        for tenant_id, names in sorted(_by_tenant(batch.chunks).items()):

            async def release(session: Session, tenant: str = tenant_id,
                              hashes: list[str] = names) -> None:  # fmt: skip
                await self._hold(session, tenant)
                for match, params in self.engine.any_of("chunk_hash", hashes):
                    await session.execute(
                        f"DELETE FROM chunks WHERE tenant_id = ? AND {match} AND collecting",
                        (tenant, *params),
                    )
                await session.execute(
                    "UPDATE ns_tenants SET gc_epoch = gc_epoch + 1 WHERE tenant_id = ?", (tenant,)
                )

            await self.engine.transact(release)

    async def _hold(self, session: Session, tenant_id: str) -> bool:
        """Hold an existing tenant for the rest of the transaction; False if it has none."""
        found = await session.fetchone(
            f"SELECT 1 FROM ns_tenants WHERE tenant_id = ?{self.engine.row_lock}", (tenant_id,)
        )
        return found is not None

    async def check(self) -> None:
        await self.engine.check()

    async def close(self) -> None:
        await self.engine.close()


def _session(session: Session) -> Session:
    return session


def _by_tenant(chunks: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for tenant_id, name in chunks:
        grouped.setdefault(tenant_id, []).append(name)
    return grouped
