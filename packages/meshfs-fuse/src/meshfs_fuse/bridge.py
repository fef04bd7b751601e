"""Call the asyncio MeshFS client from trio: one asyncio loop in its own thread.

The client library is asyncio + aiohttp; the mount runs on trio (pyfuse3's loop). One asyncio
loop, in a dedicated thread, owns the client and the change-feed subscription. A trio task
calls into it with :meth:`AsyncioBridge.call`: the coroutine is started on the loop with
``call_soon_threadsafe`` and the trio task sleeps in ``wait_task_rescheduled`` until the
asyncio task finishes and wakes it through the trio token - no worker thread is parked per call.

Cancellation crosses the bridge: when the trio task is cancelled (a deadline, shutdown), the
asyncio task is cancelled too, and the trio task wakes only once it has ended, so no request
outlives its caller. Only bytes, :mod:`meshfs_common` models and exceptions should cross.

The client package's blocking facade (``meshfs_client.MeshFS``) also runs a loop thread, but
its callers park a thread on each call; that is the cost the mount must not pay on its request
path, hence this bridge.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import outcome
import trio

__all__ = ["AsyncioBridge"]

T = TypeVar("T")


class AsyncioBridge:
    """An asyncio event loop running in its own thread, callable from trio.

    Use as a context manager (``with AsyncioBridge() as bridge:``) so the thread stops.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="meshfs-asyncio", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> AsyncioBridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop (for code that must run on it, e.g. ``run_blocking``)."""
        return self._loop

    def run_blocking(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the loop and wait for it from a plain thread (setup and teardown)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("run_blocking called from the bridge's own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

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
            started = self._loop.create_task(factory())
            started.add_done_callback(finished)
            running.append(started)

        def cancel() -> None:
            # start() ran first: call_soon_threadsafe keeps the order of callbacks.
            if running:
                running[0].cancel()

        def abort(raiser: Callable[[], NoReturn]) -> trio.lowlevel.Abort:
            raise_cancel.append(raiser)
            self._loop.call_soon_threadsafe(cancel)
            # Wake only when the asyncio task has ended (finished() reschedules us).
            return trio.lowlevel.Abort.FAILED

        self._loop.call_soon_threadsafe(start)
        value: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread."""
        if self._loop.is_closed():
            return

        async def cancel_all() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for pending_task in pending:
                pending_task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cancel_all(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()
