"""A download reads the next block from the store while it sends the current one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from meshfs_common.errors import UnavailableError
from meshfs_server.http.content_stream import read_ahead

DEADLINE = 5.0


class Store:
    """Blocks handed out one by one, recording how far the reader has asked."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.asked: list[int] = []
        self.asked_for = asyncio.Condition()
        self.closed = False

    async def blocks(self) -> AsyncIterator[bytes]:
        try:
            for index in range(self.count):
                async with self.asked_for:
                    self.asked.append(index)
                    self.asked_for.notify_all()
                if index == self.fail_at:
                    raise UnavailableError("the store went away")
                yield bytes([index]) * 4
        finally:
            self.closed = True

    async def until_asked(self, index: int) -> None:
        async with self.asked_for:
            await self.asked_for.wait_for(lambda: index in self.asked)


async def test_the_next_block_is_read_while_the_current_one_is_sent() -> None:
    store = Store(4)
    got: list[bytes] = []
    async with asyncio.timeout(DEADLINE), read_ahead(store.blocks()) as blocks:
        async for block in blocks:
            # Still "sending" this block: the reader has already asked for the next one.
            if len(got) < store.count - 1:
                await store.until_asked(len(got) + 1)
            got.append(block)
    assert got == [bytes([i]) * 4 for i in range(4)]


async def test_a_store_failure_reaches_the_sender_after_the_blocks_before_it() -> None:
    store = Store(5, fail_at=2)
    got: list[bytes] = []

    async def send_all() -> None:
        async with asyncio.timeout(DEADLINE), read_ahead(store.blocks()) as blocks:
            async for block in blocks:
                got.append(block)

    with pytest.raises(UnavailableError):
        await send_all()
    assert got == [bytes([0]) * 4, bytes([1]) * 4]


async def test_leaving_early_stops_the_reader() -> None:
    store = Store(1000)
    async with asyncio.timeout(DEADLINE):
        async with read_ahead(store.blocks()) as blocks:
            assert await anext(blocks) == bytes([0]) * 4
        assert store.closed
    assert len(store.asked) < 10  # it read a little ahead, not the whole file
