"""The change feed: cursor-based pull, and live following for WebSocket and SSE.

Correctness never depends on live delivery. A subscriber gets a *doorbell with payload*: the
events a commit produced. If its queue overflows, or a live event arrives with a gap before it,
the subscriber reads the missing range from the store, which is the truth. :meth:`follow`
subscribes *before* it reads the backlog, then drops live events it already yielded, so no event
can fall between the backlog and the live stream.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from meshfs_common.errors import BadRequestError
from meshfs_common.models import ChangeEvent, PullResponse
from meshfs_server.domain.ports import MetadataStore

MAX_PULL = 1000
QUEUE_LIMIT = 1024


@dataclass(eq=False)
class Subscription:
    """Live events of one tenant for one listener."""

    tenant_id: str
    queue: asyncio.Queue[ChangeEvent | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )
    overflowed: bool = False

    def offer(self, event: ChangeEvent | None) -> None:
        """Deliver a live event (None: a doorbell without payload) without ever blocking."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class LocalBus:
    """In-process delivery of committed events to subscribers of the same process."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    def subscribe(self, tenant_id: str) -> Subscription:
        sub = Subscription(tenant_id)
        self._subscribers[tenant_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.tenant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.tenant_id]

    async def publish(self, tenant_id: str, events: list[ChangeEvent]) -> None:
        for sub in list(self._subscribers.get(tenant_id, ())):
            for event in events:
                sub.offer(event)

    def ring(self, tenant_id: str) -> None:
        """Wake subscribers so they read the store (another process committed)."""
        for sub in list(self._subscribers.get(tenant_id, ())):
            sub.offer(None)

    def ring_all(self) -> None:
        """Wake every subscriber (news from other processes may have been missed)."""
        for tenant_id in list(self._subscribers):
            self.ring(tenant_id)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


@dataclass(slots=True)
class Reset:
    """The cursor cannot be served: reconcile, then continue from ``cursor``."""

    cursor: int


@dataclass(slots=True)
class CaughtUp:
    """The backlog has been replayed up to ``cursor``; live events follow."""

    cursor: int


class ChangeFeed:
    """Reading and following one tenant's change sequence."""

    def __init__(self, store: MetadataStore, bus: LocalBus) -> None:
        self.store = store
        self.bus = bus

    async def publish(self, tenant_id: str, events: list[ChangeEvent]) -> None:
        """Called after a commit with the events it appended."""
        await self.bus.publish(tenant_id, events)

    async def pull(self, tenant_id: str, cursor: int, limit: int = MAX_PULL) -> PullResponse:
        """Events after *cursor*; ``reset`` when the cursor is outside the retained log."""
        if cursor < 0:
            raise BadRequestError("cursor must be >= 0")
        if not 1 <= limit <= MAX_PULL:
            raise BadRequestError(f"limit must be between 1 and {MAX_PULL}")
        async with self.store.read(tenant_id) as tx:
            bounds = await tx.feed_bounds()
            if cursor < bounds.first - 1 or cursor > bounds.last:
                return PullResponse(events=[], cursor=bounds.last, reset=True)
            events = await tx.events_after(cursor, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return PullResponse(
            events=events, cursor=events[-1].seq if events else cursor, has_more=more
        )

    async def trim(self, tenant_id: str, before: float) -> int:
        """Drop events older than *before*; clients behind them will be told to reset."""
        async with self.store.write(tenant_id, durable=False) as tx:
            return await tx.prune_events(before)

    async def head(self, tenant_id: str) -> int:
        async with self.store.read(tenant_id) as tx:
            return (await tx.feed_bounds()).last

    async def follow(
        self, tenant_id: str, cursor: int
    ) -> AsyncIterator[ChangeEvent | Reset | CaughtUp]:
        """Every event after *cursor*, forever: backlog first, then live, in order, no gaps.

        Yields :class:`Reset` (and continues from its cursor) when *cursor* is not retained,
        and one :class:`CaughtUp` when the backlog has been replayed.
        """
        sub = self.bus.subscribe(tenant_id)
        try:
            last = cursor
            while True:  # replay until the store has nothing more
                page = await self.pull(tenant_id, last)
                if page.reset:
                    yield Reset(page.cursor)
                    last = page.cursor
                    continue
                for event in page.events:
                    yield event
                last = page.cursor
                if not page.has_more:
                    break
            yield CaughtUp(last)
            while True:
                item = await sub.queue.get()
                if sub.overflowed or item is None or item.seq > last + 1:
                    # Missed or unknown events: the store has them.
                    sub.overflowed = False
                    while True:
                        page = await self.pull(tenant_id, last)
                        if page.reset:
                            yield Reset(page.cursor)
                            last = page.cursor
                            break
                        for event in page.events:
                            yield event
                        last = page.cursor
                        if not page.has_more:
                            break
                    continue
                if item.seq <= last:
                    continue  # already delivered from the backlog
                last = item.seq
                yield item
        finally:
            self.bus.unsubscribe(sub)
