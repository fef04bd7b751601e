"""Request body caps, enforced for every route in one ASGI layer, and clean early answers.

:class:`BodyLimit` sits in front of everything else (rate limits, authentication, routes). It
knows each route's cap (:attr:`~meshfs_server.http.codec.Endpoint.max_body`; routes without a
description get :data:`~meshfs_server.http.codec.SMALL_BODY`), so no route can forget one:

- a ``Content-Length`` over the cap is answered ``413 payload_too_large`` at once; the body
  is never read (a small one, up to :data:`DRAIN_LIMIT`, is read and dropped, see below);
- a body without a length (``Transfer-Encoding: chunked``) is counted as the route reads it,
  and the read that crosses the cap raises :class:`PayloadTooLargeError` (413) - so memory
  stays bounded by the cap however the route reads.

An answer that starts before the request body was read whole (a 401, 400, 413 or 429 decided
from the headers) would leave the rest of the body on the connection, and HTTP/1.1 servers
then close it: a keep-alive client whose next request meets the closed socket sees a reset.
So before such an answer starts, the rest of a small body (at most the route's cap, and at
most :data:`DRAIN_LIMIT`) is read and dropped within :data:`DRAIN_SECONDS`; when that is not
possible the answer carries ``Connection: close``, which tells the client not to reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshfs_common.errors import BadRequestError, PayloadTooLargeError
from meshfs_server.http.codec import PART_BODY, SMALL_BODY, Endpoint
from meshfs_server.http.errors import render

#: The most an early answer waits for, and reads of, a request body it did not need.
DRAIN_SECONDS = 2.0
DRAIN_LIMIT = PART_BODY
_HTTP1 = ("1.0", "1.1")


@dataclass(slots=True)
class _Body:
    """What has been received of one request's body."""

    received: int = 0
    complete: bool = False
    refused: bool = False  # a read crossed the cap
    answered: bool = False  # the response has started


class BodyLimit:
    """Per-route request body caps (413) and keep-alive-safe early answers."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = list(routes)
        self._static_caps: dict[tuple[str | None, str], int | None] = {}

    def cap_of(self, scope: Scope) -> int | None:
        """The body cap of the route *scope* reaches (a small one for unknown routes)."""
        key = (scope.get("method"), scope["path"])
        if key in self._static_caps:  # a path without parameters: always the same route
            return self._static_caps[key]
        for route in self.routes:
            if isinstance(route, Route) and route.matches(scope)[0] is Match.FULL:
                spec: Endpoint | None = getattr(route.endpoint, "openapi", None)
                cap = spec.max_body if spec is not None else SMALL_BODY
                if not route.param_convertors:
                    self._static_caps[key] = cap
                return cap
        return SMALL_BODY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length, chunked = _framing(scope) if scope["type"] == "http" else (None, False)
        if not chunked and not length:  # no body (or not HTTP): nothing to cap or drain
            await self.app(scope, receive, send)
            return
        cap = self.cap_of(scope)
        body = _Body()
        if cap is not None and length is not None and length > cap:
            # Refused from the headers; a small body is read and dropped first, so the
            # connection stays usable, a large one is never read.
            drained = await _drain(_counting(receive, body, None), body, length, None)
            await _too_large(scope, cap, close=not drained)(scope, receive, send)
            return
        counted = _counting(receive, body, cap)

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                body.answered = True
                unread = not body.complete
                if unread and (body.refused or not await _drain(counted, body, length, cap)):
                    message = _closing(scope, message)
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except PayloadTooLargeError:
            if body.answered or not body.refused:
                raise
            assert cap is not None
            await _too_large(scope, cap, close=True)(scope, receive, send)


def _counting(receive: Receive, body: _Body, cap: int | None) -> Receive:
    """*receive*, recording what arrives of the body; the read that crosses *cap* raises 413,
    and a client that leaves before its body is complete (and before the answer) is a
    :class:`BadRequestError` - answered to nobody, and never logged as a server failure."""

    async def counted() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            body.received += len(message.get("body", b""))
            body.complete = not message.get("more_body", False)
            if cap is not None and body.received > cap:
                body.refused = True
                raise _too_large_error(cap)
        elif message["type"] == "http.disconnect":
            cut_short = not body.complete and not body.answered
            body.complete = True
            if cut_short:
                raise BadRequestError(
                    f"the client went away after {body.received} bytes of the request body"
                )
        return message

    return counted


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared ``Content-Length`` (None when absent or unreadable) and whether the body
    is chunked."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.strip()
            length = int(text) if text.isdigit() and len(text) <= 20 else None
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    return length, chunked


async def _drain(receive: Receive, body: _Body, length: int | None, cap: int | None) -> bool:
    """Read and drop the rest of a small body; False when it is too large or too slow."""
    limit = DRAIN_LIMIT if cap is None else min(cap, DRAIN_LIMIT)
    if length is not None and length > limit:
        return False
    with anyio.move_on_after(DRAIN_SECONDS):
        try:
            while not body.complete and body.received <= limit:
                await receive()
        except (PayloadTooLargeError, BadRequestError):  # over the cap, or the client left
            return False
    return body.complete


def _closing(scope: Scope, message: Message) -> Message:
    """*message* (a response start) with ``Connection: close`` on HTTP/1.x."""
    if scope.get("http_version") not in _HTTP1:
        return message
    headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
    return {**message, "headers": [*headers, (b"connection", b"close")]}


def _too_large_error(cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"request body over this endpoint's limit of {cap} bytes", detail={"limit": cap}
    )


def _too_large(scope: Scope, cap: int, *, close: bool) -> ASGIApp:
    """The 413 answer; with *close* (the body was left unread) the connection ends after it."""
    response = render(_too_large_error(cap))
    if close and scope.get("http_version") in _HTTP1:
        response.headers["Connection"] = "close"
    return response
