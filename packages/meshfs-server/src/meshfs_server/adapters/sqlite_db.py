"""One SQLite database file shared by the server's components (the embedded default).

Connections: one writer (every write transaction holds an asyncio lock, so writes are serialised
exactly as SQLite would serialise them anyway) and a small pool of readers (WAL mode lets them
read a consistent snapshot while a write commits). Statements are microseconds and run on the
event loop; ``BEGIN IMMEDIATE`` and ``COMMIT`` - the calls that may wait for a lock or fsync -
run in a worker thread so the loop never blocks on the disk.

Durability: WAL with group commit (see :mod:`.group_sync`): a durable transaction returns only
after an fsync of the WAL that started after its COMMIT, so an acknowledged commit survives
power loss - as with ``synchronous=FULL`` - while concurrent writers share fsyncs and none holds
the write lock during one.

Schema versions: each component (namespace, identity, ...) registers an ordered list of
migration scripts; ``schema_migrations`` records which have run.

Several processes (``meshfs-server serve --workers N``, and the ``admin`` commands) may share
one file: SQLite's own write lock serialises their write transactions, so a counter read and
bumped inside one (the feed's per-tenant sequence) stays gap-free and in commit order across
processes; each process's group commit batches its own fsyncs (an fsync of the WAL covers every
commit written before it, whichever process wrote it). Before ``BEGIN IMMEDIATE`` a writer takes
an exclusive ``flock`` of the ``-writer`` file beside the database, waited for in the writer
thread: the kernel wakes the next process the moment the lock is released, where SQLite's own
busy handler would poll with sleeps growing to 100 ms (two busy workers then spent most of their
time asleep, slower together than one alone).

Checkpoints (copying the WAL back into the database file, two fsyncs) run in the writer thread
after every :data:`CHECKPOINT_EVERY` rows changed, by the writer that crossed the mark, still
holding the locks (see :meth:`SqliteDatabase._checkpoint`); the event loop serves other requests
meanwhile. SQLite's automatic checkpoint, which would run inside ``COMMIT`` on the event loop,
only backs them up when the WAL grows past :data:`AUTOCHECKPOINT_PAGES` (one huge transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from meshfs_common.errors import UnavailableError
from meshfs_server.adapters.group_sync import GroupSync
from meshfs_server.adapters.private_files import private_dir, private_file, tighten_if_present

log = logging.getLogger("meshfs_server.sqlite")

Migrations = dict[str, Sequence[str]]
BUSY_TIMEOUT_MS = 10000
CHECKPOINT_EVERY = 1000
"""Rows changed by this process's commits between two background checkpoints (a small write
changes about ten)."""
AUTOCHECKPOINT_PAGES = 8192
"""WAL pages (32 MiB) past which a commit checkpoints itself, as a backstop."""

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # commits are fsynced by GroupSync, see above
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA temp_store=MEMORY",
    f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}",
)


def _connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


class SqliteDatabase:
    """Connections to one SQLite file; create with :meth:`open`."""

    def __init__(self, path: Path, writer: sqlite3.Connection, readers: list[sqlite3.Connection]):
        self.path = path
        self._writer = writer
        # BEGIN and COMMIT wait on locks and fsync; they get a thread of their own so that a
        # transaction holding the write lock never queues behind other blocking work.
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._wal = GroupSync(Path(f"{path}-wal"))
        self._write_lock = asyncio.Lock()
        self._writers_fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        self._stray: asyncio.Future[None] | None = None  # a lock wait given up, still running
        self._stray_begin: asyncio.Future[sqlite3.Cursor] | None = None  # a BEGIN wait given up
        self._checkpointed_at = 0  # the writer's total_changes at the last checkpoint
        self._checkpointer: sqlite3.Connection | None = None
        self._readers: asyncio.Queue[sqlite3.Connection] = asyncio.Queue()
        self._all_readers = readers
        for conn in readers:
            self._readers.put_nowait(conn)

    @classmethod
    async def open(cls, path: Path, *, readers: int = 4) -> SqliteDatabase:
        """Open (creating it 0600 if missing) the database file at *path*."""

        def connect_all() -> tuple[sqlite3.Connection, list[sqlite3.Connection]]:
            # SQLite gives its -wal and -shm files the database file's mode.
            private_dir(path.parent, tighten=False)
            private_file(path)
            for companion in ("-wal", "-shm", "-writer"):
                tighten_if_present(Path(f"{path}{companion}"))
            writer = _connect(path)
            return writer, [_connect(path) for _ in range(readers)]

        writer, pool = await asyncio.to_thread(connect_all)
        return cls(path, writer, pool)

    async def migrate(self, migrations: Migrations) -> None:
        """Apply every migration not yet recorded, each in its own transaction."""
        async with self.write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL,"
                " PRIMARY KEY (component, version))"
            )
        for component, scripts in migrations.items():
            for version, script in enumerate(scripts, start=1):
                async with self.write() as conn:
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE component = ? AND version = ?",
                        (component, version),
                    ).fetchone()
                    if done:
                        continue
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                        (component, version),
                    )

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction; commits on normal exit, rolls back on error.

        A durable transaction returns after its commit is on disk; ``durable=False`` returns
        at once (the next durable commit makes it durable too: the WAL is sequential).
        """
        async with self._write_lock:
            conn = self._writer
            await self._end_stray_begin(conn)
            await self._lock_writers()
            try:
                await self._begin(conn)
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                try:
                    conn.execute("COMMIT")  # written to the WAL, not yet fsynced
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                ticket = self._wal.ticket()
                if conn.total_changes - self._checkpointed_at >= CHECKPOINT_EVERY:
                    self._checkpointed_at = conn.total_changes
                    await self._checkpoint()
            finally:
                fcntl.flock(self._writers_fd, fcntl.LOCK_UN)
        if durable:
            await self._wal.wait(ticket)

    async def _lock_writers(self) -> None:
        """The writers' ``flock`` (see the module notes): inline when free, else waited for in
        the writer thread. A wait given up (cancelled, timed out) is finished - and its lock
        released - by the next writer before it asks, never left holding the lock."""
        if self._stray is not None:
            stray, self._stray = self._stray, None
            with contextlib.suppress(Exception):
                await asyncio.shield(stray)
                fcntl.flock(self._writers_fd, fcntl.LOCK_UN)
        try:
            fcntl.flock(self._writers_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiting = asyncio.get_running_loop().run_in_executor(
            self._writer_thread, fcntl.flock, self._writers_fd, fcntl.LOCK_EX
        )
        try:
            async with asyncio.timeout(BUSY_TIMEOUT_MS / 1000):
                await asyncio.shield(waiting)
        except BaseException as exc:
            self._stray = waiting
            if isinstance(exc, TimeoutError):
                raise UnavailableError("database is busy: another process holds it") from exc
            raise

    async def _checkpoint(self) -> None:
        """A checkpoint in the writer thread, while this writer still holds both locks: with no
        commit appended meanwhile it copies the whole WAL (unless a reader still needs part
        of it), so the next writer starts the WAL over, overwriting it in place - a WAL that
        only grows makes every fsync also journal the file's new size. The commit before it
        is already made: a failure here is logged, not raised."""
        job = asyncio.get_running_loop().run_in_executor(self._writer_thread, self._checkpoint_now)
        try:
            await asyncio.shield(job)  # a cancelled wait leaves the checkpoint to finish
        except Exception as exc:
            log.warning("checkpoint of %s failed: %s", self.path, exc)

    def _checkpoint_now(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = _connect(self.path)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``: inline when nobody else writes (the usual case: this process is
        the only writer), else waited for in the writer thread (another process, such as
        ``meshfs-server admin``, holds the lock) so the event loop never blocks on it."""
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            pass
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        begun = asyncio.get_running_loop().run_in_executor(
            self._writer_thread, conn.execute, "BEGIN IMMEDIATE"
        )
        try:
            await asyncio.shield(begun)
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"database is busy: {exc}") from exc
        except BaseException:
            # Given up (cancelled) while the thread still waits: the transaction it may yet
            # begin is rolled back by the next writer, before that one begins its own.
            self._stray_begin = begun
            raise

    async def _end_stray_begin(self, conn: sqlite3.Connection) -> None:
        stray, self._stray_begin = self._stray_begin, None
        if stray is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(stray)
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def read(self) -> Reading:
        """A read transaction on a pooled connection: one consistent snapshot."""
        return Reading(self._readers)

    async def check(self) -> None:
        async with self.read() as conn:
            conn.execute("SELECT 1").fetchone()

    async def close(self) -> None:
        async with self._write_lock:
            if self._stray is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._stray)
            await self._end_stray_begin(self._writer)
            self._writer.close()
            for conn in self._all_readers:
                conn.close()
        self._writer_thread.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
        os.close(self._writers_fd)  # releases the lock, should a stray wait hold it
        self._wal.close()


class Reading(AbstractAsyncContextManager[sqlite3.Connection]):
    """``async with db.read() as conn``: a pooled reader in one transaction, given back
    after. A class rather than a generator-based context manager: every read of every request
    enters one, and a generator costs several times as much to enter and leave."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: asyncio.Queue[sqlite3.Connection]) -> None:
        self._pool = pool

    async def __aenter__(self) -> sqlite3.Connection:
        conn = await self._pool.get()
        try:
            conn.execute("BEGIN")
        except BaseException:
            self._pool.put_nowait(conn)
            raise
        self._conn = conn
        return conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            self._conn.execute("COMMIT")
        finally:
            self._pool.put_nowait(self._conn)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]
