"""Server-side copy, rename with exchange, and statfs through the HTTP API."""

from __future__ import annotations

from typing import Any

import httpx

from meshfs_common.hashing import hash_bytes


async def put(client: httpx.AsyncClient, path: str, data: bytes) -> dict[str, Any]:
    r = await client.put("/files/content", params={"path": path}, content=data)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


async def body_of(client: httpx.AsyncClient, path: str) -> bytes:
    r = await client.get("/files/download", params={"path": path})
    assert r.status_code == 200, r.text
    return r.content


async def events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get("/sync/pull", params={"cursor": 0})).json()[
        "events"
    ]
    return found


# --- copy ---------------------------------------------------------------------------------------


async def test_copy_shares_content_and_has_its_own_history(client: httpx.AsyncClient) -> None:
    src = await put(client, "/a.txt", b"original")
    r = await client.post("/files/copy", json={"path": "/a.txt", "new_path": "/b.txt"})
    assert r.status_code == 201, r.text
    copy = r.json()
    assert copy["entry"]["node_id"] != src["entry"]["node_id"]
    assert copy["entry"]["content_hash"] == hash_bytes(b"original").content_hash
    assert await body_of(client, "/b.txt") == b"original"
    last = (await events(client))[-1]
    assert (last["type"], last["path"], last["node_id"]) == ("write", "/b.txt",
                                                             copy["entry"]["node_id"])  # fmt: skip
    # From now on the two files are independent.
    await put(client, "/a.txt", b"changed")
    assert await body_of(client, "/b.txt") == b"original"
    versions = (await client.get(f"/files/{copy['entry']['node_id']}/versions")).json()
    assert len(versions["versions"]) == 1


async def test_copy_refusals(client: httpx.AsyncClient) -> None:
    await put(client, "/f", b"f")
    await put(client, "/g", b"g")
    await client.post("/files/mkdir", json={"path": "/dir"})
    cases = [
        ({"path": "/f", "new_path": "/g"}, 409, "already_exists"),
        ({"path": "/dir", "new_path": "/d2"}, 409, "is_a_directory"),
        ({"path": "/f", "new_path": "/dir"}, 409, "is_a_directory"),
        ({"path": "/none", "new_path": "/x"}, 404, "not_found"),
        ({"path": "/f", "new_path": "/missing/x"}, 404, "not_found"),
        ({"path": "/f", "new_path": "/g/x"}, 409, "not_a_directory"),
    ]
    for body, status, code in cases:
        r = await client.post("/files/copy", json=body)
        assert (r.status_code, r.json()["error"]) == (status, code), (body, r.text)
    assert await body_of(client, "/g") == b"g"


async def test_copy_over_a_file_with_overwrite_is_a_new_version(
    client: httpx.AsyncClient,
) -> None:
    await put(client, "/src", b"new content")
    old = await put(client, "/dst", b"old content")
    r = await client.post("/files/copy", json={"path": "/src", "new_path": "/dst",
                                               "overwrite": True})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["entry"]["node_id"] == old["entry"]["node_id"]
    assert r.json()["version"]["replaces"] == old["version"]["version_id"]
    assert await body_of(client, "/dst") == b"new content"


# --- exchange -----------------------------------------------------------------------------------


async def test_exchange_swaps_two_paths(client: httpx.AsyncClient) -> None:
    a = await put(client, "/x/a", b"A")
    await client.post("/files/mkdir", json={"path": "/y/dir"})
    b = await put(client, "/y/dir/inner", b"B")
    r = await client.post(
        "/files/rename", json={"path": "/x/a", "new_path": "/y/dir", "exchange": True}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["node_id"], r.json()["path"]) == (a["entry"]["node_id"], "/y/dir")
    assert await body_of(client, "/y/dir") == b"A"
    assert await body_of(client, "/x/a/inner") == b"B"  # the directory moved with its subtree
    moved = (await client.get("/files/meta", params={"path": "/x/a/inner"})).json()
    assert moved["node_id"] == b["entry"]["node_id"]
    first, second = (await events(client))[-2:]
    assert (first["type"], first["old_path"], first["path"]) == ("rename", "/x/a", "/y/dir")
    assert (second["type"], second["old_path"], second["path"]) == ("rename", "/y/dir", "/x/a")
    assert first["exchanged_with"] == second["node_id"]
    assert second["exchanged_with"] == first["node_id"]


async def test_exchange_refusals(client: httpx.AsyncClient) -> None:
    await put(client, "/d/f", b"f")
    await put(client, "/e", b"e")
    cases = [
        ({"path": "/d/f", "new_path": "/none"}, 404, "not_found"),
        ({"path": "/none", "new_path": "/e"}, 404, "not_found"),
        ({"path": "/d", "new_path": "/d/f"}, 409, "invalid_move"),
        ({"path": "/d/f", "new_path": "/d"}, 409, "invalid_move"),
        ({"path": "/", "new_path": "/e"}, 409, "invalid_move"),
        ({"path": "/d/f", "new_path": "/e", "overwrite": True}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        r = await client.post("/files/rename", json=body | {"exchange": True})
        assert (r.status_code, r.json()["error"]) == (status, code), (body, r.text)
    assert await body_of(client, "/d/f") == b"f"
    assert await body_of(client, "/e") == b"e"


async def test_exchange_honours_if_match(client: httpx.AsyncClient) -> None:
    await put(client, "/p", b"p")
    await put(client, "/q", b"q")
    r = await client.post(
        "/files/rename", json={"path": "/p", "new_path": "/q", "exchange": True},
        headers={"If-Match": "not-the-head"},
    )  # fmt: skip
    assert r.status_code == 412
    assert await body_of(client, "/p") == b"p"


# --- statfs -------------------------------------------------------------------------------------


async def test_statfs_counts_the_tenant(client: httpx.AsyncClient) -> None:
    empty = (await client.get("/files/statfs")).json()
    assert (empty["files"], empty["directories"], empty["name_max"]) == (0, 1, 255)
    await put(client, "/s/one", b"1" * 100)
    await put(client, "/s/two", b"1" * 100)  # the same content: stored once
    await put(client, "/three", b"3" * 50)
    stats = (await client.get("/files/statfs")).json()
    assert (stats["files"], stats["directories"]) == (3, 2)
    assert stats["used_bytes"] == 150
