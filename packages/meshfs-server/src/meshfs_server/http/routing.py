"""Starlette's router with each static path's route remembered after its first match.

Starlette tries the routes in order until one matches, a regular expression per route; with
the API's hundred-odd routes that scan was a visible part of every request. A path without
parameters always reaches the same route for the same method, so the route the scan chose is
kept by ``(type, method, root path, path)`` and tried first next time (the answer is the one
the scan would give: it is the scan's own choice). Paths with parameters are scanned as before,
so the index holds at most one entry per static route and method.
"""

from __future__ import annotations

from starlette.routing import Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

_Key = tuple[str, str | None, str, str]


class IndexedRouter(Router):
    """:class:`starlette.routing.Router`, remembering static paths' routes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._known: dict[_Key, Route | WebSocketRoute] = {}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await super().app(scope, receive, send)
            return
        key = (scope["type"], scope.get("method"), scope.get("root_path", ""), scope["path"])
        route = self._known.get(key)
        if route is not None:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self)
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        chosen: list[Route | WebSocketRoute] = []
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                if (
                    isinstance(candidate, (Route, WebSocketRoute))
                    and not candidate.param_convertors
                ):
                    chosen.append(candidate)
                break
        if chosen:
            self._known[key] = chosen[0]
        await super().app(scope, receive, send)
