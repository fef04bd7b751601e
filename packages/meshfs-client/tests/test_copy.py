"""`MeshFSClient.copy` at the HTTP boundary: made on the server when it can be, else no byte
travels when the server names the chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from meshfs_client_testkit import Fake, envelope

from meshfs_common.errors import PreconditionFailedError
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes

NOW = "2024-01-01T00:00:00Z"
CONTENT = b"a" * CHUNK_SIZE + b"b" * 100
DIGEST = hash_bytes(CONTENT)


def entry(path: str) -> dict[str, Any]:
    return {"node_id": "N", "path": path, "name": path.rsplit("/", 1)[1], "kind": "file",
            "created_at": NOW, "modified_at": NOW, "size": DIGEST.size, "version_id": "V",
            "content_hash": DIGEST.content_hash}  # fmt: skip


def commit_answer(path: str) -> dict[str, Any]:
    version = {"version_id": "V2", "node_id": "N2", "size": DIGEST.size,
               "content_hash": DIGEST.content_hash, "created_at": NOW}  # fmt: skip
    return {"entry": entry(path), "version": version, "created_version": True}


def serve_copy(fake: Fake, *, direct: bool, missing: list[int]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def meta(request: web.Request) -> web.Response:
        return web.json_response(entry(request.query["path"]))

    async def direct_info(request: web.Request) -> web.Response:
        if not direct:
            return envelope(400, "bad_request", "direct transfers are not enabled on this server")
        return web.json_response(
            {
                "version_id": "V",
                "node_id": "N",
                "size": DIGEST.size,
                "content_hash": DIGEST.content_hash,
                "chunk_size": CHUNK_SIZE,
                "chunks": list(DIGEST.chunks),
                "urls": ["http://x/0", "http://x/1"],
                "expires_in": 60,
            }
        )

    async def init(request: web.Request) -> web.Response:
        body = await request.json()
        seen["init"] = body
        return web.json_response(
            {"upload_id": "UP", "chunk_size": CHUNK_SIZE, "missing": missing, "expires_at": NOW}
        )

    async def part(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"upload_id": "UP", "index": 0, "chunk": "c", "missing": []})

    async def commit(request: web.Request) -> web.Response:
        seen["commit_headers"] = dict(request.headers)
        return web.json_response(commit_answer("/dst.bin"))

    async def download(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=CONTENT,
            headers={"X-MeshFS-Version-Id": "V", "X-MeshFS-Content-Hash": DIGEST.content_hash},
        )

    fake.route("GET", "/files/meta", meta)
    fake.route("GET", "/files/download/direct", direct_info)
    fake.route("POST", "/files/upload/init", init)
    fake.route("PUT", "/files/upload/part", part)
    fake.route("POST", "/files/upload/commit", commit)
    fake.route("GET", "/files/download", download)
    return seen


async def test_copy_with_known_chunks_transfers_nothing(fake: Fake, tmp_path: Path) -> None:
    seen = serve_copy(fake, direct=True, missing=[])
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        result = await client.copy("/src.bin", "/dst.bin", if_none_match=True)
    assert result.entry.path == "/dst.bin"
    assert seen["init"]["chunks"] == list(DIGEST.chunks)
    assert seen["init"]["path"] == "/dst.bin"
    assert seen["commit_headers"]["If-None-Match"] == "*"
    assert fake.count("GET", "/files/download") == 0
    assert fake.count("PUT", "/files/upload/part") == 0


async def test_copy_streams_when_the_server_names_no_chunks(fake: Fake, tmp_path: Path) -> None:
    serve_copy(fake, direct=False, missing=[])
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        await client.copy("/src.bin", "/dst.bin")
    assert fake.count("GET", "/files/download") == 1
    assert fake.count("PUT", "/files/upload/part") == 0  # the server holds every chunk


async def test_copy_falls_back_when_a_named_chunk_is_gone(fake: Fake, tmp_path: Path) -> None:
    serve_copy(fake, direct=True, missing=[1])
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        await client.copy("/src.bin", "/dst.bin")
    assert fake.count("GET", "/files/download") == 1
    assert fake.count("POST", "/files/upload/commit") == 1  # only the streamed copy commits


async def test_copy_of_the_head_is_made_on_the_server(fake: Fake, tmp_path: Path) -> None:
    seen = serve_copy(fake, direct=True, missing=[])
    asked: list[dict[str, Any]] = []

    async def server_copy(request: web.Request) -> web.Response:
        asked.append(await request.json())
        if asked[-1]["new_path"] == "/taken.bin":
            return envelope(409, "already_exists", "/taken.bin exists")
        return web.json_response(commit_answer(asked[-1]["new_path"]), status=201)

    fake.route("POST", "/files/copy", server_copy)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        result = await client.copy("/src.bin", "/dst.bin")
        assert result.entry.path == "/dst.bin"
        with pytest.raises(PreconditionFailedError):  # as If-None-Match: * would answer
            await client.copy("/src.bin", "/taken.bin", if_none_match=True)
    assert asked == [
        {"path": "/src.bin", "new_path": "/dst.bin", "overwrite": True},
        {"path": "/src.bin", "new_path": "/taken.bin", "overwrite": False},
    ]
    assert "init" not in seen
    assert fake.count("GET", "/files/download") == 0
