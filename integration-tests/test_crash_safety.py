"""Crash safety on Postgres + SeaweedFS: kill -9 a server in the middle of many concurrent
uploads and commits; after a restart every acknowledged commit is there with its exact bytes,
no partial version is visible, and the change feed has no gap."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, ServerProcess, free_port

from meshfs_common.hashing import CHUNK_SIZE, hash_bytes

sys.path.insert(0, str(ROOT / "packages" / "meshfs-server" / "tests"))
from meshfs_server_backends import Production
from test_multiprocess import production, production_env  # noqa: F401 - fixture

ENOUGH = 60  # acknowledged writes before the kill


@pytest.fixture
def server_on_production(tmp_path: Path, production: Production) -> Iterator[ServerProcess]:  # noqa: F811
    dsn = production.create_database()
    env = production_env(production, dsn)
    proc = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", env)
    try:
        proc.start()
        yield proc
    finally:
        if proc.process is not None:
            proc.stop()
        production.drop_database(dsn)


async def _writer(
    api: httpx.AsyncClient, worker: int, acknowledged: dict[str, str], enough: asyncio.Event
) -> None:
    n = 0
    while True:
        n += 1
        path = f"/w{worker}/f{n}"
        # Mixed sizes: one-shot small writes and multi-chunk chunked uploads.
        data = os.urandom(CHUNK_SIZE + 1000 if n % 4 == 0 else 2000)
        try:
            if n % 4 == 0:
                digest = hash_bytes(data)
                init = await api.post("/files/upload/init", json={
                    "path": path, "size": digest.size, "content_hash": digest.content_hash,
                    "chunks": list(digest.chunks)})  # fmt: skip
                upload = init.json()
                for index in upload["missing"]:
                    part = data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
                    where = {"upload_id": upload["upload_id"], "index": index}
                    await api.put("/files/upload/part", params=where, content=part)
                r = await api.post("/files/upload/commit", json={"upload_id": upload["upload_id"]})
            else:
                r = await api.put("/files/content", params={"path": path}, content=data)
        except (httpx.TransportError, ValueError):
            return  # the server died under us
        if r.status_code in (200, 201):
            acknowledged[path] = hashlib.sha256(data).hexdigest()
            if len(acknowledged) >= ENOUGH:
                enough.set()


def test_kill_9_during_concurrent_uploads(server_on_production: ServerProcess) -> None:
    server = server_on_production
    token = server.login()
    headers = {"Authorization": f"Bearer {token}"}
    acknowledged: dict[str, str] = {}

    async def load_then_kill() -> None:
        enough = asyncio.Event()
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
            workers = [
                asyncio.create_task(_writer(api, w, acknowledged, enough)) for w in range(12)
            ]
            await asyncio.wait_for(enough.wait(), 60)
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGKILL)  # mid-flight, no shutdown at all
            await asyncio.gather(*workers)  # each stops at its first transport error

    asyncio.run(load_then_kill())
    assert server.process is not None
    server.process.wait()
    server.process = None
    assert len(acknowledged) >= ENOUGH

    server.start()
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        for path, sha in acknowledged.items():  # every acknowledged commit survived
            r = api.get("/files/download", params={"path": path})
            assert r.status_code == 200, (path, r.text)
            assert hashlib.sha256(r.content).hexdigest() == sha, path
        events: list[dict[str, object]] = []
        cursor = 0
        while True:
            page = api.get("/sync/pull", params={"cursor": cursor}).json()
            events += page["events"]
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no gap
        for event in events:  # no partial version: every written version reads back whole
            if event["type"] != "write":
                continue
            r = api.get("/files/download", params={
                "node_id": event["node_id"], "version_id": event["version_id"]})  # fmt: skip
            assert r.status_code == 200, r.text
            assert len(r.content) == event["size"]
            assert hash_bytes(r.content).content_hash == event["content_hash"]
        assert api.get("/readyz").status_code == 200

    # The orphans of the kill (content stored but never committed) are collected; everything
    # committed stays readable.
    env = dict(server.env, MESHFS_GC_GRACE_SECONDS="0")
    swept = subprocess.run(
        [sys.executable, "-m", "meshfs_server", "collect", "--sweep",
         "--data-dir", str(server.data_dir)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "unrecorded" in swept.stdout, swept.stdout
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as api:
        for path, sha in acknowledged.items():
            r = api.get("/files/download", params={"path": path})
            assert hashlib.sha256(r.content).hexdigest() == sha, path
    again = subprocess.run(
        [sys.executable, "-m", "meshfs_server", "collect", "--sweep",
         "--data-dir", str(server.data_dir)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert again.stdout.startswith("deleted 0 unreferenced chunk(s), 0 unrecorded"), again.stdout
