"""`LoopThread`: one asyncio event loop in its own thread, for callers that are not asyncio.

The client is asyncio + aiohttp. Code that is not running on an asyncio loop - a plain script,
a notebook whose loop is already busy, fsspec's synchronous API, the trio-based FUSE mount -
starts a :class:`LoopThread`, opens the client on it and hands it coroutines. It is the one
place that runs the client from another thread; :class:`~meshfs_client.MeshFS`, the fsspec
filesystem and the mount's bridge all build on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["LoopThread", "ThreadIterator"]


class LoopThread:
    """An asyncio event loop running in a daemon thread until :meth:`close`.

    ``with LoopThread() as portal: portal.run(client.health())``. Objects bound to the loop
    (an aiohttp session, a client) must be created and used only through it.
    """

    def __init__(self, name: str = "meshfs-client-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (to schedule callbacks on it with ``call_soon_threadsafe``)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        """The thread the loop runs in."""
        return self._thread

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run *coro* on the loop and wait for its result from the calling thread.

        Its exception is raised here. Calling this from the loop's own thread would wait
        forever, so it raises :class:`RuntimeError` instead.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run was called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def iterate(self, source: AsyncIterator[T]) -> ThreadIterator[T]:
        """The items of an async iterator, fetched one by one on the loop."""
        return ThreadIterator(self, source)

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread (idempotent)."""
        if self._loop.is_closed():
            return
        if threading.current_thread() is self._thread:
            self._loop.stop()  # closed from a callback on the loop: it cannot wait for itself
            return
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()


class ThreadIterator(Iterator[T]):
    """A blocking iterator over an async iterator running on a :class:`LoopThread`.

    Close it (or leave a ``with`` block, or run it to the end) to close the async iterator:
    a download's connection or a change feed's subscription ends then, not at garbage
    collection.
    """

    def __init__(self, portal: LoopThread, source: AsyncIterator[T]) -> None:
        # A generator, so that an iterator dropped half-way still closes its source.
        self._items = _pull(portal, source)

    def __iter__(self) -> ThreadIterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def __enter__(self) -> ThreadIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the async iterator (its ``aclose``) on the loop; idempotent."""
        self._items.close()


def _pull(portal: LoopThread, source: AsyncIterator[T]) -> Generator[T, None, None]:
    try:
        while True:
            try:
                yield portal.run(_anext(source))
            except StopAsyncIteration:
                return
    finally:
        closer = getattr(source, "aclose", None)
        if closer is not None and not portal.loop.is_closed():
            portal.run(closer())


async def _anext(source: AsyncIterator[T]) -> T:
    return await source.__anext__()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
