"""The change feed: cursor-based pull, and live following for WebSocket and SSE.

Correctness never depends on live delivery. A subscriber gets a *doorbell with payload*: the
events a commit produced, through its tenant's shared channel (:mod:`.fanout`). If it falls
behind the channel, is rung without payload, or a live event arrives with a gap before it, the
subscriber reads the missing range from the store, which is the truth. :meth:`follow`
subscribes *before* it reads the backlog, then drops live events it already yielded, so no event
can fall between the backlog and the live stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from meshfs_common.errors import BadRequestError
from meshfs_common.models import ChangeEvent, PullResponse
from meshfs_server.domain.fanout import LocalBus, Published
from meshfs_server.domain.ports import MetadataStore
from meshfs_server.domain.scope import WHOLE_TENANT, Replaced, Scope

MAX_PULL = 1000
SCAN_LIMIT = 10 * MAX_PULL
"""Events one pull examines at most through a limited scope (bounds the work per request)."""
SCAN_BATCH = 500
log = logging.getLogger("meshfs_server.feed")
__all__ = ["CaughtUp", "ChangeFeed", "Followed", "LocalBus", "Reset"]


@dataclass(slots=True)
class Reset:
    """The cursor cannot be served: reconcile, then continue from ``cursor``."""

    cursor: int


@dataclass(slots=True)
class CaughtUp:
    """The backlog has been replayed up to ``cursor``; live events follow."""

    cursor: int


Followed = ChangeEvent | Reset | CaughtUp
"""What following the feed yields."""
T = TypeVar("T")


class ChangeFeed:
    """Reading and following one tenant's change sequence."""

    def __init__(
        self, store: MetadataStore, bus: LocalBus, *, announce: Callable[[str], None] | None = None
    ) -> None:
        self.store = store
        self.bus = bus
        self.announce = announce
        """Rings the other server processes' subscribers of a tenant (None: nobody to tell,
        or the store tells them itself, as Postgres's NOTIFY does)."""
        self._behind: set[str] = set()
        self._rung = asyncio.Event()
        self._catching_up = False

    def ring(self, tenant_id: str) -> None:
        """Another server process committed events of *tenant_id* (its doorbell rang): read
        them once for all of this process's subscribers (:meth:`catch_up_forever`), or, while
        that is not running, let every subscriber read them from the store."""
        if not self._catching_up:
            self.bus.ring(tenant_id)
        elif self.bus.channel(tenant_id) is not None:
            self._behind.add(tenant_id)
            self._rung.set()

    async def catch_up_forever(self) -> None:
        """Serve :meth:`ring` until cancelled (the server's task group owns it): for each rung
        tenant, one read of the events after the newest its channel knows, appended to the
        channel as a local commit's are. When that is not possible (nothing known yet, more
        than a page, the store failing) the channel is rung and each subscriber reads the
        store itself, which is never wrong, only slower."""
        self._catching_up = True
        try:
            while True:
                await self._rung.wait()
                self._rung.clear()
                behind, self._behind = self._behind, set()
                for tenant_id in behind:
                    await self._catch_up(tenant_id)
        finally:
            self._catching_up = False
            for tenant_id in self._behind:
                self.bus.ring(tenant_id)
            self._behind.clear()

    async def _catch_up(self, tenant_id: str) -> None:
        channel = self.bus.channel(tenant_id)
        if channel is None:
            return
        after = channel.newest
        if after == 0:  # no subscriber has caught up yet: they read the store anyway
            channel.ring()
            return
        try:  # one query: *after* was just seen, so it is inside the retained log
            async with self.store.read(tenant_id) as tx:
                events = await tx.events_after(after, MAX_PULL + 1)
        except Exception as exc:  # each subscriber reads, and reports, the failure itself
            log.debug("reading another process's events of %s failed: %s", tenant_id, exc)
            channel.ring()
            return
        if len(events) > MAX_PULL:
            channel.ring()
        elif events:
            channel.append(events)

    async def publish(self, tenant_id: str, events: list[ChangeEvent]) -> None:
        """Called after a commit with the events it appended."""
        if self.announce is not None:
            self.announce(tenant_id)
        await self.bus.publish(tenant_id, events)

    async def pull(
        self, tenant_id: str, cursor: int, limit: int = MAX_PULL, *, scope: Scope = WHOLE_TENANT
    ) -> PullResponse:
        """Events after *cursor* as *scope* sees them; ``reset`` when the cursor is outside the
        retained log, or when the scope's root was replaced (then ``cursor`` is that event's).

        Through a limited scope the answer skips what the scope does not see: ``cursor`` is the
        last sequence number examined (visible or not), and at most :data:`SCAN_LIMIT` events
        are examined per call, so a page may be short or empty with ``has_more`` set.
        """
        if cursor < 0:
            raise BadRequestError("cursor must be >= 0")
        if not 1 <= limit <= MAX_PULL:
            raise BadRequestError(f"limit must be between 1 and {MAX_PULL}")
        shown: list[ChangeEvent] = []
        last = cursor
        scanned = 0
        more = False
        async with self.store.read(tenant_id) as tx:
            bounds = await tx.feed_bounds()
            if cursor < bounds.first - 1 or cursor > bounds.last:
                return PullResponse(events=[], cursor=bounds.last, reset=True)
            while not more:
                wanted = limit + 1 - len(shown)
                if not scope.whole_tenant:  # most events may be hidden: read in larger steps
                    wanted = max(wanted, SCAN_BATCH)
                batch = await tx.events_after(last, wanted)
                for event in batch:
                    if len(shown) == limit or scanned == SCAN_LIMIT:
                        more = True
                        break
                    seen = scope.view(event)
                    if isinstance(seen, Replaced):
                        if shown:  # end the page here; the next pull answers the reset
                            more = True
                            break
                        return PullResponse(
                            events=[], cursor=event.seq, has_more=event.seq < bounds.last,
                            reset=True,
                        )  # fmt: skip
                    scanned += 1
                    last = event.seq
                    if seen is not None:
                        shown.append(seen)
                if len(batch) < wanted:
                    break
        return PullResponse(events=shown, cursor=last, has_more=more)

    async def trim(self, tenant_id: str, before: float) -> int:
        """Drop events older than *before*; clients behind them will be told to reset."""
        async with self.store.write(tenant_id, durable=False) as tx:
            return await tx.prune_events(before)

    async def head(self, tenant_id: str) -> int:
        async with self.store.read(tenant_id) as tx:
            return (await tx.feed_bounds()).last

    async def follow(
        self, tenant_id: str, cursor: int, *, scope: Scope = WHOLE_TENANT
    ) -> AsyncGenerator[ChangeEvent | Reset | CaughtUp, None]:
        """Every event after *cursor* that *scope* sees, forever: backlog first, then live, in
        order, no gaps.

        Yields :class:`Reset` (and continues from its cursor) when *cursor* is not retained or
        the scope's root was replaced, and one :class:`CaughtUp` when the backlog has been
        replayed (its cursor is the last sequence number examined).
        """
        async with aclosing(self._follow(tenant_id, cursor, scope, None)) as items:
            async for item in items:
                if isinstance(item, Published):
                    yield item.event
                elif item is not None:
                    yield item

    async def follow_encoded(
        self,
        tenant_id: str,
        cursor: int,
        encode: Callable[[Followed], T],
        *,
        scope: Scope = WHOLE_TENANT,
        heartbeat: tuple[float, T] | None = None,
    ) -> AsyncGenerator[T, None]:
        """:meth:`follow`, each item as ``encode(item)``; with ``heartbeat=(seconds, frame)``,
        also *frame* whenever *seconds* passed with nothing new.

        A live event *scope* sees unchanged is encoded once for every subscriber of this
        process: *encode* must be one function shared by them (not a closure made per
        subscriber) whose result depends only on its argument.
        """
        seconds, beat = heartbeat if heartbeat is not None else (None, None)
        async with aclosing(self._follow(tenant_id, cursor, scope, seconds)) as items:
            async for item in items:
                if isinstance(item, Published):
                    yield item.encoded(encode)
                elif item is not None:
                    yield encode(item)
                elif beat is not None:
                    yield beat

    async def _follow(
        self, tenant_id: str, cursor: int, scope: Scope, heartbeat: float | None
    ) -> AsyncGenerator[Followed | Published | None, None]:
        """The work of :meth:`follow`: an unchanged live event as its shared :class:`Published`,
        None when *heartbeat* seconds passed without news."""
        channel = self.bus.subscribe(tenant_id)
        try:
            mark = channel.mark()  # before the backlog: nothing falls in between
            position = _Position(cursor)
            async for item in self._replay(tenant_id, scope, position):
                yield item
            channel.note(position.seq)
            yield CaughtUp(position.seq)
            while True:
                news = channel.since(mark)
                if news is None:  # rung, or behind the channel: the store has what was missed
                    async for item in self._replay(tenant_id, scope, position):
                        yield item
                    channel.note(position.seq)
                    continue
                if not news:
                    if not await channel.wait(mark, heartbeat):
                        yield None
                    continue
                for published in news:
                    event = published.event
                    if event.seq <= position.seq:
                        continue  # already delivered from the store
                    if event.seq > position.seq + 1:  # a gap: read it (and this one) from the store
                        async for item in self._replay(tenant_id, scope, position):
                            yield item
                        continue
                    position.seq = event.seq
                    seen = scope.view(event)
                    if seen is event:
                        yield published
                    elif isinstance(seen, Replaced):
                        yield Reset(event.seq)
                    elif seen is not None:
                        yield seen
        finally:
            self.bus.unsubscribe(tenant_id, channel)

    async def _replay(
        self, tenant_id: str, scope: Scope, position: _Position
    ) -> AsyncIterator[ChangeEvent | Reset]:
        """What the store holds after ``position.seq``, page by page, advancing it."""
        while True:
            page = await self.pull(tenant_id, position.seq, scope=scope)
            if page.reset:
                yield Reset(page.cursor)
                position.seq = page.cursor
                continue
            for event in page.events:
                yield event
            position.seq = page.cursor
            if not page.has_more:
                return


@dataclass(slots=True)
class _Position:
    """The last sequence number a follower has examined."""

    seq: int
