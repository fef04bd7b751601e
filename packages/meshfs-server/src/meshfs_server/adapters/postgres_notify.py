"""The doorbell between server processes: Postgres LISTEN/NOTIFY on the feed channel.

Every transaction that appends events sends ``NOTIFY meshfs_feed, '<tenant_id> <instance>'``
(see :mod:`meshfs_server.adapters.postgres_metadata`); Postgres delivers it only if the
transaction commits, after the events are visible. Each server process keeps one dedicated
connection listening on the channel and rings its local subscribers of that tenant, who then
read the new events from the feed table - the truth. Notifications from this process itself
are ignored (its subscribers already got the events with their payload).

A notification is never the only way to learn about a change: when the listening connection
drops (Postgres restarted) the listener reconnects with backoff and rings every tenant with
local subscribers, because whatever was notified meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import asyncpg

from meshfs_server.adapters.postgres_metadata import FEED_CHANNEL

log = logging.getLogger("meshfs_server.doorbell")


class PostgresDoorbell:
    """Listens for other processes' commits and rings ``ring(tenant_id)`` for each."""

    def __init__(
        self,
        dsn: str,
        instance: str,
        ring: Callable[[str], None],
        ring_all: Callable[[], None],
        *,
        timeout: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.instance = instance
        self.ring = ring
        self.ring_all = ring_all
        self.timeout = timeout
        self.listening = asyncio.Event()  # set while a listening connection is up

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        tenant_id, _, sender = str(payload).partition(" ")
        if sender != self.instance:
            self.ring(tenant_id)

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after failures (the server's task group runs
        it and cancels it on shutdown)."""
        failures = 0
        while True:
            closed = asyncio.Event()
            conn: asyncpg.Connection[asyncpg.Record] | None = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
                conn.add_termination_listener(lambda _conn, done=closed: done.set())
                await conn.add_listener(FEED_CHANNEL, self._on_notify)
                self.listening.set()
                if failures:
                    log.info("listening for other servers' commits again")
                    self.ring_all()  # notifications sent while disconnected are lost
                failures = 0
                while not closed.is_set():
                    # The termination listener fires when the connection is noticed dead;
                    # a cheap query every few seconds makes sure it is noticed.
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation that arrives as the event is set (shutdown would hang).
                    try:
                        async with asyncio.timeout(self.timeout):
                            await closed.wait()
                    except TimeoutError:
                        async with asyncio.timeout(self.timeout):
                            await conn.fetchval("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if failures == 0:
                    log.warning("lost the Postgres doorbell connection: %s", exc)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            failures += 1
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)) * (0.5 + random.random()))
