"""Who a request speaks for: the bearer token, resolved once per request to a
:class:`~meshfs_server.auth.principal.Principal` by :class:`~meshfs_server.auth.service.Identity`.

The token comes from ``Authorization: Bearer`` (or ``?access_token=`` on WebSocket and SSE,
where browsers cannot set headers). A token that fails is audited here, with what the request
acted on, in the tenant it trustworthily names (see :meth:`Identity.audit_auth_failure`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection

from meshfs_common.errors import AuthError
from meshfs_server.auth.principal import Principal
from meshfs_server.auth.service import Identity
from meshfs_server.domain.actor import Actor
from meshfs_server.http.acted_on import request_target

#: Where a request's resolved principal is kept (the rate limiter resolves it first; the
#: route, the audit and the request log reuse it).
PRINCIPAL_KEY = "meshfs.principal"

Authenticate = Callable[[HTTPConnection], Awaitable[Actor]]


def client_address(conn: HTTPConnection) -> str | None:
    """The peer address of a request (a proxy in front should be configured to pass it)."""
    return conn.client.host if conn.client else None


def bearer_token(conn: HTTPConnection) -> str | None:
    """The token in ``Authorization: Bearer``, or ``?access_token=`` for WebSocket and SSE."""
    # The header read straight from the scope (ASGI servers give names in lower case): every
    # request asks, and Starlette's Headers would be built for this alone.
    header: str | None = None
    for name, raw in conn.scope["headers"]:
        if name == b"authorization":
            header = raw.decode("latin-1")
            break
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("use Authorization: Bearer <token>")
        return value.strip()
    streaming = conn.scope["type"] == "websocket" or conn.url.path.endswith("/sync/stream")
    if streaming:
        return conn.query_params.get("access_token") or None
    return None


def resolved_principal(conn: HTTPConnection) -> Principal | None:
    """The principal already resolved for this request, if any."""
    found = conn.scope.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else None


async def principal(identity: Identity, conn: HTTPConnection) -> Principal:
    """Resolve (once per request) the bearer token to a :class:`Principal` (401 otherwise)."""
    cached = resolved_principal(conn)
    if cached is not None:
        return cached
    token = bearer_token(conn)
    if token is None:
        raise AuthError("sign in first (Authorization: Bearer <token>)")
    try:
        found = await identity.resolve(token)
    except AuthError as exc:
        target, ids = request_target(conn)
        method = conn.scope.get("method", "GET")  # a WebSocket handshake is a GET
        await identity.audit_auth_failure(
            exc, client_address(conn), target=target, request=f"{method} {conn.url.path}",
            ids=ids,
        )  # fmt: skip
        raise
    conn.scope[PRINCIPAL_KEY] = found
    return found


def authenticator(identity: Identity) -> Authenticate:
    """The server's :data:`Authenticate`: the actor a request speaks for, from its token."""

    async def authenticate(conn: HTTPConnection) -> Actor:
        return (await principal(identity, conn)).actor

    return authenticate
