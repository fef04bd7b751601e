"""Waiting in tests: on a condition, with a deadline - never a bare sleep that hopes.

A test that needs something to happen first (a server to answer, a load to be running, a
background task to finish) polls a condition until it holds and fails with a message naming
what it waited for once the deadline passes. The poll interval only spaces the checks.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import httpx

Condition = Callable[[], bool | Awaitable[bool]]


async def wait_until(
    condition: Condition, what: str, *, within: float = 10.0, interval: float = 0.02
) -> None:
    """Return once *condition* (a function, plain or async) is true; raise AssertionError
    naming *what* after *within* seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until_sync(
    condition: Callable[[], bool], what: str, *, within: float = 10.0, interval: float = 0.05
) -> None:
    """:func:`wait_until` for code outside an event loop (subprocesses, fixtures)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(interval)


async def wait_for_server(
    url: str, *, within: float = 10.0, task: asyncio.Task[object] | None = None
) -> None:
    """Wait until the server at *url* answers ``/healthz`` with 200; a server *task* that ends
    meanwhile fails at once with its own error."""

    def running() -> None:
        if task is not None and task.done():
            task.result()  # raises what stopped the server
            raise AssertionError(f"the server at {url} stopped before answering")

    running()
    async with httpx.AsyncClient() as probe:

        async def answers() -> bool:
            running()
            try:
                return (await probe.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answers, f"the server at {url} to answer", within=within)
