"""Stopping promptly: when the server begins to shut down, open streams end at once.

Change-feed streams (WebSocket, Server-Sent Events) never end by themselves, so without this
the server would wait out its whole graceful timeout on every open one. :class:`Draining`, an
ASGI middleware in front of every route, watches :class:`Shutdown`. Once it is set:

- a streaming HTTP response (SSE) hears ``http.disconnect``, stops, and the middleware ends
  its body properly (clients reconnect from their cursor to another server, or to this one
  when it is back);
- a WebSocket hears ``websocket.disconnect``, and the middleware closes it with code ``1001``
  ("going away", RFC 6455 7.4.1) unless the route closed it itself.

Requests that are still reading their body are left alone: they finish within the server's
graceful timeout.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: RFC 6455: the endpoint is going away (a server shutting down).
GOING_AWAY = 1001


class Shutdown:
    """Set once, when the server begins to stop; counts the requests still open."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.open_requests = 0
        """HTTP requests and WebSockets being served (streams included)."""

    def begin(self) -> None:
        """Start shutting down: every open stream ends now."""
        self._event.set()

    @property
    def started(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once shutdown has begun."""
        await self._event.wait()


async def _receive_until(receive: Receive, shutdown: Shutdown) -> Message | None:
    """The next message from the client, or None when shutdown begins first."""
    if shutdown.started:
        return None
    message = asyncio.ensure_future(receive())
    stopped = asyncio.ensure_future(shutdown.wait())
    try:
        await asyncio.wait({message, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (message, stopped):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return message.result() if message.done() and not message.cancelled() else None


class Draining:
    """Ends open streams when :class:`Shutdown` begins (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.shutdown.open_requests += 1
        try:
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        finally:
            self.shutdown.open_requests -= 1

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        responding = finished = body_read = False

        async def watch(message: Message) -> None:
            nonlocal responding, finished
            if message["type"] == "http.response.start":
                responding = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        async def until_shutdown() -> Message:
            # A body still being uploaded is read as usual; once it is all in, what is left
            # to hear is the disconnect a streaming answer waits for.
            nonlocal body_read
            if not body_read:
                got = await receive()
                body_read = got["type"] != "http.request" or not got.get("more_body")
                return got
            stopped = await _receive_until(receive, self.shutdown)
            return {"type": "http.disconnect"} if stopped is None else stopped

        await self.app(scope, until_shutdown, watch)
        if self.shutdown.started and responding and not finished:
            # A stream ended by shutdown: end the body properly, so the client reads a
            # complete answer (and reconnects) rather than a broken transfer.
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = {"accepted": False, "closed": False}

        async def watch(message: Message) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] in ("websocket.close", "websocket.http.response.start"):
                state["closed"] = True
            await send(message)

        async def until_shutdown() -> Message:
            got = await _receive_until(receive, self.shutdown)
            if got is None:
                return {"type": "websocket.disconnect", "code": GOING_AWAY}
            if got["type"] == "websocket.disconnect":
                state["closed"] = True  # the client went first: nothing to close
            return got

        await self.app(scope, until_shutdown, watch)
        if self.shutdown.started and state["accepted"] and not state["closed"]:
            await send(
                {"type": "websocket.close", "code": GOING_AWAY, "reason": "server shutting down"}
            )
