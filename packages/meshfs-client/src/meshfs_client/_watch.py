"""The change feed as a live stream: WebSocket first, pull as the fallback.

:class:`ChangeFeed` yields every :class:`~meshfs_common.models.ChangeEvent` after a cursor, in
``seq`` order, exactly once, for as long as it is iterated:

* It connects to ``/sync/ws?cursor=N``; the server replays the backlog and then streams live
  events. Events at or below the cursor (duplicates after a reconnect) are dropped.
* When the connection drops it reconnects from the last delivered ``seq`` with jittered
  exponential backoff, so nothing is lost or repeated.
* When WebSockets do not work (the endpoint is refused, or a proxy keeps breaking them) it
  polls ``/sync/pull`` from the same cursor instead and tries the WebSocket again now and then.
* A cursor the server no longer retains yields one :class:`FeedReset`: the consumer must
  reconcile from a listing and the feed continues from the new cursor.

Its :attr:`ChangeFeed.state` says where it stands - ``connecting``, ``live`` (caught up,
events arrive as they happen) or ``offline`` (the server cannot be reached; the next try is at
:attr:`ChangeFeed.retry_at`) - and an ``on_state`` callback hears every change of it, so a
program can say "offline - retrying in 4s" while no event arrives.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import aiohttp
import msgspec

from meshfs_client._retry import RetryPolicy, backoff_delay
from meshfs_client._transport import Transport
from meshfs_common.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    MeshFSError,
    MethodNotAllowedError,
    NotFoundError,
    UnavailableError,
    error_from_envelope,
)
from meshfs_common.models import ChangeEvent, PullResponse, StreamMessage

RECONNECT_POLICY = RetryPolicy(attempts=0, initial=0.5, maximum=30.0)
"""Backoff between reconnects (``attempts`` unused: a feed retries until closed)."""

_WS_FAILURES_BEFORE_PULL = 3


@dataclass(frozen=True, slots=True)
class FeedReset:
    """The cursor was older than the retained log (or unknown to the server).

    Reconcile local state from a listing; the feed continues after ``cursor``.
    """

    cursor: int


FeedItem = ChangeEvent | FeedReset

FeedState = Literal["connecting", "live", "offline"]


class _WebSocketUnsupportedError(Exception):
    pass


class ChangeFeed:
    """Change events after a cursor, delivered live (see the module docstring).

    Use as ``async with client.watch(cursor) as feed: async for item in feed: ...``.
    ``cursor`` is always the ``seq`` of the last event delivered; persist it to resume later.
    """

    def __init__(
        self,
        transport: Transport,
        cursor: int = 0,
        *,
        websocket: bool = True,
        poll_interval: float = 2.0,
        ws_retry_interval: float = 60.0,
        reconnect: RetryPolicy = RECONNECT_POLICY,
        max_failures: int | None = None,
        on_state: Callable[[ChangeFeed], None] | None = None,
    ) -> None:
        self._transport = transport
        self.cursor = cursor
        self.live = False
        """True once the backlog has been delivered and events arrive as they happen."""
        self.state: FeedState = "connecting"
        """``connecting``, ``live`` or ``offline`` (see the module docstring)."""
        self.error = ""
        """Why the feed is offline (the last failure), else empty."""
        self.retry_at = 0.0
        """When offline: the ``time.monotonic()`` of the next attempt."""
        self._on_state = on_state
        self._websocket_enabled = websocket
        self.mode = "websocket" if websocket else "pull"
        """``websocket`` or ``pull``: how events are currently obtained."""
        self._poll_interval = poll_interval
        self._ws_retry_interval = ws_retry_interval
        self._reconnect = reconnect
        self._max_failures = max_failures
        self._failures = 0
        self._pull_since = 0.0
        self._generator: AsyncGenerator[FeedItem, None] | None = None

    async def __aenter__(self) -> ChangeFeed:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._generator is not None:
            await self._generator.aclose()

    def __aiter__(self) -> AsyncGenerator[FeedItem, None]:
        if self._generator is None:
            self._generator = self._items()
        return self._generator

    def _set_state(self, state: FeedState, error: str = "", retry_in: float = 0.0) -> None:
        changed = (state, error) != (self.state, self.error)
        self.state, self.error = state, error
        self.retry_at = time.monotonic() + retry_in if state == "offline" else 0.0
        if self._on_state is not None and (changed or state == "offline"):
            self._on_state(self)

    def _caught_up(self) -> None:
        self.live = True
        if self.state != "live":
            self._set_state("live")

    async def _failed(self, error: MeshFSError) -> None:
        """Count a transient failure and wait before the next try."""
        if isinstance(error, AuthError | ForbiddenError):
            raise error
        self.live = False
        self._failures += 1
        if self._max_failures is not None and self._failures >= self._max_failures:
            raise error
        delay = backoff_delay(self._failures, self._reconnect, random.random())
        self._set_state("offline", error.message, delay)
        await asyncio.sleep(delay)

    async def _items(self) -> AsyncGenerator[FeedItem, None]:
        ws_failures = 0
        while True:
            if self.mode == "pull" and self._ws_retry_due():
                self.mode = "websocket"
            if self.mode == "websocket":
                try:
                    async for item in self._from_websocket():
                        ws_failures = 0
                        yield item
                except _WebSocketUnsupportedError:
                    self._to_pull()
                except (AuthError, ForbiddenError):
                    raise
                except MeshFSError as exc:
                    ws_failures += 1
                    if ws_failures >= _WS_FAILURES_BEFORE_PULL:
                        ws_failures = 0
                        self._to_pull()
                        continue
                    await self._failed(exc)
                continue
            try:
                async for item in self._from_pull():
                    yield item
            except MeshFSError as exc:
                if not exc.retryable:
                    raise
                await self._failed(exc)

    def _ws_retry_due(self) -> bool:
        return (
            self._websocket_enabled
            and self._ws_retry_interval > 0
            and time.monotonic() - self._pull_since >= self._ws_retry_interval
        )

    def _to_pull(self) -> None:
        self.mode = "pull"
        self.live = False
        self._pull_since = time.monotonic()

    async def _from_websocket(self) -> AsyncGenerator[FeedItem, None]:
        try:
            ws = await self._transport.websocket("/sync/ws", params={"cursor": self.cursor})
        except (NotFoundError, MethodNotAllowedError, BadRequestError) as exc:
            raise _WebSocketUnsupportedError(str(exc)) from exc
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
                    continue
                try:
                    decoded = msgspec.json.decode(message.data, type=StreamMessage)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue  # a message type this client does not know yet
                if decoded.type == "hello":
                    self._failures = 0
                elif decoded.type == "caught_up":
                    self._caught_up()
                elif decoded.type == "event" and decoded.event is not None:
                    if decoded.event.seq > self.cursor:
                        self.cursor = decoded.event.seq
                        yield decoded.event
                elif decoded.type == "reset" and decoded.cursor is not None:
                    self.cursor = decoded.cursor
                    yield FeedReset(decoded.cursor)
                elif decoded.type == "error" and decoded.error is not None:
                    raise error_from_envelope(400, msgspec.structs.asdict(decoded.error))
        finally:
            self.live = False
            await ws.close()
        # The server closed the connection: a transient failure, reconnect from the cursor.
        raise UnavailableError("the change feed connection was closed")

    async def _from_pull(self) -> AsyncGenerator[FeedItem, None]:
        while True:
            page = await self._transport.call(
                "GET",
                "/sync/pull",
                PullResponse,
                params={"cursor": self.cursor, "limit": 1000},
                idempotent=True,
            )
            self._failures = 0
            if page.reset:
                self.cursor = page.cursor
                yield FeedReset(page.cursor)
            for event in page.events:
                if event.seq > self.cursor:
                    self.cursor = event.seq
                    yield event
            if not page.reset and not page.events:
                self.cursor = max(self.cursor, page.cursor)
            if page.has_more:
                continue
            self._caught_up()
            if self._ws_retry_due():
                return  # give the WebSocket another chance
            await asyncio.sleep(self._poll_interval)
