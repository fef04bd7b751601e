"""The tests' one way to wait (meshfs_server_wait) fails when the condition never holds."""

from __future__ import annotations

import asyncio

import pytest
from meshfs_server_wait import wait_for_server, wait_until, wait_until_sync


async def test_wait_until_returns_once_the_condition_holds() -> None:
    calls: list[int] = []

    async def third_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    await wait_until(third_time, "the third call", interval=0)
    assert len(calls) == 3


async def test_wait_until_fails_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s waiting for Godot"):
        await wait_until(lambda: False, "Godot", within=0.05, interval=0.01)
    with pytest.raises(AssertionError, match="waiting for Godot"):
        wait_until_sync(lambda: False, "Godot", within=0.05, interval=0.01)


async def test_a_server_that_stopped_fails_the_wait_at_once() -> None:
    async def crashed() -> None:
        raise OSError("address already in use")

    task = asyncio.create_task(crashed())
    await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(OSError, match="address already in use"):
        await wait_for_server("http://127.0.0.1:9", within=30, task=task)
