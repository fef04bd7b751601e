"""The indexed router answers exactly as Starlette's scan would: same route, same 405."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from meshfs_server.http.routing import IndexedRouter


async def by_id(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"by id {request.path_params['node_id']}")


async def meta(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"meta {request.method}")


def app() -> Starlette:
    routes = [
        Route("/files/{node_id}", by_id, methods=["GET"]),  # listed first: wins for GET
        Route("/files/meta", meta, methods=["POST", "PUT"]),
    ]
    built = Starlette(routes=routes)
    built.router = IndexedRouter(routes=routes)
    return built


async def test_static_paths_reach_the_route_the_scan_chose_every_time() -> None:
    served = app()
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(3):  # the first answer comes from the scan, the next from the index
            assert (await client.get("/files/meta")).text == "by id meta"
            assert (await client.post("/files/meta")).text == "meta POST"
            assert (await client.get("/files/abc")).text == "by id abc"
            refused = await client.delete("/files/meta")
            assert refused.status_code == 405
            assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}
    router = served.router
    assert isinstance(router, IndexedRouter)
    # Only static routes are remembered: one per method that reached one.
    assert {(k[1], k[3]) for k in router._known} == {("POST", "/files/meta")}
