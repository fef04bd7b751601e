"""Live delivery through one shared fan-out per tenant, on the in-memory ports: every subscriber
gets every event once and in order, a write is encoded once for all of them, and a subscriber
that stops reading neither holds the others up nor loses an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from meshfs_server_memory import MemoryDomain, new_actor

from meshfs_common.models import ChangeEvent
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.fanout import RECENT_LIMIT
from meshfs_server.domain.feed import CaughtUp, ChangeFeed, Followed, LocalBus
from meshfs_server.domain.namespace import Namespace

DEADLINE = 10.0


@pytest.fixture
async def domain() -> AsyncIterator[MemoryDomain]:
    built = MemoryDomain.create()
    yield built
    await built.close()


def counting_encoder() -> tuple[Callable[[Followed], str], list[str]]:
    """One encoder shared by every subscriber, and the events it was asked to encode."""
    encoded: list[str] = []

    def encode(item: Followed) -> str:
        if isinstance(item, ChangeEvent):
            encoded.append(item.path)
            return f"event {item.seq} {item.path}"
        return "caught_up" if isinstance(item, CaughtUp) else "reset"

    return encode, encoded


class Follower:
    """One subscriber reading ``follow_encoded`` in a task, recording what it received."""

    def __init__(self, feed: ChangeFeed, tenant_id: str, encode: Callable[[Followed], str]):
        self.frames: list[str] = []
        self.changed = asyncio.Event()
        self.stream = feed.follow_encoded(tenant_id, 0, encode)

    async def run(self) -> None:
        async for frame in self.stream:
            self.frames.append(frame)
            self.changed.set()

    async def until(self, done: Callable[[list[str]], bool]) -> None:
        while not done(self.frames):
            self.changed.clear()
            await self.changed.wait()


async def mkdirs(namespace: Namespace, actor: Actor, count: int, prefix: str = "/d") -> None:
    for index in range(count):
        await namespace.mkdir(actor, f"{prefix}{index}")


async def test_every_subscriber_receives_each_write_once_in_order_encoded_once(
    domain: MemoryDomain,
) -> None:
    actor = new_actor()
    encode, encoded = counting_encoder()
    followers = [Follower(domain.feed, actor.tenant_id, encode) for _ in range(300)]
    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        running = [tasks.create_task(f.run()) for f in followers]
        for follower in followers:
            await follower.until(lambda frames: "caught_up" in frames)
        await mkdirs(domain.namespace, actor, 3)
        for follower in followers:
            await follower.until(lambda frames: len(frames) == 4)
        for task in running:
            task.cancel()
    expected = ["caught_up", "event 1 /d0", "event 2 /d1", "event 3 /d2"]
    assert all(follower.frames == expected for follower in followers)
    # Three writes, three encodings: the frame is made once and sent to all 300.
    assert encoded == ["/d0", "/d1", "/d2"]
    assert domain.bus.subscriber_count == 0


async def test_a_subscriber_that_stops_reading_holds_nobody_up_and_misses_nothing(
    domain: MemoryDomain,
) -> None:
    actor = new_actor()
    encode, _ = counting_encoder()
    stalled = Follower(domain.feed, actor.tenant_id, encode)
    reader = Follower(domain.feed, actor.tenant_id, encode)
    total = RECENT_LIMIT + 50  # more than the channel keeps: the stalled one must use the store
    async with asyncio.timeout(DEADLINE * 3), asyncio.TaskGroup() as tasks:
        assert await anext(stalled.stream) == "caught_up"  # subscribed, then reads nothing
        reading = tasks.create_task(reader.run())
        await reader.until(lambda frames: "caught_up" in frames)
        await mkdirs(domain.namespace, actor, total)
        await reader.until(lambda frames: len(frames) == total + 1)
        channel = domain.bus._channels[actor.tenant_id]
        assert len(channel.recent) <= RECENT_LIMIT  # nothing grows for the stalled one
        late = [await anext(stalled.stream) for _ in range(total)]
        reading.cancel()
        await stalled.stream.aclose()
    wanted = [f"event {n + 1} /d{n}" for n in range(total)]
    assert reader.frames[1:] == wanted
    assert late == wanted


async def test_a_doorbell_without_payload_reads_the_store(domain: MemoryDomain) -> None:
    """Another server process committed (same store, its own bus): ringing this process's bus
    brings the event to its subscribers."""
    actor = new_actor()
    elsewhere = Namespace(domain.store, ChangeFeed(domain.store, LocalBus()))
    encode, _ = counting_encoder()
    follower = Follower(domain.feed, actor.tenant_id, encode)
    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        running = tasks.create_task(follower.run())
        await follower.until(lambda frames: "caught_up" in frames)
        await elsewhere.mkdir(actor, "/from-elsewhere")
        domain.bus.ring(actor.tenant_id)
        await follower.until(lambda frames: len(frames) == 2)
        running.cancel()
    assert follower.frames == ["caught_up", "event 1 /from-elsewhere"]


async def test_another_process_commit_is_read_once_for_every_subscriber(
    domain: MemoryDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A doorbell from another process costs this process one read of the store, whatever the
    number of subscribers: the events are read once and fanned out like a local commit's, in
    order, encoded once."""
    actor = new_actor()
    elsewhere = Namespace(domain.store, ChangeFeed(domain.store, LocalBus()))
    encode, encoded = counting_encoder()
    followers = [Follower(domain.feed, actor.tenant_id, encode) for _ in range(50)]
    reads = 0
    opened = domain.store.read

    def counted(tenant_id: str):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return opened(tenant_id)

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        catching_up = tasks.create_task(domain.feed.catch_up_forever())
        running = [tasks.create_task(f.run()) for f in followers]
        for follower in followers:
            await follower.until(lambda frames: "caught_up" in frames)
        await domain.namespace.mkdir(actor, "/here")  # a local commit: the channel knows seq 1
        for follower in followers:
            await follower.until(lambda frames: len(frames) == 2)
        monkeypatch.setattr(domain.store, "read", counted)
        await elsewhere.mkdir(actor, "/there-a")
        await elsewhere.mkdir(actor, "/there-b")
        domain.feed.ring(actor.tenant_id)
        for follower in followers:
            await follower.until(lambda frames: len(frames) == 4)
        for task in [*running, catching_up]:
            task.cancel()
    expected = ["caught_up", "event 1 /here", "event 2 /there-a", "event 3 /there-b"]
    assert all(follower.frames == expected for follower in followers)
    assert reads == 1
    assert encoded == ["/here", "/there-a", "/there-b"]


async def test_a_ring_before_the_position_is_known_lets_each_subscriber_read(
    domain: MemoryDomain,
) -> None:
    """Rung before this process knows how far the feed goes (its subscribers started on an
    empty feed and nothing was committed here), each subscriber reads the store itself: slower,
    never wrong."""
    actor = new_actor()
    elsewhere = Namespace(domain.store, ChangeFeed(domain.store, LocalBus()))
    encode, _ = counting_encoder()
    follower = Follower(domain.feed, actor.tenant_id, encode)
    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        catching_up = tasks.create_task(domain.feed.catch_up_forever())
        running = tasks.create_task(follower.run())
        await follower.until(lambda frames: "caught_up" in frames)
        for path in ("/first", "/second"):
            await elsewhere.mkdir(actor, path)
            domain.feed.ring(actor.tenant_id)
        await follower.until(lambda frames: len(frames) == 3)
        await elsewhere.mkdir(actor, "/third")  # now the position is known: read once
        domain.feed.ring(actor.tenant_id)
        await follower.until(lambda frames: len(frames) == 4)
        running.cancel()
        catching_up.cancel()
    assert follower.frames == [
        "caught_up", "event 1 /first", "event 2 /second", "event 3 /third",
    ]  # fmt: skip


async def test_heartbeat_frame_while_nothing_happens(domain: MemoryDomain) -> None:
    actor = new_actor()
    encode, _ = counting_encoder()
    stream = domain.feed.follow_encoded(actor.tenant_id, 0, encode, heartbeat=(0.01, "beat"))
    async with asyncio.timeout(DEADLINE):
        assert await anext(stream) == "caught_up"
        assert await anext(stream) == "beat"
        await domain.namespace.mkdir(actor, "/after-a-beat")
        while (frame := await anext(stream)) == "beat":
            pass
        await stream.aclose()
    assert frame == "event 1 /after-a-beat"
    assert domain.bus.subscriber_count == 0


async def test_idle_subscribers_share_one_heartbeat_timer(
    domain: MemoryDomain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every idle subscriber gets heartbeats, and an event sent to all of them costs no timer
    per subscriber: one timer per channel and interval serves them all."""
    actor = new_actor()
    encode, _ = counting_encoder()
    streams = [
        domain.feed.follow_encoded(actor.tenant_id, 0, encode, heartbeat=(0.05, "beat"))
        for _ in range(100)
    ]
    loop = asyncio.get_running_loop()
    timers = 0
    call_at = loop.call_at

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal timers
        timers += 1
        return call_at(*args, **kwargs)

    async with asyncio.timeout(DEADLINE):
        assert all([await anext(stream) == "caught_up" for stream in streams])
        assert {await anext(stream) for stream in streams} == {"beat"}
        channel = domain.bus.channel(actor.tenant_id)
        assert channel is not None

        async def all_waiting() -> list[asyncio.Future[str]]:
            pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
            while len(channel._waiters) < len(streams):  # noqa: ASYNC110 - deadline above
                await asyncio.sleep(0)
            return pending

        pending = await all_waiting()
        monkeypatch.setattr(loop, "call_at", counted)
        await domain.namespace.mkdir(actor, "/news")
        assert set(await asyncio.gather(*pending)) == {"event 1 /news"}
        pending = await all_waiting()  # and waiting for the next one again
        assert timers <= 1
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for stream in streams:
            await stream.aclose()
