"""A download body that is all or nothing for the client.

A download announces its ``Content-Length`` before the first byte is sent. The content is opened
before that (see :meth:`~meshfs_server.domain.content.ContentService.open_read`), so a store
that cannot serve it at all gives a clean error answer (503 with ``Retry-After``). If the store
fails *after* the answer started (a later chunk), the body cannot be completed: the response
then ends without its final message, which makes the server close the connection short of the
announced length, and every HTTP client reports a truncated transfer instead of taking a short
body for the whole file. The failure is logged once, without a traceback (it is not a bug).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Send

from meshfs_common.errors import MeshFSError

log = logging.getLogger("meshfs_server.download")
T = TypeVar("T")


@asynccontextmanager
async def read_ahead(blocks: AsyncIterable[T]) -> AsyncIterator[AsyncIterator[T]]:
    """*blocks*, with the next one read while the caller handles the current one.

    A download reads a 4 MiB chunk from the store, then sends it: one after the other, the disk
    (or the object store) waits while the network sends and the other way round. Reading one
    block ahead in a task of its own overlaps the two. At most two blocks wait beside the one
    being sent. Leaving the block stops the reader.
    """
    ahead: asyncio.Queue[tuple[T | None, BaseException | None, bool]] = asyncio.Queue(1)

    async def reader() -> None:
        try:
            async for block in blocks:
                await ahead.put((block, None, False))
        except Exception as exc:  # handed to the consumer, raised there
            await ahead.put((None, exc, True))
        else:
            await ahead.put((None, None, True))
        finally:
            close = getattr(blocks, "aclose", None)
            if close is not None:  # stopped part-way: let the store release what it holds
                await close()

    async def taken() -> AsyncIterator[T]:
        while True:
            block, error, ended = await ahead.get()
            if error is not None:
                raise error
            if ended:
                return
            yield block  # type: ignore[misc]  # not ended: a block

    task = asyncio.create_task(reader())
    try:
        yield taken()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ContentStream(StreamingResponse):
    """Stream a file's bytes; abort the connection if the store fails part-way."""

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        sent = 0
        try:
            async with read_ahead(self.body_iterator) as blocks:
                async for block in blocks:
                    await send({"type": "http.response.body", "body": block, "more_body": True})
                    sent += len(block)
        except MeshFSError as exc:
            log.warning(
                "download aborted after %d of %s bytes (the connection is closed): %s",
                sent, self.headers.get("content-length", "?"), exc.message,
            )  # fmt: skip
            return  # no final message: the server closes the connection short of its length
        await send({"type": "http.response.body", "body": b"", "more_body": False})
