"""Group commit: many transactions, one fsync.

SQLite in WAL mode appends each commit to the ``-wal`` file. With ``synchronous=NORMAL`` a
commit is written but not fsynced; an fsync of the WAL file then makes it - and every commit
before it - durable, exactly as ``synchronous=FULL`` would have, but several writers can share
one fsync, and none holds the write lock while the disk works.

A committer takes a ticket right after COMMIT (under the write lock, so tickets follow commit
order) and waits until an fsync that started after its commit has finished.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class GroupSync:
    """Coalesced fsyncs of one file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="wal-fsync")
        self._issued = 0  # tickets handed out
        self._durable = 0  # tickets covered by a finished fsync
        self._running: asyncio.Future[None] | None = None

    def ticket(self) -> int:
        """Call right after a commit: the number of the fsync that will cover it."""
        self._issued += 1
        return self._issued

    async def wait(self, ticket: int) -> None:
        """Return once the commit behind *ticket* is on disk."""
        while self._durable < ticket:
            if self._running is None:
                self._running = asyncio.ensure_future(self._fsync(self._issued))
            # Shared by every waiter; one waiter being cancelled must not cancel the fsync.
            await asyncio.shield(self._running)

    async def _fsync(self, covers: int) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sync_file)
            self._durable = max(self._durable, covers)
        finally:
            self._running = None

    def _sync_file(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY)
        os.fsync(self._fd)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
