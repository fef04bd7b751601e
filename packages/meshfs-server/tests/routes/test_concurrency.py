"""Concurrent writers: last-write-wins by commit order, every write kept, a gap-free feed."""

from __future__ import annotations

import asyncio
import itertools

import httpx


async def test_32_concurrent_writers_to_one_path(client: httpx.AsyncClient) -> None:
    bodies = [f"writer {i}".encode() for i in range(32)]
    results = await asyncio.gather(
        *(client.put("/files/content", params={"path": "/hot.txt"}, content=b) for b in bodies)
    )
    assert all(r.status_code in (200, 201) for r in results)
    node_ids = {r.json()["entry"]["node_id"] for r in results}
    assert len(node_ids) == 1
    node_id = node_ids.pop()

    versions = (await client.get(f"/files/{node_id}/versions")).json()["versions"]
    assert len(versions) == 32
    feed = (await client.get("/sync/pull", params={"cursor": 0})).json()["events"]
    assert [e["seq"] for e in feed] == list(range(1, 33))
    assert [e["version_id"] for e in feed] == [v["version_id"] for v in reversed(versions)]
    # Each version replaces the one committed just before it: one linear history.
    ordered = list(reversed(versions))
    assert ordered[0]["replaces"] is None
    assert all(b["replaces"] == a["version_id"] for a, b in itertools.pairwise(ordered))

    head = (await client.get("/files/meta", params={"path": "/hot.txt"})).json()
    assert head["version_id"] == feed[-1]["version_id"]
    body = (await client.get("/files/download", params={"path": "/hot.txt"})).content
    assert body in bodies
    contents = set()
    for v in versions:
        r = await client.get(
            "/files/download", params={"node_id": node_id, "version_id": v["version_id"]}
        )
        contents.add(r.content)
    assert contents == set(bodies)  # nothing anyone wrote was lost


async def test_concurrent_mkdir_of_same_tree(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(
        *(client.post("/files/mkdir", json={"path": "/x/y/z"}) for _ in range(16))
    )
    assert sorted(r.status_code for r in results) == [200] * 15 + [201]
    feed = (await client.get("/sync/pull")).json()["events"]
    assert [e["path"] for e in feed] == ["/x", "/x/y", "/x/y/z"]
