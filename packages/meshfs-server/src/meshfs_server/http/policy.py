"""Tenant policy routes: the audit log, the plan and its usage, retention.

Routes parse, call :mod:`meshfs_server.policy` and render.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from meshfs_common.errors import BadRequestError
from meshfs_common.models import AuditPage, PlanInfo, RetentionPolicy, RetentionReport
from meshfs_server.http.auth import principal_of
from meshfs_server.http.authn import client_address
from meshfs_server.http.codec import (
    Endpoint,
    Param,
    endpoint,
    parse_json,
    query_int,
    query_str,
    respond,
)
from meshfs_server.http.state import identity as identity_of
from meshfs_server.http.state import services
from meshfs_server.policy import audit, plans, retention


@endpoint(Endpoint(
    "The tenant's audit log, newest first (owners: everything; others: their own rows; an "
    "agent token: the rows of its own session)",
    response=AuditPage, tags=("admin",),
    params=(Param("limit", type="integer", description="1-1000, default 100"),
            Param("before", type="integer", description="audit_id to page from"),
            Param("action", description="exact action, or a prefix ending in *"),
            Param("user_id"), Param("outcome")),
    errors=("forbidden",),
))  # fmt: skip
async def audit_recent(request: Request) -> Response:
    who = await principal_of(request)
    limit = query_int(request, "limit", 100, minimum=1) or 100
    if limit > 1000:
        raise BadRequestError("limit must be between 1 and 1000")
    page = await audit.recent_for(
        identity_of(request).db, who, limit=limit, before=query_int(request, "before"),
        action=query_str(request, "action"), user_id=query_str(request, "user_id"),
        outcome=query_str(request, "outcome"),
    )  # fmt: skip
    return respond(page)


@endpoint(Endpoint(
    "The tenant's plan, retention, rate limit and storage usage (a token limited to a path "
    "prefix: the quota only)", response=PlanInfo,
    tags=("admin",),
))  # fmt: skip
async def plans_current(request: Request) -> Response:
    who = await principal_of(request)
    found = services(request)
    auth = identity_of(request)
    return respond(await plans.plan_info(auth.db, auth.settings, who, found.store))


@endpoint(Endpoint(
    "The retention policy in force (PUT: owners tighten it within the plan's preset)",
    request=RetentionPolicy, response=RetentionPolicy, tags=("admin",),
    errors=("forbidden", "bad_request"),
))  # fmt: skip
async def retention_policy(request: Request) -> Response:
    who = await principal_of(request)
    auth = identity_of(request).db
    if request.method == "PUT":
        body = await parse_json(request, RetentionPolicy)
        return respond(await retention.put_policy(auth, who, body, client_address(request)))
    return respond(await retention.get_policy(auth, who))


@endpoint(Endpoint(
    "Run retention now (owners): prune versions beyond the policy (never a current version), "
    "purge old deleted files, collect unreferenced content", response=RetentionReport,
    tags=("admin",), errors=("forbidden",),
))  # fmt: skip
async def retention_apply(request: Request) -> Response:
    who = await principal_of(request)
    found = services(request)
    report = await retention.apply_retention(
        identity_of(request).db, who, found.namespace, found.feed, found.collector,
        client_address(request),
    )  # fmt: skip
    return respond(report)


routes: list[BaseRoute] = [
    Route("/audit/recent", audit_recent, methods=["GET"]),
    Route("/plans/current", plans_current, methods=["GET"]),
    Route("/retention/policy", retention_policy, methods=["GET", "PUT"]),
    Route("/retention/apply", retention_apply, methods=["POST"]),
]
