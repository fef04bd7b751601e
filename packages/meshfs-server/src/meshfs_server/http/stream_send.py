"""The server's own ``send`` for established change streams.

Every request passes through the request middleware (request log, draining, body limits,
safety) and Starlette's exception handling, and each of them wraps ``send`` to watch what the
route answers. For an ordinary request that is a handful of calls; for a live event sent to
10,000 open streams it is the larger part of the fan-out's cost. What those wrappers watch is
the start and end of an answer (status, accept, close, the last body part), never the frames
in between, so an established stream sends its live frames through the server's ``send``
directly: :class:`StreamSend`, outermost, records it in the scope and :func:`server_send`
returns it. A stream's start, refusal and close still go through the middleware.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

SERVER_SEND = "meshfs.server_send"
"""Scope key under which :class:`StreamSend` keeps the server's ``send``."""


class StreamSend:
    """Pure ASGI middleware (outermost) that records the server's ``send`` in the scope of
    every HTTP request and WebSocket, for :func:`server_send`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def server_send(scope: Scope, fallback: Send) -> Send:
    """The server's ``send`` for a stream's frames (not its start or end), or *fallback* in an
    application built without :class:`StreamSend`."""
    send: Send | None = scope.get(SERVER_SEND)
    return send if send is not None else fallback
