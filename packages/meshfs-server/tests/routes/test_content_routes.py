"""Uploads, one-shot writes and downloads through the HTTP API."""

from __future__ import annotations

import os

import httpx
import pytest

from meshfs_common.hashing import CHUNK_SIZE, chunk_hash, hash_bytes


def init_body(path: str, data: bytes) -> dict:
    digest = hash_bytes(data)
    return {
        "path": path,
        "size": digest.size,
        "content_hash": digest.content_hash,
        "chunks": list(digest.chunks),
    }


def parts(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


async def upload(client: httpx.AsyncClient, path: str, data: bytes) -> httpx.Response:
    init = (await client.post("/files/upload/init", json=init_body(path, data))).json()
    for index in init["missing"]:
        r = await client.put(
            "/files/upload/part",
            params={"upload_id": init["upload_id"], "index": index},
            content=parts(data)[index],
        )
        assert r.status_code == 200, r.text
    return await client.post("/files/upload/commit", json={"upload_id": init["upload_id"]})


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(2 * CHUNK_SIZE + 12345)


async def test_chunked_upload_round_trip(client: httpx.AsyncClient, big: bytes) -> None:
    r = await upload(client, "/big.bin", big)
    assert r.status_code == 201, r.text
    assert r.json()["entry"]["size"] == len(big)
    assert r.json()["entry"]["content_hash"] == hash_bytes(big).content_hash
    body = await client.get("/files/download", params={"path": "/big.bin"})
    assert body.content == big
    assert body.headers["x-meshfs-content-hash"] == hash_bytes(big).content_hash


async def test_resume_sends_only_missing_chunks(client: httpx.AsyncClient, big: bytes) -> None:
    first = (await client.post("/files/upload/init", json=init_body("/r.bin", big))).json()
    assert first["missing"] == [0, 1, 2]
    r = await client.put(
        "/files/upload/part", params={"upload_id": first["upload_id"], "index": 1},
        content=parts(big)[1],
    )  # fmt: skip
    assert r.json()["missing"] == [0, 2]
    # The client was interrupted; a new init for the same content only asks for the rest.
    second = (await client.post("/files/upload/init", json=init_body("/r.bin", big))).json()
    assert second["missing"] == [0, 2]


async def test_content_the_server_has_transfers_nothing(
    client: httpx.AsyncClient, big: bytes
) -> None:
    assert (await upload(client, "/one", big)).status_code == 201
    init = (await client.post("/files/upload/init", json=init_body("/two", big))).json()
    assert init["missing"] == []
    r = await client.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert r.status_code == 201
    assert (await client.get("/files/download", params={"path": "/two"})).content == big


async def test_part_verification(client: httpx.AsyncClient) -> None:
    data = b"a" * 100
    init = (await client.post("/files/upload/init", json=init_body("/v", data))).json()
    uid = init["upload_id"]
    r = await client.put(
        "/files/upload/part", params={"upload_id": uid, "index": 0}, content=b"b" * 100
    )
    assert (r.status_code, r.json()["error"]) == (422, "hash_mismatch")
    r = await client.put(
        "/files/upload/part", params={"upload_id": uid, "index": 0}, content=b"a" * 99
    )
    assert r.status_code == 422
    r = await client.put("/files/upload/part", params={"upload_id": uid, "index": 5}, content=data)
    assert r.status_code == 400
    r = await client.put(
        "/files/upload/part", params={"upload_id": "nope", "index": 0}, content=data
    )
    assert r.status_code == 404
    r = await client.put("/files/upload/part", params={"upload_id": uid}, content=data)
    assert r.status_code == 400
    r = await client.post("/files/upload/commit", json={"upload_id": uid})
    assert (r.status_code, r.json()["error"]) == (409, "upload_incomplete")
    assert r.json()["detail"]["missing"] == [0]
    assert (await client.get("/files/meta", params={"path": "/v"})).status_code == 404


async def test_oversized_part_is_refused(client: httpx.AsyncClient) -> None:
    data = os.urandom(CHUNK_SIZE + 1)
    init = (await client.post("/files/upload/init", json=init_body("/o", data))).json()
    r = await client.put(
        "/files/upload/part", params={"upload_id": init["upload_id"], "index": 0},
        content=data,
    )  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (413, "payload_too_large")


@pytest.mark.parametrize(
    "change",
    [
        {"size": CHUNK_SIZE + 1},
        {"content_hash": "0" * 64},
        {"chunks": ["xyz"]},
        {"chunks": []},
        {"size": -1, "chunks": []},
        {"path": "/a/../b"},
    ],
)
async def test_bad_upload_init(client: httpx.AsyncClient, change: dict) -> None:
    body = init_body("/bad", b"hello") | change
    r = await client.post("/files/upload/init", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("bad_request", "invalid_path")


async def test_commit_twice_is_not_found(client: httpx.AsyncClient) -> None:
    init = (await client.post("/files/upload/init", json=init_body("/c", b""))).json()
    assert init["missing"] == []
    assert (
        await client.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    ).status_code == 201
    again = await client.post("/files/upload/commit", json={"upload_id": init["upload_id"]})
    assert again.status_code == 404
    assert (await client.get("/files/download", params={"path": "/c"})).content == b""


async def test_one_shot_multi_chunk_write(client: httpx.AsyncClient, big: bytes) -> None:
    r = await client.put("/files/content", params={"path": "/stream.bin"}, content=big)
    assert r.status_code == 201
    assert r.json()["entry"]["content_hash"] == hash_bytes(big).content_hash
    assert (await client.get("/files/download", params={"path": "/stream.bin"})).content == big


async def test_ranges(client: httpx.AsyncClient, big: bytes) -> None:
    await client.put("/files/content", params={"path": "/r"}, content=big)
    cases = {
        "bytes=0-9": big[:10],
        f"bytes={CHUNK_SIZE - 5}-{CHUNK_SIZE + 4}": big[CHUNK_SIZE - 5 : CHUNK_SIZE + 5],
        "bytes=-7": big[-7:],
        f"bytes={len(big) - 3}-": big[-3:],
        f"bytes=10-{len(big) + 100}": big[10:],
    }
    for header, expected in cases.items():
        r = await client.get("/files/download", params={"path": "/r"}, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == expected, header
        assert r.headers["content-range"].endswith(f"/{len(big)}")
    r = await client.get(
        "/files/download", params={"path": "/r"}, headers={"Range": f"bytes={len(big)}-"}
    )
    assert (r.status_code, r.json()["error"]) == (416, "range_not_satisfiable")


async def test_etag_and_conditional_requests(client: httpx.AsyncClient) -> None:
    await client.put("/files/content", params={"path": "/e"}, content=b"etag me")
    r = await client.get("/files/download", params={"path": "/e"})
    etag = r.headers["etag"]
    assert etag.startswith('"')
    r = await client.get("/files/download", params={"path": "/e"}, headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    head = await client.head("/files/download", params={"path": "/e"})
    assert head.status_code == 200
    assert head.headers["content-length"] == "7"
    await client.put("/files/content", params={"path": "/e"}, content=b"changed")
    r = await client.get("/files/download", params={"path": "/e"}, headers={"If-None-Match": etag})
    assert r.status_code == 200
    stale = await client.get(
        "/files/download", params={"path": "/e"}, headers={"Range": "bytes=0-1", "If-Range": etag}
    )
    assert (stale.status_code, stale.content) == (200, b"changed")


async def test_download_errors(client: httpx.AsyncClient) -> None:
    await client.post("/files/mkdir", json={"path": "/d"})
    r = await client.get("/files/download", params={"path": "/d"})
    assert (r.status_code, r.json()["error"]) == (409, "is_a_directory")
    assert (await client.get("/files/download", params={"path": "/none"})).status_code == 404
    assert (await client.get("/files/download")).status_code == 400
    w = (await client.put("/files/content", params={"path": "/f"}, content=b"x")).json()
    r = await client.get(
        "/files/download", params={"node_id": w["entry"]["node_id"], "version_id": "nope"}
    )
    assert r.status_code == 404


async def test_deleted_file_versions_stay_downloadable(client: httpx.AsyncClient) -> None:
    w = (await client.put("/files/content", params={"path": "/gone"}, content=b"history")).json()
    await client.delete("/files", params={"path": "/gone"})
    node_id, version_id = w["entry"]["node_id"], w["version"]["version_id"]
    r = await client.get("/files/download", params={"node_id": node_id})
    assert r.status_code == 404
    r = await client.get("/files/download", params={"node_id": node_id, "version_id": version_id})
    assert r.content == b"history"
    assert chunk_hash(b"history")  # the hash helper agrees with what was stored
