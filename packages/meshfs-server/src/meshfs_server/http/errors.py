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
from meshfs_server.display import printable
from meshfs_server.http.codec import respond
from meshfs_server.http.requestlog import request_target

log = logging.getLogger("meshfs_server")


#: Seconds a client is asked to wait after a 503: a backend (database, object store) is down
#: or restarting; the server recovers by itself, so a retry soon after is right.
UNAVAILABLE_RETRY_AFTER = 2


def retry_after(error: MeshFSError) -> str | None:
    """The ``Retry-After`` value for *error*: every 429 and every 503 carries one."""
    if isinstance(error, RateLimitedError):
        return str(max(1, round(error.retry_after + 0.499)))
    if error.status == 503:
        return str(UNAVAILABLE_RETRY_AFTER)
    return None


def render(error: MeshFSError) -> Response:
    headers: dict[str, str] = {}
    wait = retry_after(error)
    if wait is not None:
        headers["Retry-After"] = wait
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="meshfs"'
    return respond(error.to_envelope(), status=error.status, headers=headers)


async def on_meshfs_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MeshFSError)
    if exc.status >= 500:
        log.warning(
            "%s -> %s: %s", request_target(request.scope), exc.code, printable(exc.message, 300)
        )
    return render(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render(NotFoundError(f"no such endpoint: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        return render(MethodNotAllowedError(f"{request.method} is not allowed here"))
    return render(BadRequestError(str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error in %s", request_target(request.scope))
    return render(InternalError("internal server error; it has been logged"))
