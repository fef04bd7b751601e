"""Partial writes through the HTTP API: a new version as "the head with these chunks replaced
and this new size" (upload/init with base_version), and the chunk list it is based on."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from meshfs_common.hashing import (
    CHUNK_SIZE,
    chunk_hash,
    content_hash_of,
    hash_bytes,
    zero_chunk_hash,
)


def parts(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


async def put(client: httpx.AsyncClient, path: str, data: bytes) -> dict[str, Any]:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


def partial_body(path: str, base: str, new: bytes, changed: list[int]) -> dict[str, Any]:
    """An init for *new* (the whole new content, for its hash) sending only *changed*."""
    digest = hash_bytes(new)
    return {
        "path": path, "base_version": base, "size": len(new), "content_hash": digest.content_hash,
        "replace": {str(i): digest.chunks[i] for i in changed},
    }  # fmt: skip


async def commit_partial(
    client: httpx.AsyncClient, body: dict[str, Any], new: bytes
) -> tuple[list[int], httpx.Response]:
    init = await client.post("/files/upload/init", json=body)
    assert init.status_code == 200, init.text
    answer = init.json()
    for index in answer["missing"]:
        r = await client.put(
            "/files/upload/part", params={"upload_id": answer["upload_id"], "index": index},
            content=parts(new)[index],
        )  # fmt: skip
        assert r.status_code == 200, r.text
    done = await client.post("/files/upload/commit", json={"upload_id": answer["upload_id"]})
    return answer["missing"], done


@pytest.fixture(scope="module")
def three() -> bytes:
    return os.urandom(3 * CHUNK_SIZE)


async def test_a_middle_change_sends_one_chunk(client: httpx.AsyncClient, three: bytes) -> None:
    base = (await put(client, "/big", three))["version"]["version_id"]
    new = bytearray(three)
    new[CHUNK_SIZE + 100 : CHUNK_SIZE + 4196] = os.urandom(4096)
    missing, done = await commit_partial(
        client, partial_body("/big", base, bytes(new), [1]), bytes(new)
    )
    assert missing == [1]
    assert done.status_code == 200, done.text
    assert done.json()["version"]["replaces"] == base
    assert done.json()["entry"]["content_hash"] == hash_bytes(bytes(new)).content_hash
    assert (await client.get("/files/download", params={"path": "/big"})).content == new
    chunks = (await client.get("/files/chunks", params={"path": "/big"})).json()
    assert chunks["chunks"] == list(hash_bytes(bytes(new)).chunks)
    assert chunks["version_id"] == done.json()["version"]["version_id"]


async def test_truncate_gives_the_new_last_chunk(client: httpx.AsyncClient, three: bytes) -> None:
    base = (await put(client, "/t", three))["version"]["version_id"]
    new = three[: CHUNK_SIZE + 10]
    # The chunk holding the new end changes length: it must be given.
    refused = await client.post("/files/upload/init", json=partial_body("/t", base, new, []))
    assert refused.status_code == 400
    assert "chunk 1 changes length" in refused.json()["error_description"]
    missing, done = await commit_partial(client, partial_body("/t", base, new, [1]), new)
    assert missing == [1]
    assert done.status_code == 200, done.text
    assert (await client.get("/files/download", params={"path": "/t"})).content == new


async def test_a_zero_extension_uploads_nothing(client: httpx.AsyncClient) -> None:
    head = b"h" * 1000
    base = (await put(client, "/sparse", head))["version"]["version_id"]
    new = head + bytes(CHUNK_SIZE - 1000) + bytes(2 * CHUNK_SIZE + 7)
    # Only chunk 0 (the old end, now a whole chunk) is given; chunks 1 to 3 are zeros.
    body = partial_body("/sparse", base, new, [0])
    assert hash_bytes(new).chunks[1:] == (zero_chunk_hash(),) * 2 + (zero_chunk_hash(7),)
    missing, done = await commit_partial(client, body, new)
    assert missing == [0]
    assert done.status_code == 200, done.text
    got = await client.get("/files/download", params={"path": "/sparse"})
    assert got.content == new


async def test_a_pure_zero_extension_asks_for_nothing(client: httpx.AsyncClient) -> None:
    head = b"z" * CHUNK_SIZE
    base = (await put(client, "/grow", head))["version"]["version_id"]
    new = head + bytes(5)
    missing, done = await commit_partial(client, partial_body("/grow", base, new, []), new)
    assert missing == []
    assert done.status_code == 200, done.text
    assert (await client.get("/files/download", params={"path": "/grow"})).content == new


async def test_a_stale_base_is_refused(client: httpx.AsyncClient) -> None:
    first = (await put(client, "/s", b"one"))["version"]["version_id"]
    await put(client, "/s", b"two")
    r = await client.post("/files/upload/init", json=partial_body("/s", first, b"thr", [0]))
    assert r.status_code == 412
    assert r.json()["error"] == "precondition_failed"


async def test_the_head_moving_before_commit_is_refused(client: httpx.AsyncClient) -> None:
    base = (await put(client, "/m", b"base"))["version"]["version_id"]
    init = await client.post("/files/upload/init", json=partial_body("/m", base, b"next", [0]))
    upload_id = init.json()["upload_id"]
    await client.put(
        "/files/upload/part", params={"upload_id": upload_id, "index": 0}, content=b"next"
    )
    await put(client, "/m", b"someone else")
    done = await client.post("/files/upload/commit", json={"upload_id": upload_id})
    assert done.status_code == 412, done.text
    assert (await client.get("/files/download", params={"path": "/m"})).content == b"someone else"


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"chunks": ["0" * 64]}, 400, "names only its changed chunks"),
        ({"base_version": None}, 400, "replace needs base_version"),
        ({"replace": {"3": "0" * 64}}, 400, "replace names chunk 3"),
        ({"replace": {"0": "XYZ"}}, 400, "64 lowercase hex"),
        ({"content_hash": "0" * 64}, 400, "content_hash does not match"),
        ({"path": "/nothing-here"}, 404, "no such file"),
        ({"path": "/"}, 409, "is a directory"),
    ],
)
async def test_partial_write_refusals(
    client: httpx.AsyncClient, change: dict[str, Any], status: int, message: str
) -> None:
    base = (await put(client, "/r", b"abc"))["version"]["version_id"]
    body = partial_body("/r", base, b"abd", [0]) | change
    if "base_version" in change:
        body["chunks"] = []
    r = await client.post("/files/upload/init", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error_description"]


async def test_chunks_of_a_version(client: httpx.AsyncClient) -> None:
    first = await put(client, "/c", b"first")
    await put(client, "/c", b"second")
    got = await client.get(
        "/files/chunks",
        params={"node_id": first["entry"]["node_id"], "version_id": first["version"]["version_id"]},
    )
    assert got.status_code == 200
    assert got.json()["chunks"] == [chunk_hash(b"first")]
    assert got.json()["content_hash"] == content_hash_of([chunk_hash(b"first")])
    assert got.json()["chunk_size"] == CHUNK_SIZE
    assert (await client.get("/files/chunks", params={"path": "/none"})).status_code == 404
    assert (await client.get("/files/chunks", params={"path": "/"})).status_code == 409
