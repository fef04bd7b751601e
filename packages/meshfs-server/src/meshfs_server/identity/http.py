"""``/auth/*`` routes: device login (RFC 8628), refresh, logout, whoami.

Routes parse, call :class:`~meshfs_server.identity.Identity` and render; errors are raised as
meshfs_common exceptions and rendered by the app's one handler.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from meshfs_common.models import (
    DeviceActivateRequest,
    DevicePollRequest,
    DeviceStartRequest,
    DeviceStartResponse,
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    Whoami,
)
from meshfs_server.http.codec import Endpoint, endpoint, parse_json, respond
from meshfs_server.identity.service import Identity, Principal, client_address

_FLOW_ERRORS = ("authorization_pending", "slow_down", "access_denied", "expired_token",
                "invalid_grant", "rate_limited")  # fmt: skip


class DeviceActivateResponse(msgspec.Struct, kw_only=True):
    """The decision recorded for a user code."""

    status: Literal["approved", "denied"]


def identity_of(request: Request) -> Identity:
    """The process's :class:`Identity` (set up by the app's lifespan)."""
    found: Identity = request.app.state.services.identity
    return found


async def principal_of(request: Request) -> Principal:
    """The authenticated caller (401 otherwise)."""
    return await identity_of(request).principal(request)


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


routes: list[BaseRoute] = [
    Route("/auth/device/start", device_start, methods=["POST"]),
    Route("/auth/device/poll", device_poll, methods=["POST"]),
    Route("/auth/device/activate", device_activate, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/whoami", whoami, methods=["GET"]),
]
