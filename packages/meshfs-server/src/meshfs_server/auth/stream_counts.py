"""Open-stream counts shared by every server process through the database.

Each process (a *holder*) keeps its own counts in memory and mirrors them into the
``stream_counts`` table (see :mod:`meshfs_server.auth.schema`). Admitting a stream is one short
write transaction: the sum of the other live holders' counts plus this process's (already
reserving the new stream) is compared with the limit, and this process's rows are written in
the same transaction - SQLite's write lock, or on Postgres an advisory lock on the tenant,
serialises admissions, so two processes never both take the last slot. A stream that ends is
written back at once by the process's background loop (which also says every
:data:`HEARTBEAT` seconds that the process is alive): until then the others count it still
open, which can only refuse, never over-admit. A holder not heard from for
:data:`HOLDER_STALE` seconds (its process died) is not counted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

import anyio

from meshfs_server.auth.store import AuthStore, SqlSession

HEARTBEAT = 2.0
HOLDER_STALE = 10.0
FORGET_AFTER = 600.0


class SharedStreamCounts:
    """This process's side of the shared counts (*holder* names it)."""

    def __init__(self, db: AuthStore, holder: str) -> None:
        self.db = db
        self.holder = holder
        self.changed: set[str] = set()
        """Keys whose streams ended since their counts were last written."""
        self._ended = anyio.Event()

    def ended(self, *keys: str) -> None:
        """A stream of this process counted under *keys* ended: write them back soon."""
        self.changed.update(keys)
        self._ended.set()

    async def admit(self, own: Mapping[str, int], limits: Mapping[str, int]) -> str | None:
        """Write this process's counts *own* (including the stream being admitted) if, for
        every key in *limits*, the other live holders' count plus ours stays within its limit;
        else write nothing and return the first key over it."""
        keys = list(limits)
        now = time.time()
        async with self.db.write(durable=False) as conn:
            if conn.dialect == "postgres":
                # Admissions of one tenant queue here (the last key is the tenant's).
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (keys[-1],))
            marks = ", ".join("?" for _ in keys)
            rows = await conn.fetchall(
                "SELECT c.count_key, SUM(c.streams) FROM stream_counts c"
                " JOIN stream_holders h ON h.holder = c.holder"
                f" WHERE c.count_key IN ({marks}) AND c.holder <> ? AND h.seen_at > ?"
                " GROUP BY c.count_key",
                (*keys, self.holder, now - HOLDER_STALE),
            )
            others = {str(key): int(total) for key, total in rows}
            for key in keys:
                if others.get(key, 0) + own.get(key, 0) > limits[key]:
                    return key
            await self._write(conn, {k: own.get(k, 0) for k in keys}, now)
        return None

    async def _write(self, conn: SqlSession, counts: Mapping[str, int], now: float) -> None:
        await conn.execute(
            "INSERT INTO stream_holders (holder, seen_at) VALUES (?, ?)"
            " ON CONFLICT (holder) DO UPDATE SET seen_at = excluded.seen_at",
            (self.holder, now),
        )
        for key, count in counts.items():
            if count > 0:
                await conn.execute(
                    "INSERT INTO stream_counts (holder, count_key, streams) VALUES (?, ?, ?)"
                    " ON CONFLICT (holder, count_key) DO UPDATE SET streams = excluded.streams",
                    (self.holder, key, count),
                )
            else:
                await conn.execute(
                    "DELETE FROM stream_counts WHERE holder = ? AND count_key = ?",
                    (self.holder, key),
                )

    async def write_back(self, counts: Mapping[str, int]) -> None:
        """Write *counts* (of the keys that changed) and say this process is alive."""
        now = time.time()
        async with self.db.write(durable=False) as conn:
            await self._write(conn, counts, now)
            # Holders long gone (their process died without clearing its rows).
            await conn.execute(
                "DELETE FROM stream_counts WHERE holder IN (SELECT holder FROM stream_holders"
                " WHERE seen_at < ?)",
                (now - FORGET_AFTER,),
            )
            await conn.execute(
                "DELETE FROM stream_holders WHERE seen_at < ?", (now - FORGET_AFTER,)
            )

    async def clear(self) -> None:
        """Remove this process's rows (it is stopping)."""
        async with self.db.write(durable=False) as conn:
            await conn.execute("DELETE FROM stream_counts WHERE holder = ?", (self.holder,))
            await conn.execute("DELETE FROM stream_holders WHERE holder = ?", (self.holder,))

    async def run(self, count_of: Callable[[str], int], holding: Callable[[], bool]) -> None:
        """Write the counts of keys whose streams ended back (``count_of(key)`` is this
        process's count now) as soon as they end, and every :data:`HEARTBEAT` seconds say
        this process is alive while it is *holding* streams; on cancellation remove its rows.
        The server's task group runs it."""
        try:
            while True:
                with anyio.move_on_after(HEARTBEAT):
                    await self._ended.wait()
                self._ended = anyio.Event()
                keys, self.changed = self.changed, set()
                if not keys and not holding():
                    continue
                try:
                    await self.write_back({key: count_of(key) for key in keys})
                except Exception:  # the database is away: try again at the next beat
                    self.changed |= keys
        finally:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(2.0),
                contextlib.suppress(Exception),  # stale rows expire by themselves
            ):
                await self.clear()
