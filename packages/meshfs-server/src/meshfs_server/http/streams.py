"""How many change streams (SSE and WebSocket) a token and a tenant may hold open at once.

A mirror or a mount holds one or two; a token that opens more than
``MESHFS_MAX_STREAMS_PER_TOKEN`` (or a tenant more than ``MESHFS_MAX_STREAMS_PER_TENANT``) is
refused with ``429 rate_limited`` before the stream starts: an SSE request gets the error
envelope, a WebSocket handshake the same HTTP answer (or, on a server without the WebSocket
denial extension, an accept and at once close code :data:`CLOSE_OVER_LIMIT`). The limits hold
across every server process sharing the database: each keeps its counts in memory and, on a
server with a database, admits a stream only through
:class:`~meshfs_server.auth.stream_counts.SharedStreamCounts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Mapping
from types import TracebackType

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from meshfs_common.errors import MeshFSError, RateLimitedError
from meshfs_server.auth.stream_counts import SharedStreamCounts
from meshfs_server.domain.actor import Actor
from meshfs_server.http.errors import render
from meshfs_server.http.stream_send import server_send

#: WebSocket close code for a stream refused over a limit (4000 + the HTTP status).
CLOSE_OVER_LIMIT = 4429
#: Seconds a refused client is asked to wait before trying again.
RETRY_SECONDS = 5.0


def token_key(actor: Actor) -> str:
    """The token (session) a stream counts against."""
    return f"session:{actor.session_id}" if actor.session_id else f"user:{actor.user_id}"


class StreamSlot:
    """One admitted stream; :meth:`release` (or leaving the ``with`` block) frees it."""

    def __init__(self, slots: StreamSlots, token: str, tenant: str) -> None:
        self._slots = slots
        self._keys: tuple[str, str] | None = (token, tenant)

    def release(self) -> None:
        """Free the slot (once; later calls do nothing)."""
        if self._keys is not None:
            self._slots._free(*self._keys)
            self._keys = None

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


class StreamSlots:
    """Open-stream counts per token and per tenant: this process's, and with *shared* every
    process's."""

    def __init__(
        self, per_token: int, per_tenant: int, shared: SharedStreamCounts | None = None
    ) -> None:
        self.per_token = per_token
        self.per_tenant = per_tenant
        self.shared = shared
        self._tokens: Counter[str] = Counter()
        self._tenants: Counter[str] = Counter()

    async def admit(self, actor: Actor) -> StreamSlot:
        """Admit one more stream for *actor*, counting every process's streams when shared,
        or raise :class:`RateLimitedError` (429)."""
        slot = self.open(actor)
        if self.shared is None:
            return slot
        token, tenant = token_key(actor), actor.tenant_id
        own = {f"token:{token}": self._tokens[token], f"tenant:{tenant}": self._tenants[tenant]}
        limits = {f"token:{token}": self.per_token, f"tenant:{tenant}": self.per_tenant}
        try:
            over = await self.shared.admit(own, limits)
        except BaseException:
            slot.release()
            raise
        if over is not None:
            slot.release()
            if over.startswith("token:"):
                raise _over("this token", self.per_token)
            raise _over("this tenant", self.per_tenant)
        return slot

    def count_of(self, key: str) -> int:
        """This process's open streams under a shared key (``token:...``, ``tenant:...``)."""
        kind, _, name = key.partition(":")
        return (self._tokens if kind == "token" else self._tenants).get(name, 0)

    def holding(self) -> bool:
        """Whether this process holds any stream."""
        return bool(self._tenants)

    def open(self, actor: Actor) -> StreamSlot:
        """Admit one more stream for *actor* by this process's counts alone, or raise
        :class:`RateLimitedError` (429); see :meth:`admit`."""
        token, tenant = token_key(actor), actor.tenant_id
        if self._tokens[token] >= self.per_token:
            raise _over("this token", self.per_token)
        if self._tenants[tenant] >= self.per_tenant:
            raise _over("this tenant", self.per_tenant)
        self._tokens[token] += 1
        self._tenants[tenant] += 1
        return StreamSlot(self, token, tenant)

    def count(self, actor: Actor) -> tuple[int, int]:
        """Streams open now for *actor*'s token and tenant."""
        return self._tokens[token_key(actor)], self._tenants[actor.tenant_id]

    def _free(self, token: str, tenant: str) -> None:
        for counts, key in ((self._tokens, token), (self._tenants, tenant)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
        if self.shared is not None:
            self.shared.ended(f"token:{token}", f"tenant:{tenant}")


class HeldStream(StreamingResponse):
    """A streamed answer that holds *slot* until it ends, however it ends (even when the client
    leaves before the first byte).

    Its start and its end go through the request middleware; the parts in between go to the
    server's ``send`` directly (:mod:`.stream_send`): an event sent to thousands of open
    streams costs each of them one call, not one per middleware. (The access log's size of
    such an answer therefore counts only its start.)"""

    def __init__(
        self,
        slot: StreamSlot,
        content: AsyncIterable[bytes],
        *,
        media_type: str,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.slot = slot
        self._send_part: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send_part = server_send(scope, send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        send_part = self._send_part or send
        async for chunk in self.body_iterator:
            part = chunk if isinstance(chunk, bytes | memoryview) else chunk.encode(self.charset)
            await send_part({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def refuse_websocket(scope: Scope, receive: Receive, send: Send, error: MeshFSError) -> None:
    """Refuse a WebSocket handshake with *error*: its envelope as the HTTP answer (the WebSocket
    denial extension), else accept and close at once with code ``4000 + status`` (4429 over a
    limit) and the message as the reason, so the client still learns why."""
    ws = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await ws.send_denial_response(render(error))
    else:
        await ws.accept()
        await ws.close(code=4000 + error.status, reason=error.message[:120])


def _over(whose: str, limit: int) -> RateLimitedError:
    return RateLimitedError(
        f"too many open change streams for {whose} (at most {limit}); close one, or retry later",
        retry_after=RETRY_SECONDS,
        detail={"open_streams_limit": limit},
    )
