"""One handler renders every error as the shared envelope."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from meshfs_common.errors import (
    BadRequestError,
    InternalError,
    MeshFSError,
    MethodNotAllowedError,
    NotFoundError,
    RateLimitedError,
)
from meshfs_server.http.codec import respond

log = logging.getLogger("meshfs_server")


def render(error: MeshFSError) -> Response:
    headers: dict[str, str] = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(error.retry_after + 0.499)))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="meshfs"'
    return respond(error.to_envelope(), status=error.status, headers=headers)


async def on_meshfs_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MeshFSError)
    if exc.status >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.code, exc.message)
    return render(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render(NotFoundError(f"no such endpoint: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return render(MethodNotAllowedError(f"{request.method} is not allowed here"))
    return render(BadRequestError(str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.url.path)
    return render(InternalError("internal server error; it has been logged"))
