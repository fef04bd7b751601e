"""Call the asyncio MeshFS client from trio: one asyncio loop in its own thread.

The client library is asyncio + aiohttp; the mount runs on trio (pyfuse3's loop). One asyncio
loop, in a dedicated thread, owns the client and the change-feed subscription. A trio task
calls into it with :meth:`AsyncioBridge.call`: the coroutine is started on the loop with
``call_soon_threadsafe`` and the trio task sleeps in ``wait_task_rescheduled`` until the
asyncio task finishes and wakes it through the trio token - no worker thread is parked per call.

Cancellation crosses the bridge: when the trio task is cancelled (a deadline, shutdown), the
asyncio task is cancelled too, and the trio task wakes only once it has ended, so no request
outlives its caller. Only bytes, :mod:`meshfs_common` models and exceptions should cross.

The loop thread itself is the client package's :class:`meshfs_client.LoopThread` (the one the
blocking ``meshfs_client.MeshFS`` and the fsspec filesystem run on); its ``run`` parks the
calling thread, the cost the mount must not pay on its request path, hence :meth:`call`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import outcome
import trio

from meshfs_client import LoopThread

__all__ = ["AsyncioBridge"]

T = TypeVar("T")


class AsyncioBridge(LoopThread):
    """An asyncio event loop running in its own thread, callable from trio.

    A :class:`meshfs_client.LoopThread` (``loop``, ``run``, ``close``) that trio tasks can also
    call into without parking a thread. Use as a context manager (``with AsyncioBridge() as
    bridge:``) so the thread stops.
    """

    def __init__(self) -> None:
        super().__init__(name="meshfs-asyncio")

    def __enter__(self) -> AsyncioBridge:
        return self

    def run_blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the loop and wait for it from a plain thread (setup and teardown)."""
        return self.run(coro)

    async def call(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``factory()`` on the asyncio loop and return its result to this trio task.

        Exceptions raised by the coroutine are raised here. If this trio task is cancelled, the
        asyncio task is cancelled and this call raises :class:`trio.Cancelled` once it ended.
        """
        token = trio.lowlevel.current_trio_token()
        task = trio.lowlevel.current_task()
        running: list[asyncio.Task[T]] = []
        raise_cancel: list[Callable[[], NoReturn]] = []

        def finished(done: asyncio.Task[T]) -> None:
            result: outcome.Outcome[T]
            if done.cancelled() and raise_cancel:
                result = outcome.capture(raise_cancel[0])
            elif done.cancelled():
                result = outcome.Error(trio.TooSlowError("the asyncio side was cancelled"))
            else:
                error = done.exception()
                result = outcome.Error(error) if error is not None else outcome.Value(done.result())
            token.run_sync_soon(trio.lowlevel.reschedule, task, result)

        def start() -> None:
            started = self.loop.create_task(factory())
            started.add_done_callback(finished)
            running.append(started)

        def cancel() -> None:
            # start() ran first: call_soon_threadsafe keeps the order of callbacks.
            if running:
                running[0].cancel()

        def abort(raiser: Callable[[], NoReturn]) -> trio.lowlevel.Abort:
            raise_cancel.append(raiser)
            self.loop.call_soon_threadsafe(cancel)
            # Wake only when the asyncio task has ended (finished() reschedules us).
            return trio.lowlevel.Abort.FAILED

        self.loop.call_soon_threadsafe(start)
        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value
