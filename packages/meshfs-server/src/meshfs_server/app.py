"""The Starlette application: routes, error handlers, and a lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from meshfs_common.errors import MeshFSError
from meshfs_server.http import (
    bulk,
    errors,
    files,
    health,
    history,
    links,
    openapi,
    posix,
    snapshots,
    sync,
    transfer,
    xattrs,
)
from meshfs_server.http.authn import Authenticate
from meshfs_server.http.draining import Draining, Shutdown
from meshfs_server.http.requestlog import RequestLog
from meshfs_server.http.routing import IndexedRouter
from meshfs_server.services import Services, open_services
from meshfs_server.settings import Settings

log = logging.getLogger("meshfs_server")
GC_INTERVAL = 600.0
SWEEP_DELAY = 60.0
SWEEP_INTERVAL = 6 * 3600.0


def all_routes() -> list[BaseRoute]:
    from meshfs_server.http import auth, device_page, policy
    from meshfs_server.http.mcp import routes as mcp_routes

    return [
        *health.routes,
        *auth.routes,
        *policy.routes,
        *device_page.routes,
        *mcp_routes,
        *files.routes,
        *posix.routes,
        *history.routes,
        *snapshots.routes,
        *xattrs.routes,
        *links.routes,
        *transfer.routes,
        *bulk.routes,
        *sync.routes,
        *openapi.routes,
    ]


async def _collect_forever(services: Services) -> None:
    """Collect unreferenced content every GC_INTERVAL; sweep the store for orphans (left by a
    crash) shortly after start-up and every SWEEP_INTERVAL."""
    next_sweep = anyio.current_time() + SWEEP_DELAY
    while True:
        await anyio.sleep(min(GC_INTERVAL, max(0.0, next_sweep - anyio.current_time())))
        try:
            report = await services.collector.collect()
            if report.deleted_chunks:
                log.info("garbage collection deleted %d chunks", report.deleted_chunks)
            if anyio.current_time() >= next_sweep:
                next_sweep = anyio.current_time() + SWEEP_INTERVAL
                swept = await services.collector.sweep()
                if swept.deleted_chunks:
                    log.info("orphan sweep deleted %d unrecorded chunks", swept.deleted_chunks)
        except MeshFSError as exc:  # the store is unavailable; try again next round
            log.warning("garbage collection failed: %s", exc)


def create_app(
    settings: Settings, *, authenticate: Authenticate | None = None, background: bool = True
) -> Starlette:
    """Build the app; storage opens when the ASGI lifespan starts and closes when it ends."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from meshfs_server.http.mcp import open_mcp

        async with open_services(settings, authenticate=authenticate) as services:
            app.state.services = services
            async with open_mcp(settings) as mcp, anyio.create_task_group() as tasks:
                app.state.mcp = mcp
                # Every background loop is owned here, and cancelled before storage closes.
                if services.doorbell is not None:
                    # Other processes' commits: read once per process for all subscribers.
                    tasks.start_soon(services.feed.catch_up_forever, name="meshfs-catch-up")
                    tasks.start_soon(services.doorbell.run, name="meshfs-doorbell")
                streams = services.streams
                if streams.shared is not None:
                    tasks.start_soon(
                        streams.shared.run, streams.count_of, streams.holding, name="meshfs-streams"
                    )
                if background:
                    tasks.start_soon(_collect_forever, services, name="meshfs-collector")
                yield
                tasks.cancel_scope.cancel()

    from meshfs_server.http.limits import BodyLimit
    from meshfs_server.http.safety import SafetyMiddleware
    from meshfs_server.http.stream_send import StreamSend

    routes = all_routes()
    shutdown = Shutdown()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        # The request log sees every answer (refusals included); open streams end as soon as
        # shutdown begins; body caps before any other work. Open streams send their live
        # frames past all of them (StreamSend).
        middleware=[
            Middleware(StreamSend),
            Middleware(RequestLog, access=settings.access_log),
            Middleware(Draining, shutdown=shutdown),
            Middleware(BodyLimit, routes=routes),
            Middleware(SafetyMiddleware),
        ],
        exception_handlers={
            MeshFSError: errors.on_meshfs_error,
            HTTPException: errors.on_http_error,
            Exception: errors.on_unexpected,
        },
    )
    # Same routes and lifespan; static paths found without scanning every route.
    app.router = IndexedRouter(routes=routes, lifespan=lifespan)
    app.state.shutdown = shutdown
    return app
