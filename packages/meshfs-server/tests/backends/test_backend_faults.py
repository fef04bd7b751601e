"""Backends failing under a running server: every answer is a clean 503 with ``Retry-After``,
every open stream ends with a documented "try again", a download never passes a short body off
as a whole file, nothing is logged as a crash, and the server recovers without a restart.

Servers here run on a real loopback socket (hypercorn), as clients meet them, so a truncated
download is seen the way an HTTP client sees it. Tests that stop a backend get one of their own
(``private_postgres``, ``private_seaweed``); the session's shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness, Harness, LiveServer
from meshfs_server_backends import STARTUP_SECONDS, Postgres, Production, Seaweed
from meshfs_server_wait import wait_until

from meshfs_common.errors import ERROR_TABLE, UnavailableError, error_from_envelope
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes
from meshfs_common.ids import new_id
from meshfs_server.app import create_app
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.placement import INLINE_MAX
from meshfs_server.http.errors import UNAVAILABLE_RETRY_AFTER, render
from meshfs_server.settings import Settings

RETRY_AFTER = str(UNAVAILABLE_RETRY_AFTER)
needs_postgres = pytest.mark.skipif(
    "postgres" not in os.environ.get("MESHFS_TEST_BACKENDS", "postgres"),
    reason="MESHFS_TEST_BACKENDS excludes postgres",
)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    """Poll *check* until it is true, failing after *within* seconds."""
    await wait_until(check, what, within=within, interval=0.05)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """*app* (its lifespan already running) served by hypercorn on loopback; yields its URL."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from meshfs_server_backends import free_port

    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()

    async def without_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # started by the caller already: acknowledge only
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await app(scope, receive, send)

    task = asyncio.create_task(
        serve(without_lifespan, config, shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]
    )
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        async with httpx.AsyncClient() as probe:
            try:
                await probe.get(f"{url}/healthz")
                return True
            except httpx.TransportError:
                return False

    try:
        await wait_for(up, "the server to listen")
        yield url
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def crashes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that look like a crash: any traceback, any ERROR."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info is not None or r.levelno >= logging.ERROR
    ]


def assert_unavailable(r: httpx.Response, what: str) -> None:
    assert r.status_code == 503, f"{what}: {r.status_code} {r.text}"
    assert r.headers.get("retry-after") == RETRY_AFTER, f"{what}: {r.headers}"
    assert r.json()["error"] == "unavailable", f"{what}: {r.text}"


# --- one place renders every 503 -----------------------------------------------------------------


@pytest.mark.parametrize("code", [c for c, s in ERROR_TABLE.items() if s.status == 503])
def test_every_503_carries_retry_after(code: str) -> None:
    error = error_from_envelope(503, {"error": code, "error_description": "down for a test"})
    answer = render(error)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == RETRY_AFTER


# --- downloads whose content store fails ---------------------------------------------------------


async def _write(client: httpx.AsyncClient, path: str, data: bytes) -> None:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code == 201, r.text


async def test_download_of_content_the_store_cannot_serve_is_a_clean_503(
    harness: Harness, live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(2 * CHUNK_SIZE + INLINE_MAX + 5)  # every chunk in the content store
    chunks = hash_bytes(data).chunks
    await _write(harness.client, "/big.bin", data)
    store = harness.services.content_store
    await store.delete(harness.tenant_id, chunks[2])
    headers = {"Authorization": f"Bearer {live.token}"}
    async with httpx.AsyncClient(base_url=live.url, headers=headers) as client:
        # A range that starts in the lost chunk: refused before the answer starts.
        r = await client.get(
            "/files/download",
            params={"path": "/big.bin"},
            headers={"Range": f"bytes={2 * CHUNK_SIZE}-"},
        )
        assert_unavailable(r, "range in a missing chunk")
        await store.delete(harness.tenant_id, chunks[0])
        r = await client.get("/files/download", params={"path": "/big.bin"})
        assert_unavailable(r, "first chunk missing")
        assert "missing from the store" in r.json()["error_description"]
    assert crashes(caplog) == []


async def test_download_failing_after_it_started_aborts_the_connection(
    harness: Harness, live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The first chunk is served, the second is lost: the client must see a broken transfer,
    never a complete-looking 200 that is shorter than the file."""
    data = os.urandom(CHUNK_SIZE + INLINE_MAX + 1000)  # every chunk in the content store
    await _write(harness.client, "/half.bin", data)
    await harness.services.content_store.delete(harness.tenant_id, hash_bytes(data).chunks[1])
    headers = {"Authorization": f"Bearer {live.token}"}
    received = b""
    async with httpx.AsyncClient(base_url=live.url, headers=headers) as client:
        async with client.stream("GET", "/files/download", params={"path": "/half.bin"}) as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(len(data))
            with pytest.raises(httpx.RemoteProtocolError):  # noqa: PT012 - the body is the test
                async for block in r.aiter_raw():
                    received += block
        # The connection was closed, not left in a state where the next request reads junk.
        assert (await client.get("/healthz")).status_code == 200
    assert received == data[: len(received)]
    assert len(received) < len(data)
    assert crashes(caplog) == []
    assert any("download aborted" in r.getMessage() for r in caplog.records)


@needs_postgres
async def test_object_store_stopped_or_refusing_then_back(
    tmp_path: Path, production: Production, private_seaweed: Seaweed,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """SeaweedFS stopped, then back with other credentials (a rotated secret), then back as it
    was: downloads and writes are clean 503s, /readyz says why, and the same server process
    serves again once the store does."""
    dsn = await asyncio.to_thread(production.create_database)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=dsn, object_store_backend="s3",
        object_store_bucket=production.bucket, object_store_endpoint=private_seaweed.endpoint,
        object_store_access_key_id=private_seaweed.access_key,
        object_store_secret_access_key=private_seaweed.secret_key,
        object_store_force_path_style=True, object_store_timeout_seconds=3.0,
        object_store_max_attempts=1,
    )  # fmt: skip
    data = os.urandom(CHUNK_SIZE + 77)
    stored = b"g" * (INLINE_MAX + 1)  # too large to be kept in the database: needs the store
    try:
        async with _fake_auth_server(settings) as client:
            await _write(client, "/f.bin", data)
            assert (await client.get("/files/download", params={"path": "/f.bin"})).content == data

            async def refused(says: str) -> None:
                async def says_why() -> bool:
                    # A store just started may first answer that it is not ready: also a 503.
                    started = time.monotonic()
                    r = await client.get("/files/download", params={"path": "/f.bin"})
                    assert_unavailable(r, f"download ({says})")
                    assert time.monotonic() - started < 8
                    return says in r.json()["error_description"]

                await wait_for(says_why, f"downloads to fail with {says!r}")
                w = await client.put("/files/content", params={"path": "/g"}, content=stored)
                assert_unavailable(w, f"write ({says})")
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.headers.get("retry-after") == RETRY_AFTER
                assert says in ready.json()["checks"]["content"]

            await asyncio.to_thread(private_seaweed.halt)
            await refused("unreachable")
            await asyncio.to_thread(private_seaweed.halt)
            await asyncio.to_thread(private_seaweed.start_again, secret_key="rotated-secret")
            await refused("refused access")
            await asyncio.to_thread(private_seaweed.halt)
            await asyncio.to_thread(private_seaweed.start_again)

            async def serves() -> bool:
                r = await client.get("/files/download", params={"path": "/f.bin"})
                return r.status_code == 200 and r.content == data

            await wait_for(serves, "downloads to work again")
            assert (await client.get("/files/meta", params={"path": "/g"})).status_code == 404

            async def writes() -> bool:
                # A store just back may still time out a first write (a loaded machine): that
                # must be a clean 503, and a later attempt must succeed.
                w = await client.put("/files/content", params={"path": "/g"}, content=stored)
                if w.status_code != 201:
                    assert_unavailable(w, "write while the store comes back")
                return w.status_code == 201

            await wait_for(writes, "writes to work again")
    finally:
        await asyncio.to_thread(production.drop_database, dsn)
    assert crashes(caplog) == []


@contextlib.asynccontextmanager
async def _fake_auth_server(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    actor = Actor(tenant_id=new_id(), user_id=new_id(), device_name="pytest")

    async def authenticate(conn: object) -> Actor:
        return actor

    app = create_app(settings, authenticate=authenticate, background=False)
    async with (
        LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager,
        serving(manager.app) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


# --- the database going away ---------------------------------------------------------------------


async def _sse_until(response: aiohttp.ClientResponse, event: str) -> list[str]:
    """Read SSE lines until an ``event: <event>`` frame is complete; returns every line."""
    lines: list[str] = []
    seen = False
    while True:
        raw = await asyncio.wait_for(response.content.readline(), 15)
        assert raw, f"stream ended before event {event}: {lines}"
        line = raw.decode().rstrip("\n")
        lines.append(line)
        if line == f"event: {event}":
            seen = True
        elif seen and line == "":
            return lines


@needs_postgres
async def test_database_outage_is_503_on_every_route_and_stream_then_recovers(
    tmp_path: Path, private_postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    """Real identity (the session lookup, rate limits and audit all live in Postgres), a
    server on a real socket, Postgres crashed: every route answers 503 with Retry-After; a
    stream that needs the database ends with a "try again" (SSE ``event: error``, WebSocket
    close 1013); new streams are refused with 503; no traceback is logged; once Postgres is
    back the same server serves again."""
    caplog.set_level(logging.WARNING)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=private_postgres.database_dsn("postgres"),
        database_timeout_seconds=2.0,
    )  # fmt: skip
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        services = app.state.services
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as anon:
            tokens = await AuthHarness(app, transport, anon, services, settings).login()
        auth = {"Authorization": f"Bearer {tokens.access_token}"}
        async with (
            serving(manager.app) as url,
            httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as client,
            aiohttp.ClientSession(headers=auth) as http,
        ):
            await _write(client, "/f.txt", b"hello")
            r = await client.post("/files/mkdir", json={"path": "/d"})
            assert r.status_code == 201
            node_id = (await client.get("/files/meta", params={"path": "/f.txt"})).json()
            node_id = node_id["node_id"]
            ws_url = url.replace("http", "ws") + "/sync/ws"
            ws = await http.ws_connect(ws_url, params={"cursor": 0})
            sse = await http.get(f"{url}/sync/stream", params={"cursor": 0})
            try:
                assert (await ws.receive_json(timeout=15))["type"] == "hello"
                while (await ws.receive_json(timeout=15))["type"] != "caught_up":
                    pass
                await _sse_until(sse, "caught_up")

                await asyncio.to_thread(private_postgres.crash)
                upload = hash_bytes(b"new")
                calls: dict[str, Awaitable[httpx.Response]] = {
                    "mkdir": client.post("/files/mkdir", json={"path": "/e"}),
                    "list": client.get("/files/list", params={"path": "/"}),
                    "meta": client.get("/files/meta", params={"path": "/f.txt"}),
                    "download": client.get("/files/download", params={"path": "/f.txt"}),
                    "write": client.put("/files/content", params={"path": "/g"}, content=b"g"),
                    "rename": client.post(
                        "/files/rename", json={"path": "/f.txt", "new_path": "/h.txt"}
                    ),
                    "delete": client.delete("/files", params={"path": "/d"}),
                    "upload init": client.post(
                        "/files/upload/init",
                        json={
                            "path": "/u",
                            "size": upload.size,
                            "content_hash": upload.content_hash,
                            "chunks": list(upload.chunks),
                        },
                    ),
                    "versions": client.get(f"/files/{node_id}/versions"),
                    "pull": client.get("/sync/pull", params={"cursor": 0}),
                    "new SSE": client.get("/sync/stream", params={"cursor": 0}),
                    "whoami": client.get("/auth/whoami"),
                    "sessions": client.get("/auth/sessions"),
                    "audit": client.get("/audit/recent"),
                    "plan": client.get("/plans/current"),
                }
                started = time.monotonic()
                answers = await asyncio.gather(*calls.values())
                assert time.monotonic() - started < 15
                for what, answer in zip(calls, answers, strict=True):
                    assert_unavailable(answer, what)
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(ws_url, params={"cursor": 0})
                assert refused.value.status == 503
                assert refused.value.headers is not None
                assert refused.value.headers.get("Retry-After") == RETRY_AFTER

                # A doorbell (another process committed just before the crash) makes the open
                # streams read the database: they end with "try again", not an internal error.
                services.feed.bus.ring_all()
                message = await ws.receive_json(timeout=15)
                assert message["type"] == "error", message
                assert message["error"]["error"] == "unavailable"
                closed = await ws.receive(timeout=15)
                assert closed.type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1013
                lines = await _sse_until(sse, "error")
                assert f"retry: {UNAVAILABLE_RETRY_AFTER * 1000}" in lines
                assert '"error":"unavailable"' in lines[-2]
                assert await asyncio.wait_for(sse.content.read(), 15) == b""  # ended
            finally:
                await ws.close()
                sse.close()

            await asyncio.to_thread(private_postgres.start_again)

            async def recovered() -> bool:
                r = await client.post("/files/mkdir", json={"path": "/e"})
                assert r.status_code in (201, 503), r.text
                return r.status_code == 201

            await wait_for(recovered, "the server to serve again")  # no restart
            async with http.ws_connect(ws_url, params={"cursor": 0}) as again:
                assert (await again.receive_json(timeout=15))["type"] == "hello"
            listing = (await client.get("/files/list", params={"path": "/"})).json()
            assert sorted(e["name"] for e in listing["entries"]) == ["d", "e", "f.txt"]
    assert crashes(caplog) == []


# --- the audit stores whatever a client sent -----------------------------------------------------


async def test_audit_keeps_a_request_with_nul_in_its_path(
    auth: AuthHarness, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = await auth.login()
    async with auth.client_for(tokens.access_token) as client:
        r = await client.put("/files/content", params={"path": "/a\x00b"}, content=b"x")
        assert r.status_code == 400, r.text
        page = (await client.get("/audit/recent", params={"action": "PUT *"})).json()
    rows = [e for e in page["entries"] if e["action"] == "PUT /files/content"]
    assert len(rows) == 1, page
    assert rows[0]["target"] == "/a\\x00b"
    assert rows[0]["outcome"] == "error:400"
    assert crashes(caplog) == []


async def test_audit_failing_after_the_answer_is_logged_once_not_raised(
    auth: AuthHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away between a write's answer and its audit row: the client keeps
    its answer, and the log has one line, not a second error."""
    tokens = await auth.login()
    identity = auth.services.identity

    async def database_gone(conn: object, status: int) -> None:
        raise UnavailableError("the database is unavailable (ConnectionDoesNotExistError)")

    monkeypatch.setattr(identity, "audit_request", database_gone)
    async with auth.client_for(tokens.access_token) as client:
        r = await client.post("/files/mkdir", json={"path": "/kept"})
    assert r.status_code == 201, r.text
    assert crashes(caplog) == []
    lost = [x for x in caplog.records if "not recorded" in x.getMessage()]
    assert len(lost) == 1
    assert "POST /files/mkdir" in lost[0].getMessage()
