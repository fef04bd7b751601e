"""`LoopThread`: the one loop thread the blocking client, fsspec and the mount run on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from meshfs_client import LoopThread


def test_run_returns_and_raises_on_the_loop_thread() -> None:
    with LoopThread() as portal:

        async def where() -> threading.Thread:
            return threading.current_thread()

        async def fails() -> None:
            raise KeyError("x")

        assert portal.run(where()) is portal.thread
        with pytest.raises(KeyError):
            portal.run(fails())


def test_run_from_the_loop_thread_is_refused() -> None:
    with LoopThread() as portal:

        async def inner() -> None:
            portal.run(asyncio.sleep(0))

        with pytest.raises(RuntimeError, match="own thread"):
            portal.run(inner())


def test_an_iterator_left_early_closes_its_source() -> None:
    closed = threading.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            for n in range(100):
                yield n
        finally:
            closed.set()

    with LoopThread() as portal:
        with portal.iterate(numbers()) as items:
            assert [next(items), next(items)] == [0, 1]
        assert closed.is_set()
        assert list(portal.iterate(numbers())) == list(range(100))


def test_close_cancels_what_still_runs_and_stops_the_thread() -> None:
    portal = LoopThread()
    pending = asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), portal.loop)
    portal.close()
    assert pending.cancelled()
    assert not portal.thread.is_alive()
    portal.close()  # idempotent
