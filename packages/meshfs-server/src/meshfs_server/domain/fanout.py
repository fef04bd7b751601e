"""Live delivery of committed events to the subscribers of this server process: one shared
fan-out per tenant.

A commit's events are appended once to its tenant's :class:`TenantChannel`, a short ring of
:class:`Published` events, and every waiting subscriber is woken by one call. A subscriber owns
no queue: it remembers how far into the channel it has read (a :class:`Mark`) and reads what
was appended since. What a route encodes from a published event (a WebSocket message, an SSE
frame) is made once and shared by every subscriber that sees the event unchanged, so a write
costs the server one encoding, not one per subscriber.

Another process's commit arrives as a doorbell without payload; :meth:`ChangeFeed.ring
<meshfs_server.domain.feed.ChangeFeed.ring>` reads the new events once for the whole channel
and appends them like a local commit's, so 10,000 subscribers cost one read, not 10,000.

Correctness never depends on this: a subscriber that falls further behind than the ring holds,
that sees a gap, or that is rung without payload, reads the store, which is the truth.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshfs_common.models import ChangeEvent

RECENT_LIMIT = 1024
"""Published events a channel keeps for subscribers still sending earlier ones."""


@dataclass(slots=True, eq=False)
class Published:
    """One committed event as every subscriber of its tenant receives it."""

    event: ChangeEvent
    frames: dict[Callable[..., Any], Any] = field(default_factory=dict)
    """Encodings made from the unchanged event, by encoder: made once, sent to everyone."""

    def encoded(self, encode: Callable[[ChangeEvent], Any]) -> Any:
        """``encode(event)``, made by the first subscriber that asks and shared afterwards."""
        frame = self.frames.get(encode)
        if frame is None:
            frame = self.frames[encode] = encode(self.event)
        return frame


@dataclass(slots=True)
class Mark:
    """How far one subscriber has read its tenant's channel."""

    appended: int
    rung: int


class TenantChannel:
    """The live events of one tenant in this process, shared by all its subscribers."""

    def __init__(self) -> None:
        self.recent: deque[Published] = deque(maxlen=RECENT_LIMIT)
        self.appended = 0
        """Events ever appended (the position just after the newest)."""
        self.rung = 0
        """Doorbells without payload: the store has events this process was not given."""
        self.newest = 0
        """The highest sequence number known to be committed (from appended events and from
        subscribers' reads of the store; 0 while unknown)."""
        self.subscribers = 0
        self._waiters: set[asyncio.Future[bool]] = set()
        self._ticks: dict[float, _Tick] = {}

    def mark(self) -> Mark:
        """The channel's position now: what a new subscriber has not missed."""
        return Mark(self.appended, self.rung)

    def append(self, events: list[ChangeEvent]) -> None:
        """Publish a commit's *events* to every subscriber."""
        self.recent.extend(Published(event) for event in events)
        self.appended += len(events)
        if events:
            self.newest = max(self.newest, events[-1].seq)
        self._wake()

    def note(self, seq: int) -> None:
        """A subscriber read the store up to *seq*: it is committed."""
        if seq > self.newest:
            self.newest = seq

    def ring(self) -> None:
        """Tell every subscriber to read the store."""
        self.rung += 1
        self._wake()

    def since(self, mark: Mark) -> list[Published] | None:
        """What was appended after *mark* (and advance it), or None when the subscriber must
        read the store instead: it was rung, or fell further behind than the ring holds."""
        missed = mark.rung != self.rung or self.appended - mark.appended > len(self.recent)
        new = self.appended - mark.appended
        mark.appended, mark.rung = self.appended, self.rung
        if missed:
            return None
        held = len(self.recent)
        return [self.recent[index] for index in range(held - new, held)]

    async def wait(self, mark: Mark, heartbeat: float | None = None) -> bool:
        """Until something arrives after *mark* (True) or, with *heartbeat*, until the channel
        has been quiet for a tick of *heartbeat* seconds (False: between one and two ticks
        after the last news). One timer per interval serves every subscriber of the channel,
        so an event costs a waiting subscriber no timer of its own."""
        if mark.appended != self.appended or mark.rung != self.rung:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        if heartbeat is not None:
            self._ticks.setdefault(heartbeat, _Tick(self, heartbeat)).join(waiter)
        try:
            return await waiter
        finally:
            self._waiters.discard(waiter)

    def close(self) -> None:
        """Stop the heartbeat timers (the channel's last subscriber left)."""
        for tick in self._ticks.values():
            tick.stop()
        self._ticks.clear()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)
        for tick in self._ticks.values():
            tick.news = True


class _Tick:
    """A channel's heartbeat timer for one interval: each tick wakes the subscribers waiting
    with that interval (with False) when nothing arrived since the previous tick."""

    def __init__(self, channel: TenantChannel, seconds: float) -> None:
        self.seconds = seconds
        self.news = False
        self.waiters: set[asyncio.Future[bool]] = set()
        self._channel = channel
        self._timer: asyncio.TimerHandle | None = None

    def join(self, waiter: asyncio.Future[bool]) -> None:
        self.waiters.add(waiter)
        if self._timer is None:
            self.news = False
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        waiters = {waiter for waiter in self.waiters if not waiter.done()}
        if self.news:  # news since the last tick: those waiters were woken; count again
            self.waiters = waiters
        else:
            self.waiters = set()
            for waiter in waiters:
                waiter.set_result(False)
        self.news = False
        if self.waiters:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._fire)


class LocalBus:
    """In-process delivery of committed events: one :class:`TenantChannel` per tenant that has
    subscribers."""

    def __init__(self) -> None:
        self._channels: dict[str, TenantChannel] = {}

    def subscribe(self, tenant_id: str) -> TenantChannel:
        """Join *tenant_id*'s channel (leave with :meth:`unsubscribe`)."""
        channel = self._channels.get(tenant_id)
        if channel is None:
            channel = self._channels[tenant_id] = TenantChannel()
        channel.subscribers += 1
        return channel

    def unsubscribe(self, tenant_id: str, channel: TenantChannel) -> None:
        """Leave; the last subscriber to leave drops the channel."""
        channel.subscribers -= 1
        if channel.subscribers <= 0 and self._channels.get(tenant_id) is channel:
            del self._channels[tenant_id]
            channel.close()

    def channel(self, tenant_id: str) -> TenantChannel | None:
        """*tenant_id*'s channel, while it has subscribers."""
        return self._channels.get(tenant_id)

    async def publish(self, tenant_id: str, events: list[ChangeEvent]) -> None:
        """Deliver a commit's *events* to this process's subscribers of *tenant_id*."""
        channel = self._channels.get(tenant_id)
        if channel is not None and events:
            channel.append(events)

    def ring(self, tenant_id: str) -> None:
        """Wake subscribers so they read the store (another process committed)."""
        channel = self._channels.get(tenant_id)
        if channel is not None:
            channel.ring()

    def ring_all(self) -> None:
        """Wake every subscriber (news from other processes may have been missed)."""
        for channel in list(self._channels.values()):
            channel.ring()

    @property
    def subscriber_count(self) -> int:
        """Subscribers in this process, all tenants."""
        return sum(channel.subscribers for channel in self._channels.values())
