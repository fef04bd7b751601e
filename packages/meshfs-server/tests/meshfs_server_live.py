"""Serve an already started app with hypercorn on a real loopback socket, and speak raw HTTP/1.1
to it (for what only a real connection shows: keep-alive, early answers, closes)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

from meshfs_server_wait import wait_for_server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve *app* (its lifespan already started by the caller) on 127.0.0.1; yields the URL."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 2.0
    stop = asyncio.Event()

    async def served(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # already started: acknowledge only
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    task = asyncio.create_task(serve(served, config, shutdown_trigger=stop.wait, mode="asgi"))
    url = f"http://127.0.0.1:{port}"
    await wait_for_server(url, task=task)
    try:
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawConnection:
    """One HTTP/1.1 connection, written and read by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        host, _, port = url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Write a request; with no Content-Length in *headers*, one for *body* is added."""
        lines = [f"{method} {target} HTTP/1.1", "Host: meshfs.test"]
        given = {k.lower() for k in headers or {}}
        if "content-length" not in given and "transfer-encoding" not in given:
            lines.append(f"Content-Length: {len(body)}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def response(self, wait: float = 10.0) -> RawResponse:
        """Read one response (with a Content-Length body) within *wait* seconds."""
        async with asyncio.timeout(wait):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self, wait: float = 10.0) -> bool:
        """True once the server has closed its side (EOF or reset) within *wait* seconds."""
        try:
            async with asyncio.timeout(wait):
                return await self.reader.read(1) == b""
        except ConnectionError:
            return True

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError):
            await self.writer.wait_closed()
