"""The server's state as routes and middleware see it: one typed accessor, no ``Any``."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import Scope

from meshfs_common.errors import UnavailableError
from meshfs_server.auth.service import Identity
from meshfs_server.domain.actor import Actor
from meshfs_server.services import Services

#: Scope key: the request's :class:`Services`, found once (middleware and route both ask).
SERVICES_KEY = "meshfs.services"


def maybe_services(scope: Scope) -> Services | None:
    """The state the lifespan built for the app serving *scope* (None before it started)."""
    found = scope.get(SERVICES_KEY)
    if isinstance(found, Services):
        return found
    found = getattr(getattr(scope.get("app"), "state", None), "services", None)
    if not isinstance(found, Services):
        return None
    scope[SERVICES_KEY] = found
    return found


def services(conn: HTTPConnection) -> Services:
    """Everything the running server holds, for a request or WebSocket."""
    found = maybe_services(conn.scope)
    if found is None:  # a request raced the lifespan's start or end
        raise UnavailableError("the server is starting or stopping; try again")
    return found


async def actor(conn: HTTPConnection) -> Actor:
    """The authenticated actor of a request (401 otherwise)."""
    return await services(conn).authenticate(conn)


def identity(conn: HTTPConnection) -> Identity:
    """The process's :class:`Identity` (an app built with a custom authenticate has none)."""
    found = services(conn).identity
    if found is None:
        raise UnavailableError("this server has no accounts")
    return found
