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

import logging

from starlette.responses import StreamingResponse
from starlette.types import Send

from meshfs_common.errors import MeshFSError

log = logging.getLogger("meshfs_server.download")


class ContentStream(StreamingResponse):
    """Stream a file's bytes; abort the connection if the store fails part-way."""

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        sent = 0
        try:
            async for block in self.body_iterator:
                await send({"type": "http.response.body", "body": block, "more_body": True})
                sent += len(block)
        except MeshFSError as exc:
            log.warning(
                "download aborted after %d of %s bytes (the connection is closed): %s",
                sent, self.headers.get("content-length", "?"), exc.message,
            )  # fmt: skip
            return  # no final message: the server closes the connection short of its length
        await send({"type": "http.response.body", "body": b"", "more_body": False})
