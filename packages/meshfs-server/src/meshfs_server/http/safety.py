"""Safety controls around every request: rate limits and the audit of mutations.

:class:`SafetyMiddleware` is a pure ASGI middleware. For each HTTP request it (1) spends a
token from the client address's auth budget on ``/auth/*`` and ``/device``; (2) resolves the
bearer token once (the endpoint reuses the result) and spends a token from the tenant's
budget; (3) after the response, records an audit row for every mutating request (POST, PUT,
PATCH, DELETE) of an authenticated caller, with its status. Over-limit requests get
``429 rate_limited`` with ``Retry-After`` before any work is done; a database that cannot be
reached while admitting a request makes it ``503 unavailable`` (with ``Retry-After``). The
audit row is written after the answer was sent, so a failure to write it is logged once and
never raised (it could not change the answer).

Storage quota is not checked here but inside the metadata transactions: see
:mod:`meshfs_server.policy.quota`.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshfs_common.errors import AuthError, MeshFSError
from meshfs_server.auth.service import Identity
from meshfs_server.http.acted_on import request_target
from meshfs_server.http.authn import (
    PRINCIPAL_KEY,
    bearer_token,
    client_address,
    resolved_principal,
)
from meshfs_server.http.errors import render
from meshfs_server.http.state import maybe_services
from meshfs_server.http.streams import refuse_websocket
from meshfs_server.policy import plans
from meshfs_server.policy.audit import AuditedRequest

log = logging.getLogger("meshfs_server.audit")
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Audited where they happen (with more detail), or not mutations of tenant state.
_NOT_AUDITED = {
    "/auth/device/start", "/auth/device/poll", "/auth/device/activate", "/auth/refresh",
    "/auth/logout", "/files/upload/part", "/files/upload/init", "/device",
    "/mcp", "/audit/tool-calls",  # each MCP tool call is audited as mcp.tool.<name>
}  # fmt: skip
_ID_SEGMENT = re.compile(r"/[0-9A-HJKMNP-TV-Z]{26}(?=/|$)")
_IP_LIMITED = ("/auth/", "/device")


def audit_action(method: str, path: str) -> str:
    """``POST /files/{id}/versions/{id}/restore`` - the route with ids elided."""
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


class SafetyMiddleware:
    """Rate limits and the audit of mutations, in front of every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = _identity(scope)
        if scope["type"] not in ("http", "websocket") or identity is None:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            await admit(identity, conn)
        except MeshFSError as exc:  # over a limit (429), or the database is down (503)
            if scope["type"] == "websocket":
                await refuse_websocket(scope, receive, send, exc)
            else:
                await render(exc)(scope, receive, send)
            return
        if scope["type"] == "websocket" or scope["method"] not in _MUTATING:
            # A stream attempt (counted above), or a read: nothing to audit, nothing to watch.
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if conn.url.path not in _NOT_AUDITED:
                await _audit_quietly(identity, conn, status)


def _identity(scope: Scope) -> Identity | None:
    """The process's identity, once the lifespan has built the server's state (an app built
    with a custom authenticate has none, and so no rate limits or audit)."""
    services = maybe_services(scope)
    return None if services is None else services.identity


async def _audit_quietly(identity: Identity, conn: HTTPConnection, status: int) -> None:
    """Audit a request whose answer has been sent: a failure here cannot change that answer
    (raising would only add a second error to the log), so it is logged once and dropped."""
    try:
        record = audited_request(conn)
        if record is not None:
            await identity.audit_request(record, status)
    except MeshFSError as exc:  # the database went away after the answer
        log.warning(
            "audit row of %s %s (status %d) not recorded: %s",
            conn.scope["method"], conn.url.path, status, exc.message,
        )  # fmt: skip
    except Exception:
        log.exception("audit row of %s %s (status %d) not recorded", conn.scope["method"],
                      conn.url.path, status)  # fmt: skip


async def admit(identity: Identity, conn: HTTPConnection) -> None:
    """Spend the request's rate-limit tokens (raises :class:`RateLimitedError`)."""
    limits = identity.limits
    path: str = conn.scope["path"]
    if path.startswith(_IP_LIMITED):
        await limits.auth_addresses.spend(
            f"ip:{client_address(conn)}", what="sign-in requests from this address"
        )
    try:
        token = bearer_token(conn)
    except AuthError:
        return
    if token is None:
        return
    try:
        principal = await identity.resolve(token)
    except AuthError:
        return  # the endpoint answers 401 (and audits the failure)
    conn.scope[PRINCIPAL_KEY] = principal
    tenant = principal.actor.tenant_id
    capacity = plans.rate_per_minute(await identity.plans.plan(tenant), identity.settings)
    await limits.tenants.spend(
        f"tenant:{tenant}", capacity=capacity, what="requests for this tenant"
    )


def audited_request(conn: HTTPConnection) -> AuditedRequest | None:
    """The audit row's view of a request of an authenticated caller (None: nobody signed in)."""
    principal = resolved_principal(conn)
    if principal is None:
        return None
    target, noted = request_target(conn)
    return AuditedRequest(
        actor=principal.actor, action=audit_action(conn.scope["method"], conn.url.path),
        target=target, detail=noted, client_address=client_address(conn),
    )  # fmt: skip
