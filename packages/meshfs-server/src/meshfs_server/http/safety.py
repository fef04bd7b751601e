"""Safety controls around every request: rate limits, storage quota, and the audit of mutations.

:class:`SafetyMiddleware` is a pure ASGI middleware. For each HTTP request it (1) spends a
token from the client address's auth budget on ``/auth/*`` and ``/device``; (2) resolves the
bearer token once (the endpoint reuses the result) and spends a token from the tenant's
budget; (3) after the response, records an audit row for every mutating request (POST, PUT,
PATCH, DELETE) of an authenticated caller, with its status. Over-limit requests get
``429 rate_limited`` with ``Retry-After`` before any work is done; a database that cannot be
reached while admitting a request makes it ``503 unavailable`` (with ``Retry-After``). The
audit row is written after the answer was sent, so a failure to write it is logged once and
never raised (it could not change the answer).

Quota (see :class:`Quota`): checked inside the metadata transactions, so concurrent uploads
cannot together exceed it. At upload init the upload's declared size is *reserved*:
committed + other pending uploads + this one must fit. At commit, committed + this size must
fit (the version's new chunks are not yet referenced, so this is an upper bound of the usage
after the commit). One-shot writes are checked at commit. Over quota -> ``507
quota_exceeded``. Usage is deduplicated: a chunk referenced by any number of versions and
files counts once.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meshfs_common.errors import AuthError, MeshFSError, QuotaExceededError
from meshfs_server.auth.accounts import Plan
from meshfs_server.auth.ratelimit import Limits
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.ports import UploadRow, WriteTx
from meshfs_server.policy import audit, plans
from meshfs_server.policy.audit import Who

if TYPE_CHECKING:
    from meshfs_server.auth.service import Identity

log = logging.getLogger("meshfs_server.audit")
PLAN_CACHE_SECONDS = 5.0
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Audited where they happen (with more detail), or not mutations of tenant state.
_NOT_AUDITED = {
    "/auth/device/start", "/auth/device/poll", "/auth/device/activate", "/auth/refresh",
    "/auth/logout", "/files/upload/part", "/files/upload/init", "/device",
    "/mcp", "/audit/tool-calls",  # each MCP tool call is audited as mcp.tool.<name>
}  # fmt: skip
_ID_SEGMENT = re.compile(r"/[0-9A-HJKMNP-TV-Z]{26}(?=/|$)")
_IP_LIMITED = ("/auth/", "/device")


class Plans:
    """Tenant plans, cached for a few seconds (they change only by an administrator)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._cache: dict[str, tuple[Plan, float]] = {}

    async def plan(self, tenant_id: str) -> Plan:
        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self.identity.db.read() as conn:
            found = await plans.plan_of(conn, tenant_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[tenant_id] = (found, now + PLAN_CACHE_SECONDS)
        return found


class Quota:
    """Storage quota hooks for :class:`~meshfs_server.domain.content.ContentService`."""

    def __init__(self, identity: Identity, plans_: Plans) -> None:
        self.identity = identity
        self.plans = plans_

    async def limit(self, tenant_id: str) -> int:
        return plans.quota_bytes(await self.plans.plan(tenant_id), self.identity.settings)

    async def reserve(self, tx: WriteTx, actor: Actor, upload: UploadRow) -> None:
        """At upload init: committed + other reservations + this upload must fit."""
        quota = await self.limit(actor.tenant_id)
        usage = await tx.storage_usage(excluding_content=upload.content_hash)
        if usage.committed + usage.pending + upload.size > quota:
            if not actor.scope.whole_tenant:
                raise _exceeded_in_scope(quota, upload.size)
            raise QuotaExceededError(
                f"storage quota exceeded: {usage.committed} bytes stored and {usage.pending}"
                f" reserved by uploads in progress, {upload.size} more asked, quota {quota}",
                detail={"quota": quota, "used": usage.committed, "reserved": usage.pending,
                        "requested": upload.size},
            )  # fmt: skip

    async def commit(self, tx: WriteTx, actor: Actor, chunks: tuple[str, ...]) -> None:
        """At commit (inside the commit transaction): what is stored plus the bytes this version
        newly references must fit. Content already stored (deduplicated) costs nothing - except
        through a limited scope, which is charged every distinct chunk, so whether a write fits
        never tells it whether the tenant stores that content elsewhere."""
        quota = await self.limit(actor.tenant_id)
        usage = await tx.storage_usage()
        if actor.scope.whole_tenant:
            size = await tx.unreferenced_bytes(chunks)
        else:
            size = sum((await tx.chunk_sizes(chunks)).values())
        if usage.committed + size > quota:
            if not actor.scope.whole_tenant:
                raise _exceeded_in_scope(quota, size)
            raise QuotaExceededError(
                f"storage quota exceeded: {usage.committed} bytes stored, {size} more asked,"
                f" quota {quota}",
                detail={"quota": quota, "used": usage.committed, "requested": size},
            )


def _exceeded_in_scope(quota: int, requested: int) -> QuotaExceededError:
    """Over quota, told to a token limited to a path: the tenant's usage is not its to know."""
    return QuotaExceededError(
        f"storage quota exceeded: the tenant's quota is {quota} bytes, {requested} more asked",
        detail={"quota": quota, "requested": requested},
    )


def audit_action(method: str, path: str) -> str:
    """``POST /files/{id}/versions/{id}/restore`` - the route with ids elided."""
    return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"


class SafetyMiddleware:
    """Rate limits and the audit of mutations, in front of every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = getattr(getattr(scope.get("app"), "state", None), "services", None)
        identity: Identity | None = getattr(services, "identity", None)
        if scope["type"] not in ("http", "websocket") or identity is None:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            await identity.admit(conn)
        except MeshFSError as exc:  # over a limit (429), or the database is down (503)
            from meshfs_server.http.errors import render
            from meshfs_server.http.streams import refuse_websocket

            if scope["type"] == "websocket":
                await refuse_websocket(scope, receive, send, exc)
            else:
                await render(exc)(scope, receive, send)
            return
        if scope["type"] == "websocket":  # a stream attempt, counted above; nothing to audit
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
            if conn.scope["method"] in _MUTATING and conn.url.path not in _NOT_AUDITED:
                await _audit_quietly(identity, conn, status)


async def _audit_quietly(identity: Identity, conn: HTTPConnection, status: int) -> None:
    """Audit a request whose answer has been sent: a failure here cannot change that answer
    (raising would only add a second error to the log), so it is logged once and dropped."""
    try:
        await identity.audit_request(conn, status)
    except MeshFSError as exc:  # the database went away after the answer
        log.warning(
            "audit row of %s %s (status %d) not recorded: %s",
            conn.scope["method"], conn.url.path, status, exc.message,
        )  # fmt: skip
    except Exception:
        log.exception("audit row of %s %s (status %d) not recorded", conn.scope["method"],
                      conn.url.path, status)  # fmt: skip


async def admit(identity: Identity, limits: Limits, plans_: Plans, conn: HTTPConnection) -> None:
    """Spend the request's rate-limit tokens (raises :class:`RateLimitedError`)."""
    from meshfs_server.auth.service import PRINCIPAL_KEY, bearer_token, client_address

    path = conn.url.path
    if path.startswith(_IP_LIMITED):
        limits.auth_addresses.take(
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
    capacity = plans.rate_per_minute(await plans_.plan(tenant), identity.settings)
    await limits.tenants.spend(
        f"tenant:{tenant}", capacity=capacity, what="requests for this tenant"
    )


def request_target(conn: HTTPConnection) -> tuple[str, dict[str, str]]:
    """What a request acts on, for its audit row, and details to go with it: what the route
    named (a JSON body's path, the file an upload was committed to), else the ``path`` query
    parameter, else the ids in the URL (the first is the target), else the URL's path."""
    from meshfs_server.http.codec import ACTED_ON

    ids = {k: str(v) for k, v in (conn.scope.get("path_params") or {}).items()}
    noted = conn.scope.get(ACTED_ON)
    if noted is not None:
        return noted[0], {**ids, **noted[1]}
    path = conn.query_params.get("path")
    if path:
        return path, ids
    if ids:
        first = next(iter(ids))
        return ids[first], {k: v for k, v in ids.items() if k != first}
    return conn.url.path, {}


async def audit_request(identity: Identity, conn: HTTPConnection, status: int) -> None:
    """Record a mutating request of an authenticated caller."""
    from meshfs_server.auth.service import PRINCIPAL_KEY, client_address

    principal: Any = conn.scope.get(PRINCIPAL_KEY)
    if principal is None:
        return
    target, noted = request_target(conn)
    # Not fsynced by itself: the mutation was committed durably already (and its change event,
    # with the writer, is in the feed); this row reaches the disk with the next durable commit.
    # That saves the second fsync of every write.
    async with identity.db.write(durable=False) as db:
        await audit.record(
            db, principal.actor.tenant_id, audit_action(conn.scope["method"], conn.url.path),
            outcome="ok" if status < 400 else f"error:{status}",
            who=Who.of(principal.actor, client_address(conn)), target=target,
            detail={"status": status, **noted},
        )  # fmt: skip
