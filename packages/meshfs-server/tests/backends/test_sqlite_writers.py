"""Writers of several processes on one SQLite file (``serve --workers N``): each waits its turn
on the writers' lock and is woken when it is released; a write given up while waiting (its
request cancelled) never leaves the lock held, so the other processes keep writing.

Another process is stood for by a second open of the ``-writer`` lock file (``flock`` locks
belong to an open file, so two opens in one process exclude each other as two processes do).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshfs_server_wait import wait_until

from meshfs_server.adapters.sqlite_db import SqliteDatabase


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = await SqliteDatabase.open(tmp_path / "meshfs.sqlite3")
    async with database.write() as conn:
        conn.execute("CREATE TABLE notes (body TEXT NOT NULL)")
    yield database
    await database.close()


def _waiting_for(lock_file: str) -> bool:
    """This process waits for a ``flock`` of *lock_file* (``/proc/locks`` lists blocked
    requests with ``->``, then the pid and ``major:minor:inode``)."""
    inode = f":{os.stat(lock_file).st_ino} "
    pid = f" {os.getpid()} "
    return any(
        "->" in line and "FLOCK" in line and pid in line and inode in line
        for line in Path("/proc/locks").read_text().splitlines()
    )


async def _write(db: SqliteDatabase, body: str) -> None:
    async with db.write() as conn:
        conn.execute("INSERT INTO notes (body) VALUES (?)", (body,))


async def _bodies(db: SqliteDatabase) -> list[str]:
    async with db.read() as conn:
        return [row[0] for row in conn.execute("SELECT body FROM notes ORDER BY rowid")]


async def test_a_write_waits_for_another_process_and_goes_on_when_it_is_done(
    db: SqliteDatabase,
) -> None:
    lock_file = f"{db.path}-writer"
    other = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        waiting = asyncio.create_task(_write(db, "after the other process"))
        await wait_until(lambda: _waiting_for(lock_file), "the write to wait for the other process")
        assert not waiting.done()
        fcntl.flock(other, fcntl.LOCK_UN)
        await asyncio.wait_for(waiting, 10)
    finally:
        os.close(other)
    assert await _bodies(db) == ["after the other process"]


async def test_a_write_given_up_while_waiting_does_not_keep_other_processes_out(
    db: SqliteDatabase,
) -> None:
    lock_file = f"{db.path}-writer"
    other = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        given_up = asyncio.create_task(_write(db, "never written"))
        await wait_until(lambda: _waiting_for(lock_file), "the write to wait for the other process")
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        fcntl.flock(other, fcntl.LOCK_UN)

        await asyncio.wait_for(_write(db, "next"), 10)
        # The lock is free again for the other process once this one's write is done.
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)
    assert await _bodies(db) == ["next"]


async def test_a_write_given_up_while_a_process_outside_the_lock_writes_leaves_no_transaction_open(
    db: SqliteDatabase,
) -> None:
    """A process that writes the file without the writers' lock (another program, an older
    server) makes ``BEGIN IMMEDIATE`` wait in the writer thread; a write given up then must not
    leave the transaction that thread begins open on the writer's connection."""
    outsider = sqlite3.connect(db.path, isolation_level=None)
    try:
        outsider.execute("BEGIN IMMEDIATE")
        given_up = asyncio.create_task(_write(db, "never written"))
        await wait_until(lambda: db._write_lock.locked(), "the write to start")
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        outsider.execute("INSERT INTO notes (body) VALUES ('outsider')")
        outsider.execute("COMMIT")

        await asyncio.wait_for(_write(db, "next"), 20)
    finally:
        outsider.close()
    assert await _bodies(db) == ["outsider", "next"]
