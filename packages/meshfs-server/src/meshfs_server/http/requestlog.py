"""The server console's record of requests: an access log line per request, a warning per 429.

:class:`RequestLog` is a pure ASGI middleware in front of every route (and in front of the
rate limiter, so refused requests are seen too). When a request ends it logs, on
``meshfs_server.access`` at INFO::

    127.0.0.1 "GET /files/list?path=%2Fdocs" 200 1.2kB 3.1ms
    127.0.0.1 "WS /sync/ws?cursor=7&access_token=[hidden]" 101 closed 1001 12.4s

and every ``429`` on ``meshfs_server.ratelimit`` at WARNING, whether or not the access log is
on. Secrets never reach the log: query parameters that carry one (``access_token`` and any name
with token, secret, password, code, key or signature in it) are shown as ``[hidden]``, the
``Authorization`` header is not logged at all, and everything a client chose (path, query,
device name) is made printable and bounded first (:func:`meshfs_server.display.printable`).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshfs_server.auth.principal import Principal
from meshfs_server.display import printable
from meshfs_server.http.authn import PRINCIPAL_KEY

access_log = logging.getLogger("meshfs_server.access")
rate_log = logging.getLogger("meshfs_server.ratelimit")

_SECRET_PARAM = re.compile(r"token|secret|passw|code|key|signature|credential", re.IGNORECASE)
_TARGET_LIMIT = 200


def _query(raw: bytes) -> str:
    """The query string as sent, with the values of secret-bearing parameters hidden."""
    parts = []
    for pair in raw.decode("latin-1").split("&"):
        name, sep, _ = pair.partition("=")
        parts.append(f"{name}=[hidden]" if sep and _SECRET_PARAM.search(name) else pair)
    return "&".join(parts)


def request_target(scope: Scope) -> str:
    """``METHOD /path?query`` of a request, safe to log (secrets hidden, printable, bounded)."""
    method = "WS" if scope["type"] == "websocket" else scope.get("method", "?")
    target = scope.get("path", "")
    raw = scope.get("query_string", b"")
    if raw:
        target += "?" + _query(raw)
    return f"{method} {printable(target, _TARGET_LIMIT)}"


def _size(count: int) -> str:
    if count < 1000:
        return f"{count}B"
    if count < 1_000_000:
        return f"{count / 1000:.1f}kB"
    return f"{count / 1_000_000:.1f}MB"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.1f}s"


def _who(scope: Scope) -> str:
    """Who a refused request spoke for, when its token was resolved before the refusal."""
    principal = scope.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        return ""  # refused on its address's budget, before its token was looked at
    actor = principal.actor
    name = actor.agent_name or actor.device_name
    named = f" ({printable(name)})" if name else ""
    return f" for user {actor.user_id}{named} of tenant {actor.tenant_id}"


class RequestLog:
    """Logs each request when it ends (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, access: bool = True) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": None, "bytes": 0, "close": None, "retry": None}

        async def watch(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                seen["status"] = message["status"]
                if message["status"] == 429:  # its wait is logged too
                    for name, value in message.get("headers", ()):
                        if name.lower() == b"retry-after":
                            seen["retry"] = value.decode("latin-1")
            elif kind in ("http.response.body", "websocket.http.response.body"):
                seen["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.accept":
                seen["status"] = 101
            elif kind == "websocket.close":
                seen["close"] = message.get("code", 1000)
            await send(message)

        async def heard() -> Message:
            got = await receive()
            if got["type"] == "websocket.disconnect" and seen["close"] is None:
                seen["close"] = got.get("code", 1005)
            return got

        try:
            await self.app(scope, heard if scope["type"] == "websocket" else receive, watch)
        except BaseException:
            if seen["status"] is None:
                seen["status"] = 500
            raise
        finally:
            self._log(scope, seen, time.perf_counter() - started)

    def _log(self, scope: Scope, seen: dict[str, Any], elapsed: float) -> None:
        status = seen["status"]
        if status != 429 and not (self.access and access_log.isEnabledFor(logging.INFO)):
            return  # nothing to log: the common case costs no formatting
        client = scope.get("client")
        address = printable(str(client[0])) if client else "-"
        if status == 429:
            wait = f"; retry after {printable(seen['retry'])} s" if seen["retry"] else ""
            rate_log.warning(
                'rate limited (429): %s "%s"%s%s',
                address, request_target(scope), _who(scope), wait,
            )  # fmt: skip
            return
        target = request_target(scope)
        if scope["type"] == "websocket":
            closed = "" if seen["close"] is None else f" closed {seen['close']}"
            shown = status if status is not None else "-"
            access_log.info('%s "%s" %s%s %s', address, target, shown, closed, _duration(elapsed))
            return
        access_log.info(
            '%s "%s" %s %s %s',
            address, target, status if status is not None else "-", _size(seen["bytes"]),
            _duration(elapsed),
        )  # fmt: skip
