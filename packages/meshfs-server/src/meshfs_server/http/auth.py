"""Auth routes: device login (RFC 8628), refresh, logout, whoami, sessions and agent tokens
(the approval page is :mod:`.device_page`; audit, plans and retention are :mod:`.policy`).

Routes parse, call :class:`~meshfs_server.auth.service.Identity` and render; errors are raised as
meshfs_common exceptions and rendered by the app's one handler.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from meshfs_common.models import (
    AgentToken,
    AgentTokenRequest,
    DeviceActivateRequest,
    DeviceActivateResponse,
    DevicePollRequest,
    DeviceStartRequest,
    DeviceStartResponse,
    LogoutRequest,
    RefreshRequest,
    SessionList,
    TokenResponse,
    Whoami,
)
from meshfs_server.auth import sessions as control
from meshfs_server.auth.principal import Principal
from meshfs_server.http import authn
from meshfs_server.http.authn import client_address
from meshfs_server.http.codec import (
    Endpoint,
    Param,
    endpoint,
    parse_json,
    query_bool,
    respond,
)
from meshfs_server.http.state import identity as identity_of

_FLOW_ERRORS = ("authorization_pending", "slow_down", "access_denied", "expired_token",
                "invalid_grant", "rate_limited")  # fmt: skip


async def principal_of(request: Request) -> Principal:
    """The authenticated caller (401 otherwise)."""
    return await authn.principal(identity_of(request), request)


@endpoint(Endpoint(
    "Begin a device login (RFC 8628 section 3.2)", request=DeviceStartRequest,
    response=DeviceStartResponse, auth=False, tags=("auth",), errors=("rate_limited",),
))  # fmt: skip
async def device_start(request: Request) -> Response:
    body = await parse_json(request, DeviceStartRequest, optional=True)
    answer = await identity_of(request).device_start(
        body.client_name, body.scope, client_address(request)
    )
    return respond(answer)


@endpoint(Endpoint(
    "Poll a device login; 400 authorization_pending / slow_down / access_denied / "
    "expired_token until it is approved", request=DevicePollRequest, response=TokenResponse,
    auth=False, tags=("auth",), errors=_FLOW_ERRORS,
))  # fmt: skip
async def device_poll(request: Request) -> Response:
    body = await parse_json(request, DevicePollRequest)
    answer = await identity_of(request).device_poll(body.device_code, client_address(request))
    return respond(answer, headers={"Cache-Control": "no-store"})


@endpoint(Endpoint(
    "Approve (or deny) a user code for the signed-in user's tenant",
    request=DeviceActivateRequest, response=DeviceActivateResponse, tags=("auth",),
    errors=("not_found", "invalid_grant", "forbidden"),
))  # fmt: skip
async def device_activate(request: Request) -> Response:
    who = await principal_of(request)
    body = await parse_json(request, DeviceActivateRequest)
    status = await identity_of(request).device_activate(
        who, body.user_code, body.approve, client_address(request)
    )
    return respond(DeviceActivateResponse(status="approved" if status == "approved" else "denied"))


@endpoint(Endpoint(
    "Exchange a refresh token for new tokens (the refresh token rotates; reusing an old one "
    "revokes the session)", request=RefreshRequest, response=TokenResponse, auth=False,
    tags=("auth",), errors=("invalid_grant", "rate_limited"),
))  # fmt: skip
async def refresh(request: Request) -> Response:
    body = await parse_json(request, RefreshRequest)
    answer = await identity_of(request).refresh(body.refresh_token, client_address(request))
    return respond(answer, headers={"Cache-Control": "no-store"})


@endpoint(Endpoint(
    "Sign out: revoke the session of the bearer token (or of the given refresh token)",
    request=LogoutRequest, status=204, tags=("auth",), errors=("unauthenticated",),
))  # fmt: skip
async def logout(request: Request) -> Response:
    identity = identity_of(request)
    body = await parse_json(request, LogoutRequest, optional=True)
    if request.headers.get("authorization") is None and body.refresh_token:
        await identity.logout_refresh(body.refresh_token, client_address(request))
    else:
        await identity.logout(await principal_of(request), client_address(request))
    return Response(status_code=204)


@endpoint(Endpoint("Who the token speaks for", response=Whoami, tags=("auth",)))
async def whoami(request: Request) -> Response:
    who = await principal_of(request)
    return respond(await identity_of(request).whoami(who))


# --- sessions and agents ----------------------------------------------


@endpoint(Endpoint(
    "Your signed-in devices and agent tokens (owners: everyone's with all=true; an agent "
    "token: only itself)",
    response=SessionList, tags=("auth",),
    params=(Param("all", type="boolean", description="every session of the tenant (owners)"),
            Param("include_revoked", type="boolean")),
    errors=("forbidden",),
))  # fmt: skip
async def list_sessions(request: Request) -> Response:
    who = await principal_of(request)
    answer = await control.list_sessions(
        identity_of(request), who, everyone=query_bool(request, "all"),
        include_revoked=query_bool(request, "include_revoked"),
    )  # fmt: skip
    return respond(answer)


@endpoint(Endpoint(
    "Revoke a session or agent token (yours; owners: any in the tenant)", status=204,
    tags=("auth",), errors=("not_found", "forbidden"),
))  # fmt: skip
async def revoke_session(request: Request) -> Response:
    who = await principal_of(request)
    await control.revoke_session(
        identity_of(request), who, request.path_params["session_id"], client_address(request)
    )
    return Response(status_code=204)


@endpoint(Endpoint(
    "Create an agent token: named, expiring, limited to a path prefix, read or write "
    "(owners and writers; the token is shown once)", request=AgentTokenRequest,
    response=AgentToken, status=201, tags=("auth",), errors=("forbidden", "bad_request"),
))  # fmt: skip
async def create_agent(request: Request) -> Response:
    who = await principal_of(request)
    body = await parse_json(request, AgentTokenRequest)
    token = await control.create_agent(identity_of(request), who, body, client_address(request))
    return respond(token, status=201, headers={"Cache-Control": "no-store"})


routes: list[BaseRoute] = [
    Route("/auth/device/start", device_start, methods=["POST"]),
    Route("/auth/device/poll", device_poll, methods=["POST"]),
    Route("/auth/device/activate", device_activate, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/whoami", whoami, methods=["GET"]),
    Route("/auth/sessions", list_sessions, methods=["GET"]),
    Route("/auth/sessions/{session_id}", revoke_session, methods=["DELETE"]),
    Route("/auth/agents", create_agent, methods=["POST"]),
]
