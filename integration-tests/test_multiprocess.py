"""Several real server processes on one Postgres and one S3 bucket (SeaweedFS).

A WebSocket client on process A receives the events of writes made through process B within
100 ms (Postgres LISTEN/NOTIFY rings A's subscribers, who read the feed table). Identity still
lives in SQLite, so the processes share one data dir, as they would share one host.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from conftest import ROOT, ServerProcess, free_port

sys.path.insert(0, str(ROOT / "packages" / "meshfs-server" / "tests"))
from meshfs_server_backends import Postgres, Production, start_production


@pytest.fixture(scope="module")
def production() -> Iterator[Production]:
    started = start_production()
    yield started
    started.seaweed.stop()
    started.postgres.stop()


def production_env(production: Production, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env.update({
        "MESHFS_DATABASE_URL": dsn,
        "MESHFS_OBJECT_STORE_BACKEND": "s3",
        "MESHFS_OBJECT_STORE_BUCKET": production.bucket,
        "MESHFS_OBJECT_STORE_ENDPOINT": production.seaweed.endpoint,
        "MESHFS_OBJECT_STORE_ACCESS_KEY_ID": production.seaweed.access_key,
        "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY": production.seaweed.secret_key,
        "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE": "true",
        "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS": "true",
    })  # fmt: skip
    return env


@pytest.fixture
def pair(tmp_path: Path, production: Production) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    dsn = production.create_database()
    env = production_env(production, dsn)
    data = tmp_path / "data"
    a = ServerProcess(data, free_port(), tmp_path / "a.log", env)
    b = ServerProcess(data, free_port(), tmp_path / "b.log", env)
    # One public URL (as behind a load balancer): it is the issuer of the access tokens.
    env["MESHFS_PUBLIC_URL"] = a.url
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        for proc in (a, b):
            if proc.process is not None:
                proc.stop()
        production.drop_database(dsn)
    for proc in (a, b):
        assert "Traceback" not in proc.log(), proc.log()


def test_events_written_through_b_reach_a_websocket_within_100ms(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    token = a.login()
    latencies = asyncio.run(_measure(a, b, token, writes=30))
    p50 = statistics.median(latencies)
    print(
        f"cross-process event latency: p50 {p50 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    assert p50 < 0.1, latencies
    assert max(latencies) < 1.0, latencies


async def _measure(a: ServerProcess, b: ServerProcess, token: str, writes: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"ws://127.0.0.1:{a.port}/sync/ws?cursor=0&access_token={token}"
    latencies: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url) as ws,
        httpx.AsyncClient(base_url=b.url, headers=headers) as via_b,
    ):
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await ws.receive_json(timeout=5))["type"] == "caught_up"
        for i in range(writes):
            r = await via_b.put("/files/content", params={"path": f"/b/{i}.txt"}, content=b"x")
            assert r.status_code == 201, r.text
            acknowledged = time.monotonic()
            while True:  # the first write also creates /b: a mkdir event comes first
                message = await ws.receive_json(timeout=5)
                assert message["type"] == "event", message
                if message["event"]["type"] == "write":
                    break
            latencies.append(time.monotonic() - acknowledged)
            assert message["event"]["path"] == f"/b/{i}.txt"
            assert message["event"]["version_id"] == r.json()["version"]["version_id"]
    return latencies


def test_both_processes_serve_the_same_tenant(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    token = a.login()
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=a.url, headers=headers) as via_a,
        httpx.Client(base_url=b.url, headers=headers) as via_b,
    ):
        via_a.put("/files/content", params={"path": "/shared.txt"}, content=b"from a")
        assert via_b.get("/files/download", params={"path": "/shared.txt"}).content == b"from a"
        via_b.put("/files/content", params={"path": "/shared.txt"}, content=b"from b")
        assert via_a.get("/files/download", params={"path": "/shared.txt"}).content == b"from b"
        feed = via_a.get("/sync/pull", params={"cursor": 0}).json()["events"]
        assert [e["seq"] for e in feed] == [1, 2]
        assert via_b.get("/readyz").json()["checks"] == {"database": "ok", "content": "ok"}


@pytest.fixture
def pair_on_own_postgres(
    tmp_path: Path, production: Production
) -> Iterator[tuple[ServerProcess, ServerProcess, Postgres]]:
    """Two server processes on a Postgres of this test's own (it may crash it) and the shared
    bucket; their logs must show no traceback, whatever the test did to the database."""
    postgres = Postgres.start(private=True)
    env = production_env(production, postgres.database_dsn("postgres"))
    env["MESHFS_DATABASE_TIMEOUT_SECONDS"] = "2"
    data = tmp_path / "data"
    a = ServerProcess(data, free_port(), tmp_path / "a.log", env)
    b = ServerProcess(data, free_port(), tmp_path / "b.log", env)
    env["MESHFS_PUBLIC_URL"] = a.url
    try:
        a.start()
        b.start()
        yield a, b, postgres
    finally:
        for proc in (a, b):
            if proc.process is not None:
                proc.stop()
        postgres.stop()
    for proc in (a, b):
        assert "Traceback" not in proc.log(), proc.log()


def test_postgres_crash_is_503_everywhere_and_streams_recover(
    pair_on_own_postgres: tuple[ServerProcess, ServerProcess, Postgres],
) -> None:
    """Postgres stops (immediate) under two processes: writes through B, a new WebSocket and a
    new SSE stream on A are refused with 503 and Retry-After; once Postgres is back (no server
    restart) a write through B reaches the WebSocket that stayed open on A."""
    a, b, postgres = pair_on_own_postgres
    token = a.login()
    asyncio.run(_crash_and_recover(a, b, postgres, token))


async def _crash_and_recover(
    a: ServerProcess, b: ServerProcess, postgres: Postgres, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    ws_url = f"ws://127.0.0.1:{a.port}/sync/ws"
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.ws_connect(ws_url, params={"cursor": 0}) as ws,
        httpx.AsyncClient(base_url=b.url, headers=headers, timeout=30) as via_b,
    ):
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await ws.receive_json(timeout=5))["type"] == "caught_up"
        await asyncio.to_thread(postgres.crash)

        r = await via_b.put("/files/content", params={"path": "/x.txt"}, content=b"x")
        assert r.status_code == 503, r.text
        assert r.headers.get("retry-after") == "2"
        async with session.get(f"{a.url}/sync/stream", params={"cursor": 0}) as sse:
            assert sse.status == 503
            assert sse.headers.get("Retry-After") == "2"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url, params={"cursor": 0})
        assert refused.value.status == 503

        await asyncio.to_thread(postgres.start_again)
        deadline = time.monotonic() + 30
        while True:  # B serves again by itself
            r = await via_b.put("/files/content", params={"path": "/x.txt"}, content=b"x")
            if r.status_code == 201:
                break
            assert r.status_code == 503, r.text
            assert time.monotonic() < deadline, "B did not recover"
            await asyncio.sleep(0.1)
        while True:  # and A's open WebSocket hears of it (its doorbell reconnected)
            message = await ws.receive_json(timeout=15)
            assert message["type"] == "event", message
            if message["event"]["type"] == "write":
                break
        assert message["event"]["path"] == "/x.txt"
