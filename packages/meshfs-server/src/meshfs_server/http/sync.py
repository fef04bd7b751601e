"""Change feed routes: cursor pull, Server-Sent Events, and WebSocket push."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from meshfs_common.errors import MeshFSError
from meshfs_common.models import ErrorBody, PullResponse, StreamMessage, encode
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.feed import CaughtUp, ChangeFeed, Followed, Reset
from meshfs_server.http import state
from meshfs_server.http.codec import (
    Endpoint,
    Param,
    endpoint,
    parse_int,
    query_int,
    respond,
)
from meshfs_server.http.errors import UNAVAILABLE_RETRY_AFTER, render, retry_after
from meshfs_server.http.state import actor
from meshfs_server.http.stream_send import server_send
from meshfs_server.http.streams import HeldStream, refuse_websocket

TAGS = ("sync",)
HEARTBEAT_SECONDS = 15.0
BINARY_REFUSED = "binary frames are not understood; send StreamMessage JSON as text"
_incoming = msgspec.json.Decoder(StreamMessage)


@endpoint(Endpoint(
    "Events after a cursor, in sequence order; reset=true when the cursor is not retained",
    response=PullResponse,
    params=(Param("cursor", type="integer"), Param("limit", type="integer")),
    errors=("bad_request",), tags=TAGS,
))  # fmt: skip
async def pull(request: Request) -> Response:
    who = await actor(request)
    feed: ChangeFeed = state.services(request).feed
    page = await feed.pull(
        who.tenant_id,
        query_int(request, "cursor", 0) or 0,
        query_int(request, "limit", 1000, minimum=1) or 1000,
        scope=who.scope,
    )
    return respond(page)


def sse_frame(item: Followed) -> bytes:
    """One followed item as an SSE frame (one encoder for every stream: see
    :meth:`ChangeFeed.follow_encoded`)."""
    if isinstance(item, Reset):
        return b"event: reset\ndata: " + encode({"cursor": item.cursor}) + b"\n\n"
    if isinstance(item, CaughtUp):
        return b"event: caught_up\ndata: " + encode({"cursor": item.cursor}) + b"\n\n"
    return f"id: {item.seq}\nevent: change\ndata: ".encode() + encode(item) + b"\n\n"


def ws_send(item: Followed) -> Message:
    """One followed item as the ASGI ``websocket.send`` of a :class:`StreamMessage` (one
    encoder for every socket: a live event's message is made once and sent to all)."""
    if isinstance(item, Reset):
        message = StreamMessage(type="reset", cursor=item.cursor)
    elif isinstance(item, CaughtUp):
        message = StreamMessage(type="caught_up", cursor=item.cursor)
    else:
        message = StreamMessage(type="event", cursor=item.seq, event=item)
    return {"type": "websocket.send", "text": encode(message).decode()}


SSE_HEARTBEAT = b": heartbeat\n\n"


@endpoint(Endpoint(
    "Server-Sent Events of the change feed (id = seq; honours Last-Event-ID)",
    response=str, response_media="text/event-stream",
    params=(Param("cursor", type="integer"), Param("Last-Event-ID", "header")), tags=TAGS,
    errors=("bad_request",),
))  # fmt: skip
async def stream(request: Request) -> Response:
    who = await actor(request)
    feed: ChangeFeed = state.services(request).feed
    last_id = request.headers.get("last-event-id")
    if last_id:
        cursor = parse_int(last_id, "Last-Event-ID")
    else:
        default = await feed.head(who.tenant_id)
        cursor = query_int(request, "cursor", default) or 0
    interval = state.services(request).settings_heartbeat

    async def events() -> AsyncIterator[bytes]:
        yield b": connected\nretry: 1000\n\n"
        following = feed.follow_encoded(
            who.tenant_id, cursor, sse_frame, scope=who.scope, heartbeat=(interval, SSE_HEARTBEAT)
        )
        try:
            async for frame in following:
                yield frame
        except MeshFSError as exc:  # the backend went away: say so, then end the stream
            yield stream_error(exc)

    slot = await state.services(request).streams.admit(who)  # 429 over the open-stream limits
    return HeldStream(
        slot,
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def websocket(ws: WebSocket) -> None:
    """``/sync/ws``: subscribe, replay the backlog after ``cursor``, then stream live events."""
    try:
        who = await actor(ws)
        requested = query_int(ws, "cursor")
    except MeshFSError as exc:
        await _deny(ws, exc)
        return
    try:
        slot = await state.services(ws).streams.admit(who)
    except MeshFSError as exc:  # over the open-stream limits: 429 (or close 4429); or 503
        await refuse_websocket(ws.scope, ws.receive, ws.send, exc)
        return
    with slot:
        await _serve_socket(ws, who, requested)


async def _serve_socket(ws: WebSocket, who: Actor, requested: int | None) -> None:
    feed: ChangeFeed = state.services(ws).feed
    try:
        cursor = requested if requested is not None else await feed.head(who.tenant_id)
    except MeshFSError as exc:  # the database is down: 503 (with Retry-After) to the handshake
        await _deny(ws, exc)
        return
    await ws.accept()
    # Frames go to the server's send past the request middleware (see .stream_send); the
    # pump and the listener may both send, which the server serialises per connection.
    send_frame = server_send(ws.scope, ws.send)

    async def send(message: StreamMessage) -> None:
        await send_frame({"type": "websocket.send", "text": encode(message).decode()})

    failure: MeshFSError | None = None

    async def pump(scope: anyio.CancelScope) -> None:
        nonlocal failure
        await send(StreamMessage(type="hello", cursor=cursor))
        try:
            async for frame in feed.follow_encoded(who.tenant_id, cursor, ws_send, scope=who.scope):
                await send_frame(frame)
        except MeshFSError as exc:  # the backend went away: closed below with a "try again"
            failure = exc
            scope.cancel()

    async def listen(scope: anyio.CancelScope) -> None:
        while True:
            received = await ws.receive()
            if received["type"] == "websocket.disconnect":
                break
            raw = received.get("text")
            if raw is None:  # a binary frame: say what is expected and keep serving
                error = ErrorBody(error="bad_request", error_description=BINARY_REFUSED)
                await send(StreamMessage(type="error", error=error))
                continue
            try:
                message = _incoming.decode(raw)
            except msgspec.MsgspecError:
                error = ErrorBody(error="bad_request", error_description="unreadable message")
                await send(StreamMessage(type="error", error=error))
                continue
            if message.type == "ping":
                await send(StreamMessage(type="pong", cursor=message.cursor))
        scope.cancel()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(pump, tasks.cancel_scope)
            tasks.start_soon(listen, tasks.cancel_scope)
        if failure is not None:
            await _close_failed(ws, send, failure)
    except* (WebSocketDisconnect, anyio.ClosedResourceError, RuntimeError):
        pass  # the peer went away while we were sending


#: WebSocket close code when a backend (database) is unavailable: 1013 "Try Again Later"
#: (RFC 6455 registry). Reconnect after a pause with the last cursor.
CLOSE_TRY_AGAIN = 1013


def stream_error(error: MeshFSError) -> bytes:
    """The last SSE frame of a stream ended by *error*: ``event: error`` with the envelope, and
    a ``retry:`` that asks the client to reconnect (with Last-Event-ID) after the pause."""
    wait_ms = int(retry_after(error) or UNAVAILABLE_RETRY_AFTER) * 1000
    return (
        f"retry: {wait_ms}\nevent: error\ndata: ".encode() + encode(error.to_envelope()) + b"\n\n"
    )


async def _close_failed(
    ws: WebSocket, send: Callable[[StreamMessage], Awaitable[None]], error: MeshFSError
) -> None:
    """Tell the client why (an ``error`` message), then close: 1013 when retrying later helps,
    else ``4000 + status`` (as for a refused handshake)."""
    envelope = ErrorBody(error=error.code, error_description=error.message)
    await send(StreamMessage(type="error", error=envelope))
    code = CLOSE_TRY_AGAIN if error.retryable else 4000 + error.status
    await ws.close(code=code, reason=error.message[:120])


async def _deny(ws: WebSocket, error: MeshFSError) -> None:
    """Refuse the handshake with the error envelope as an HTTP answer (or a close code)."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(render(error))
    else:
        await ws.close(code=4000 + error.status, reason=error.message[:120])


routes = [
    Route("/sync/pull", pull, methods=["GET"]),
    Route("/sync/stream", stream, methods=["GET"]),
    WebSocketRoute("/sync/ws", websocket),
]
