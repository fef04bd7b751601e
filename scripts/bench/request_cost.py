"""Per-request CPU of the server's application itself, beside a hello-world app, in one process.

No HTTP server and no load generator: each request is one call of the ASGI application (the
MeshFS app on the embedded default, signed in through the device flow, and a hello-world
Starlette app), so the figures hold steady on a machine busy with other work, where the
requests/s of ``workers.py`` do not. What the figures leave out is the HTTP server's own cost
(hypercorn and h11: the same for both apps, but for the bytes a longer request and answer
take). Each figure is the least CPU time per request over ``--rounds`` rounds.

Measured: ``GET /healthz``, ``GET /files/meta`` of a file two directories down and
``GET /files/list`` of a 10-entry directory three down, each as microseconds per request and as
the cost above hello-world's.

Usage: python scripts/bench/request_cost.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).parent))

from _harness import report

from meshfs_server.app import create_app
from meshfs_server.settings import Settings

App = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]
Headers = list[tuple[bytes, bytes]]


async def call(app: App, method: str, path: str, query: str = "", headers: Headers | None = None,
               body: bytes = b"") -> tuple[int, bytes]:  # fmt: skip
    """One request through *app*; its status and body."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"bench"), *(headers or [])],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    sent = False
    answer: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    await app(scope, receive, send)
    return answer[0]["status"], b"".join(m.get("body", b"") for m in answer[1:])


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


async def cost(app: App, path: str, query: str, headers: Headers, count: int, rounds: int) -> float:
    """The least CPU microseconds per request of ``GET path?query`` over *rounds* rounds."""
    status, body = await call(app, "GET", path, query, headers)
    if status != 200:
        raise RuntimeError(f"GET {path}?{query}: {status} {body[:200]!r}")
    for _ in range(count // 10):
        await call(app, "GET", path, query, headers)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            await call(app, "GET", path, query, headers)
        best = min(best, (time.process_time() - start) / count * 1e6)
    return best


async def signed_in(app: App) -> Headers:
    """An Authorization header from a device sign-in (auto-approved)."""
    kind = [(b"content-type", b"application/json")]
    _, started = await call(app, "POST", "/auth/device/start", headers=kind,
                            body=json.dumps({"client_name": "bench"}).encode())  # fmt: skip
    code = json.loads(started)["device_code"]
    _, polled = await call(app, "POST", "/auth/device/poll", headers=kind,
                           body=json.dumps({"device_code": code}).encode())  # fmt: skip
    return [(b"authorization", f"Bearer {json.loads(polled)['access_token']}".encode())]


async def run(count: int, rounds: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="meshfs-bench-cost-"))
    env = {
        "MESHFS_DATA_DIR": str(data_dir), "MESHFS_DEV_AUTO_APPROVE": "true",
        "MESHFS_RATE_LIMIT_PER_MINUTE": "100000000", "MESHFS_LOG_LEVEL": "warning",
    }  # fmt: skip
    app = create_app(Settings.from_env(env), background=False)
    ceiling = Starlette(routes=[Route("/", hello)])
    try:
        async with LifespanManager(app):  # type: ignore[arg-type]
            auth = await signed_in(app)
            status, _ = await call(app, "PUT", "/files/content", "path=/s/f", auth, b"x" * 1024)
            assert status in (200, 201)
            for i in range(10):
                await call(app, "PUT", "/files/content", f"path=/d/a/b/f{i}", auth, b"x")
            base = await cost(ceiling, "/", "", [], count, rounds)
            report("hello-world Starlette app", base, "us/req", "CPU per request, in process")
            for name, path, query, headers in (
                ("GET /healthz", "/healthz", "", []),
                ("GET /files/meta (a file two directories down)", "/files/meta", "path=/s/f",
                 auth),
                ("GET /files/list (10 entries)", "/files/list", "path=/d/a/b", auth),
            ):  # fmt: skip
                spent = await cost(app, path, query, headers, count, rounds)
                report(name, spent, "us/req", f"{spent - base:.1f} us above hello-world")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("MeshFS per-request cost of the application (in process, no HTTP server)")
    asyncio.run(run(args.requests, args.rounds))


if __name__ == "__main__":
    main()
