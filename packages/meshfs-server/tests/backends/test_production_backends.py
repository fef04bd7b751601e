"""What only the production backends do: direct transfers through presigned URLs, a broken
object store or database failing cleanly (503 within seconds, /readyz naming the problem) and
recovering without a restart, and the change sequence staying gap-free with several writers
on separate connection pools (as several server processes would be)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import httpx
import pytest
from asgi_lifespan import LifespanManager
from meshfs_server_backends import STARTUP_SECONDS, Production
from meshfs_server_wait import wait_until

from meshfs_common.hashing import CHUNK_SIZE, hash_bytes
from meshfs_common.ids import new_id
from meshfs_server.app import create_app
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.placement import INLINE_MAX
from meshfs_server.services import open_services
from meshfs_server.settings import Settings

STORED = b"s" * (INLINE_MAX + 1)
"""Content too large to be kept in the metadata database: writing it needs the object store."""

pytestmark = pytest.mark.skipif(
    "postgres" not in os.environ.get("MESHFS_TEST_BACKENDS", "postgres"),
    reason="MESHFS_TEST_BACKENDS excludes postgres",
)


@pytest.fixture
def pg_settings(tmp_path: Path, production: Production) -> Iterator[Settings]:
    dsn = production.create_database()
    yield Settings(
        data_dir=tmp_path / "data", gc_grace_seconds=0,
        **production.settings_overrides(dsn, object_store_direct_transfers=True),  # type: ignore[arg-type]
    )  # fmt: skip
    production.drop_database(dsn)


async def _no_auth(conn: object) -> Actor:
    raise AssertionError("not used")


class _Tokens:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    async def authenticate(self, conn: object) -> Actor:
        return self.actor


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    actor = Actor(tenant_id=new_id(), user_id=new_id(), device_name="pytest")
    app = create_app(settings, authenticate=_Tokens(actor).authenticate, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as c:
            yield c


@pytest.fixture
async def direct(pg_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(pg_settings):
        yield client


def _init_body(path: str, data: bytes) -> dict[str, object]:
    digest = hash_bytes(data)
    return {"path": path, "size": digest.size, "content_hash": digest.content_hash,
            "chunks": list(digest.chunks)}  # fmt: skip


def _parts(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]


# --- direct transfers ----------------------------------------------------------------------------


async def test_direct_upload_and_download_bypass_the_server(direct: httpx.AsyncClient) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 777)
    init = (await direct.post("/files/upload/init", json=_init_body("/d/big.bin", data))).json()
    assert init["missing"] == [0, 1, 2]
    assert sorted(init["part_urls"]) == ["0", "1", "2"]
    async with aiohttp.ClientSession() as http:
        # Committing before the bytes are there changes nothing.
        early = await direct.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
        assert early.status_code == 409
        assert early.json()["error"] == "upload_incomplete"
        for index, part in enumerate(_parts(data)):
            key = str(index)
            async with http.put(
                init["part_urls"][key], data=part, headers=init["part_headers"][key]
            ) as r:
                assert r.status == 200, await r.text()
        done = await direct.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
        assert done.status_code == 201, done.text
        assert done.json()["entry"]["content_hash"] == hash_bytes(data).content_hash

        plan = (await direct.get("/files/download/direct", params={"path": "/d/big.bin"})).json()
        assert plan["size"] == len(data)
        assert len(plan["urls"]) == 3
        fetched = b""
        for url in plan["urls"]:
            async with http.get(url) as r:
                assert r.status == 200
                fetched += await r.read()
        assert fetched == data
        async with http.get(plan["urls"][1], headers={"Range": "bytes=10-19"}) as r:
            assert r.status == 206
            assert await r.read() == data[CHUNK_SIZE + 10 : CHUNK_SIZE + 20]
    # The proxied download serves the same bytes.
    assert (await direct.get("/files/download", params={"path": "/d/big.bin"})).content == data


async def test_a_direct_partial_write_puts_only_the_changed_chunk(
    direct: httpx.AsyncClient,
) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 10)
    base = await direct.put("/files/content", params={"path": "/p.bin"}, content=data)
    new = data[:CHUNK_SIZE] + os.urandom(CHUNK_SIZE) + data[2 * CHUNK_SIZE :] + bytes(CHUNK_SIZE)
    digest = hash_bytes(new)
    init = (await direct.post("/files/upload/init", json={
        "path": "/p.bin", "size": len(new), "content_hash": digest.content_hash,
        "base_version": base.json()["version"]["version_id"],
        "replace": {"1": digest.chunks[1], "2": digest.chunks[2]},
    })).json()  # fmt: skip
    # Chunk 0 is the base's; chunk 3 is zeros, which the server stored itself.
    assert init["missing"] == [1, 2]
    assert sorted(init["part_urls"]) == ["1", "2"]
    async with aiohttp.ClientSession() as http:
        for index in (1, 2):
            key = str(index)
            async with http.put(
                init["part_urls"][key], data=_parts(new)[index], headers=init["part_headers"][key]
            ) as r:
                assert r.status == 200, await r.text()
    done = await direct.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert done.status_code == 200, done.text
    assert (await direct.get("/files/download", params={"path": "/p.bin"})).content == new


async def test_direct_put_of_wrong_bytes_is_refused(direct: httpx.AsyncClient) -> None:
    data = b"the real content"
    init = (await direct.post("/files/upload/init", json=_init_body("/w.txt", data))).json()
    async with aiohttp.ClientSession() as http:
        url, headers = init["part_urls"]["0"], init["part_headers"]["0"]
        async with http.put(url, data=b"forged content!!", headers=headers) as r:
            assert r.status == 400  # the store checked the SHA-256 it was signed with
        async with http.put(url, data=data) as r:
            assert r.status == 403  # the checksum header is part of the signature
    commit = await direct.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert commit.json()["error"] == "upload_incomplete"
    listing = (await direct.get("/files/list", params={"path": "/"})).json()
    assert listing["entries"] == []  # nothing half written became visible


async def test_proxied_parts_still_work_with_direct_transfers_on(
    direct: httpx.AsyncClient,
) -> None:
    data = os.urandom(CHUNK_SIZE + 5)
    init = (await direct.post("/files/upload/init", json=_init_body("/p.bin", data))).json()
    for index in init["missing"]:
        r = await direct.put(
            "/files/upload/part", params={"upload_id": init["upload_id"], "index": index},
            content=_parts(data)[index],
        )  # fmt: skip
        assert r.status_code == 200, r.text
    done = await direct.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert done.status_code == 201
    assert (await direct.get("/files/download", params={"path": "/p.bin"})).content == data


# --- a broken object store -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "says", "write_says"),
    [
        # S3 answers a PUT into a missing bucket with NoSuchBucket, SeaweedFS with AccessDenied.
        ({"object_store_bucket": "no-such-bucket"}, "does not exist", "bucket"),
        ({"object_store_secret_access_key": "wrong"}, "refused access", "refused access"),
        ({"object_store_endpoint": "http://127.0.0.1:9"}, "unreachable", "unreachable"),
    ],
    ids=["missing-bucket", "wrong-credentials", "unreachable-endpoint"],
)
async def test_broken_object_store_fails_cleanly(
    pg_settings: Settings, change: dict[str, str], says: str, write_says: str
) -> None:
    settings = replace(pg_settings, **change)  # type: ignore[arg-type]
    async for client in _client(settings):  # the server starts regardless
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "ok"
        assert says in ready.json()["checks"]["content"]
        started = time.monotonic()
        r = await client.put("/files/content", params={"path": "/x.txt"}, content=STORED)
        assert r.status_code == 503
        assert r.json()["error"] == "unavailable"
        assert write_says in r.json()["error_description"]
        assert time.monotonic() - started < 10
        # Nothing half written: the failed write left no file behind.
        assert (await client.get("/files/meta", params={"path": "/x.txt"})).status_code == 404
        assert (await client.post("/files/mkdir", json={"path": "/still-works"})).status_code == 201
        # Small content lives in the database: it is written and read without the store.
        small = await client.put("/files/content", params={"path": "/small"}, content=b"hello")
        assert small.status_code == 201, small.text
        assert (await client.get("/files/download", params={"path": "/small"})).content == b"hello"


async def test_unresponsive_object_store_times_out(pg_settings: Settings) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, never answers
    port = server.sockets[0].getsockname()[1]
    settings = replace(
        pg_settings, object_store_endpoint=f"http://127.0.0.1:{port}",
        object_store_timeout_seconds=2.0,
    )  # fmt: skip
    try:
        async for client in _client(settings):
            started = time.monotonic()
            r = await client.put("/files/content", params={"path": "/x.txt"}, content=STORED)
            assert r.status_code == 503
            assert "did not answer" in r.json()["error_description"]
            assert time.monotonic() - started < 5
    finally:
        server.close()
        await server.wait_closed()


# --- the database --------------------------------------------------------------------------------


async def _steady_writes(
    client: httpx.AsyncClient, worker: int, stop: asyncio.Event, statuses: list[int],
    written: list[str],
) -> None:  # fmt: skip
    """Small writes until *stop*; records every status and the paths acknowledged."""
    n = 0
    while not stop.is_set():
        n += 1
        path = f"/load/w{worker}-{n}"
        r = await client.put("/files/content", params={"path": path}, content=b"x")
        statuses.append(r.status_code)
        if r.status_code in (200, 201):
            written.append(path)
        else:
            assert r.json()["error"] == "unavailable", r.text
        with contextlib.suppress(TimeoutError):  # the next write in 10 ms, unless stopped first
            await asyncio.wait_for(stop.wait(), 0.01)


async def _until(condition: Callable[[], bool], what: str, *, within: float = 20) -> None:
    """Wait (polling) until *condition* holds, failing after *within* seconds."""
    await wait_until(condition, what, within=within, interval=0.05)


async def test_database_down_is_503_then_recovers(tmp_path: Path) -> None:
    """A Postgres of this test's own, crashed and started again under steady load: while it is
    down every request fails cleanly (503, never a 500, never a partial write); afterwards
    requests succeed again without restarting the server, and the feed has no gap."""
    from meshfs_server_backends import Postgres

    if os.environ.get("MESHFS_TEST_POSTGRES_DSN"):
        pytest.skip("needs a Postgres this test can restart")
    pg = await asyncio.to_thread(Postgres.start)
    try:
        settings = Settings(
            data_dir=tmp_path / "data", database_url=pg.database_dsn("postgres"),
            database_timeout_seconds=2.0,
        )  # fmt: skip
        async for client in _client(settings):
            assert (await client.post("/files/mkdir", json={"path": "/a"})).status_code == 201
            statuses: list[int] = []
            written: list[str] = []
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(_steady_writes(client, i, stop, statuses, written))
                for i in range(4)
            ]
            try:
                await _until(lambda w=written: len(w) >= 8, "the load to be running")
                await asyncio.to_thread(pg.crash)
                started = time.monotonic()
                r = await client.post("/files/mkdir", json={"path": "/b"})
                assert r.status_code == 503, r.text
                assert "database" in r.json()["error_description"]
                assert time.monotonic() - started < 10
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] != "ok"
                # The load itself meets the outage before the database comes back.
                await _until(lambda s=statuses: s.count(503) >= 4, "the load to meet the outage")
                await asyncio.to_thread(pg.start_again)
                await _until(lambda w=written, n=len(written): len(w) >= n + 8, "writes to recover")
            finally:
                stop.set()
                await asyncio.gather(*workers)
            assert set(statuses) <= {200, 201, 503}, statuses
            assert 503 in statuses
            r = await client.post("/files/mkdir", json={"path": "/b"})  # no server restart
            assert r.status_code == 201, r.text
            feed = (await client.get("/sync/pull", params={"cursor": 0})).json()
            seqs = [e["seq"] for e in feed["events"]]
            assert seqs == list(range(1, len(seqs) + 1))
            # Every acknowledged write is there; nothing refused left a trace.
            listing = (await client.get("/files/list", params={"path": "/load"})).json()
            assert sorted(e["path"] for e in listing["entries"]) == sorted(written)
    finally:
        await asyncio.to_thread(pg.stop)


async def test_writers_on_separate_pools_keep_the_feed_gap_free(pg_settings: Settings) -> None:
    """Two service stacks on one database (as two processes would be) writing one tenant."""
    actor = Actor(tenant_id=new_id(), user_id=new_id())
    async with (
        open_services(pg_settings, authenticate=_no_auth) as a,
        open_services(pg_settings, authenticate=_no_auth) as b,
    ):

        async def write(services: object, i: int) -> None:
            body = f"content {i}".encode()

            async def stream() -> AsyncIterator[bytes]:
                yield body

            await services.content.write(actor, f"/dir{i % 3}/f{i % 5}", stream())  # type: ignore[attr-defined]

        await asyncio.gather(*(write(a if i % 2 else b, i) for i in range(40)))
        page = await a.feed.pull(actor.tenant_id, 0)
    seqs = [e.seq for e in page.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert sum(e.type == "write" for e in page.events) == 40


async def test_on_postgres_the_server_opens_no_sqlite_database(pg_settings: Settings) -> None:
    """Metadata and identity both live in Postgres: nothing is opened or left in SQLite."""
    async with open_services(pg_settings) as services:
        assert services.db is None
        assert services.identity is not None
        assert services.identity.db.dialect == "postgres"
    assert not pg_settings.sqlite_path.exists()
