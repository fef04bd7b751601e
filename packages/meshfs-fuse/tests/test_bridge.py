"""The asyncio bridge: results, exceptions and cancellation cross from trio to asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import trio

from meshfs_common.errors import NotFoundError
from meshfs_fuse.bridge import AsyncioBridge


@pytest.fixture
def bridge() -> Iterator[AsyncioBridge]:
    with AsyncioBridge() as running:
        yield running


async def test_result_and_loop_thread(bridge: AsyncioBridge) -> None:
    async def on_loop() -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    assert await bridge.call(on_loop) is bridge.loop


async def test_exception_crosses(bridge: AsyncioBridge) -> None:
    async def missing() -> None:
        raise NotFoundError("no such file: /a")

    with pytest.raises(NotFoundError, match="/a"):
        await bridge.call(missing)


async def test_trio_cancel_cancels_the_asyncio_task(bridge: AsyncioBridge) -> None:
    ended = trio.Event()
    cancelled: list[bool] = []
    token = trio.lowlevel.current_trio_token()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        finally:
            token.run_sync_soon(ended.set)

    with trio.move_on_after(0.05) as scope:
        await bridge.call(forever)
    assert scope.cancelled_caught
    # The call returned only after the asyncio task had ended.
    assert ended.is_set()
    assert cancelled == [True]


async def test_many_calls_in_flight(bridge: AsyncioBridge) -> None:
    results: list[int] = []

    async def echo(value: int) -> int:
        await asyncio.sleep(0.001)
        return value

    async def one(value: int) -> None:
        results.append(await bridge.call(lambda: echo(value)))

    async with trio.open_nursery() as nursery:
        for value in range(50):
            nursery.start_soon(one, value)
    assert sorted(results) == list(range(50))


def test_close_cancels_pending_work() -> None:
    bridge = AsyncioBridge()
    future = asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), bridge.loop)
    bridge.close()
    assert future.cancelled()
    bridge.close()  # idempotent
