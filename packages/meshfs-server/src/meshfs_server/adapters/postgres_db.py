"""A Postgres database shared by the server's components (the production backend), on asyncpg.

Connections come from one pool. Transactions are short and never span object-store I/O:
read transactions are ``REPEATABLE READ READ ONLY`` (one consistent snapshot, never a
serialization failure); write transactions are ``READ COMMITTED`` and start by running a
*prepare* step (for the namespace: lock the tenant's row), which the caller uses to serialise
what must be serialised.

Failures are mapped once, here, so no asyncpg exception reaches a route:

- the database is down, restarting, refusing connections or too slow: ``UnavailableError``
  (503, retryable); the pool's connections are expired so the next request reconnects, and the
  server recovers without a restart;
- ``serialization_failure`` / ``deadlock_detected``: the start of a transaction (acquire, BEGIN,
  prepare) is retried by :func:`retrying` (bounded, jittered backoff); past the start the body
  belongs to the caller and cannot be replayed, so the conflict becomes a retryable 503.

Schema versions: each component registers an ordered list of SQL scripts; ``schema_migrations``
records which have run. Migrations run under a transaction-scoped advisory lock, so several
server processes starting at once apply each script exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg
import asyncpg.exceptions as pgerr

from meshfs_common.errors import BadRequestError, MeshFSError, UnavailableError

log = logging.getLogger("meshfs_server.postgres")

if TYPE_CHECKING:  # generic only in the stubs
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]
else:
    Connection = Any
    Pool = asyncpg.Pool
Migrations = Mapping[str, Sequence[str]]
T = TypeVar("T")

#: Conflicts that a fresh attempt of the same transaction resolves.
RETRYABLE = (pgerr.SerializationError, pgerr.DeadlockDetectedError)
#: The database cannot serve right now (down, restarting, overloaded, too slow).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08, including ConnectionDoesNotExistError
    asyncpg.InterfaceError,  # e.g. "connection is closed"
    pgerr.CannotConnectNowError,
    pgerr.AdminShutdownError,
    pgerr.CrashShutdownError,
    pgerr.TooManyConnectionsError,
    pgerr.QueryCanceledError,  # statement_timeout
    pgerr.LockNotAvailableError,
)
MAX_ATTEMPTS = 4
_MIGRATION_LOCK = 0x6D65736866  # "meshf": the advisory lock key migrations take


def is_connection_loss(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE) and not isinstance(
        exc, pgerr.QueryCanceledError | pgerr.LockNotAvailableError | TimeoutError
    )


def translate(exc: BaseException) -> MeshFSError | None:
    """The MeshFS error for an asyncpg failure, or None when it is not a database failure."""
    if isinstance(exc, MeshFSError):
        return None
    if isinstance(exc, RETRYABLE):
        return UnavailableError("the database reported a conflict; retry the request")
    if isinstance(exc, TimeoutError):
        return UnavailableError("the database did not answer in time")
    if isinstance(exc, UNAVAILABLE):
        return UnavailableError(f"the database is unavailable ({type(exc).__name__})")
    if isinstance(exc, pgerr.CharacterNotInRepertoireError):
        # Postgres text cannot hold NUL; no path, name or id of MeshFS contains one, so a
        # request carrying one names nothing that exists (SQLite just finds no match).
        return BadRequestError("a value of the request contains a NUL character")
    return None


async def retrying(
    operation: Callable[[], Awaitable[T]], *, attempts: int = MAX_ATTEMPTS, what: str = "query"
) -> T:
    """Run *operation*, again on serialization failures and deadlocks (jittered backoff).

    The one retry helper of the Postgres adapters; *operation* must be a whole transaction (or
    its not-yet-shared start), so that running it again is safe.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise
            delay = min(0.5, 0.01 * 2**attempt) * (0.5 + random.random())
            log.debug("%s: %s; retry %d in %.3fs", what, type(exc).__name__, attempt, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class PostgresDatabase:
    """A connection pool on one Postgres database; create with :meth:`open`."""

    def __init__(self, pool: Pool, dsn: str, timeout: float) -> None:
        self.pool = pool
        self.dsn = dsn
        self.timeout = timeout
        self._closed = False

    @classmethod
    async def open(
        cls, dsn: str, *, pool_size: int = 10, deadline: float = 5.0
    ) -> PostgresDatabase:
        """Create the pool (connections open lazily, so a database that is down at start
        makes requests fail with 503 rather than the server refuse to start)."""
        pool = asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=pool_size,
            timeout=deadline,  # connect
            command_timeout=None,  # statement_timeout below bounds every statement server-side
            max_inactive_connection_lifetime=60.0,
            server_settings={
                "application_name": "meshfs-server",
                "statement_timeout": str(int(deadline * 1000)),
                "lock_timeout": str(int(deadline * 1000)),
                # A transaction whose holder died cannot keep a tenant locked for long.
                "idle_in_transaction_session_timeout": "30000",
            },
        )
        try:
            await pool
        except BaseException as exc:
            pool.terminate()
            failure = translate(exc)
            if failure is not None:
                raise failure from exc
            raise
        return cls(pool, dsn, deadline)

    async def _lost(self, exc: BaseException) -> None:
        if is_connection_loss(exc):
            # Every pooled connection probably died with the server: reconnect lazily.
            await _quietly(self.pool.expire_connections())

    @asynccontextmanager
    async def transaction(
        self,
        *,
        readonly: bool = False,
        prepare: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> AsyncIterator[Connection]:
        """A transaction on a pooled connection; commits on normal exit, rolls back on error.

        *prepare* runs first inside the transaction; the start (acquire, BEGIN, prepare) is
        retried on conflicts and on a connection that turns out to be dead, because nothing
        has been shared with the caller yet.
        """
        deadline = time.monotonic() + self.timeout
        isolation: Literal["repeatable_read", "read_committed"] = (
            "repeatable_read" if readonly else "read_committed"
        )

        async def start() -> tuple[Connection, Any]:
            conn: Connection = await self.pool.acquire(timeout=self.timeout)
            ended = True  # no transaction left open on the connection
            try:
                tx = conn.transaction(isolation=isolation, readonly=readonly)
                ended = False
                await tx.start()
                try:
                    if prepare is not None:
                        await prepare(conn)
                except BaseException:
                    ended = await _quietly(tx.rollback())
                    raise
            except BaseException:
                await self._release(conn, ended=ended)
                raise
            return conn, tx

        async def start_with_reconnect() -> tuple[Connection, Any]:
            while True:
                try:
                    return await start()
                except UNAVAILABLE as exc:
                    await self._lost(exc)
                    if not is_connection_loss(exc) or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)

        try:
            conn, tx = await retrying(start_with_reconnect, what="begin")
        except BaseException as exc:
            failure = translate(exc)
            if failure is not None:
                raise failure from exc
            raise
        ended = False
        try:
            try:
                yield conn
            except BaseException:
                ended = await _quietly(tx.rollback())
                raise
            await tx.commit()
            ended = True
        except BaseException as exc:
            await self._lost(exc)
            failure = translate(exc)
            if failure is not None:
                raise failure from exc
            raise
        finally:
            await self._release(conn, ended=ended)

    async def _release(self, conn: Connection, *, ended: bool) -> None:
        """Hand a connection back to the pool. One whose transaction did not end (its commit
        or rollback failed or was interrupted, e.g. the database went away) is terminated
        first: the pool never gets a connection that may still be inside a transaction."""
        if not ended:
            with contextlib.suppress(asyncpg.InterfaceError):  # the pool took it back already
                conn.terminate()
        await _quietly(self.pool.release(conn))

    async def run(self, work: Callable[[Connection], Awaitable[T]], *, what: str = "query") -> T:
        """Run *work* as one whole transaction, retried on conflicts; errors translated."""

        async def attempt() -> T:
            async with self.pool.acquire(timeout=self.timeout) as conn, conn.transaction():
                return await work(conn)

        try:
            return await retrying(attempt, what=what)
        except BaseException as exc:
            await self._lost(exc)
            failure = translate(exc)
            if failure is not None:
                raise failure from exc
            raise

    async def migrate(self, migrations: Migrations) -> list[str]:
        """Apply every migration not yet recorded, each in its own transaction; returns the
        ``component:version`` of those applied now."""
        applied: list[str] = []

        async def setup(conn: Connection) -> None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL,"
                " applied_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (component, version))"
            )

        await self.run(setup, what="migrate")
        for component, scripts in migrations.items():
            for version, script in enumerate(scripts, start=1):

                async def step(conn: Connection, c: str = component, v: int = version,
                               sql: str = script) -> bool:  # fmt: skip
                    await conn.execute("SET LOCAL statement_timeout = 0")
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                    done = await conn.fetchval(
                        "SELECT 1 FROM schema_migrations WHERE component = $1 AND version = $2",
                        c, v,
                    )  # fmt: skip
                    if done:
                        return False
                    await conn.execute(sql)  # several statements: the simple query protocol
                    await conn.execute(
                        "INSERT INTO schema_migrations (component, version, applied_at)"
                        " VALUES ($1, $2, $3)",
                        c, v, time.time(),
                    )  # fmt: skip
                    return True

                if await self.run(step, what="migrate"):
                    applied.append(f"{component}:{version}")
        return applied

    async def pending_migrations(self, migrations: Migrations) -> list[str]:
        """``component:version`` of the migrations not yet applied."""

        async def read(conn: Connection) -> set[tuple[str, int]]:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not exists:
                return set()
            rows = await conn.fetch("SELECT component, version FROM schema_migrations")
            return {(r[0], r[1]) for r in rows}

        done = await self.run(read)
        return [
            f"{component}:{version}"
            for component, scripts in migrations.items()
            for version in range(1, len(scripts) + 1)
            if (component, version) not in done
        ]

    async def check(self) -> None:
        """Raise ``UnavailableError`` unless the database answers a query."""
        await self.run(lambda conn: conn.fetchval("SELECT 1"), what="check")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self.pool.close(), self.timeout)
        except Exception:  # a dead server or a stuck connection: drop them all
            self.pool.terminate()


async def _quietly(awaitable: Awaitable[Any]) -> bool:
    """Clean-up that must not mask the error being handled (a dead connection fails it too);
    True when it succeeded."""
    try:
        await awaitable
    except Exception as exc:  # the connection is already broken; the pool replaces it
        log.debug("clean-up after a failed transaction: %s", exc)
        return False
    return True
