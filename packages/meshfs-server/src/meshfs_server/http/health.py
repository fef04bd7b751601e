"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.models import Health
from meshfs_server.http import state
from meshfs_server.http.codec import Endpoint, endpoint, respond
from meshfs_server.http.errors import UNAVAILABLE_RETRY_AFTER

CHECK_TIMEOUT = 5.0


@endpoint(Endpoint("The process is up", response=Health, auth=False, tags=("service",)))
async def healthz(request: Request) -> Response:
    from meshfs_server import __version__

    return respond(Health(status="ok", version=__version__))


@endpoint(Endpoint(
    "The database and content store can serve requests (503 otherwise)", response=Health,
    auth=False, tags=("service",), extra_responses={503: "not ready"},
))  # fmt: skip
async def readyz(request: Request) -> Response:
    from meshfs_server import __version__

    services = state.services(request)
    checks: dict[str, str] = {}
    for name, probe in (
        ("database", services.store.check),
        ("content", services.content_store.check),
    ):
        try:
            await asyncio.wait_for(probe(), CHECK_TIMEOUT)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"no answer within {CHECK_TIMEOUT:.0f}s"
        except Exception as exc:  # readiness reports any failure instead of failing itself
            checks[name] = f"{type(exc).__name__}: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return respond(
        Health(status="ok" if ready else "unavailable", version=__version__, checks=checks),
        status=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
