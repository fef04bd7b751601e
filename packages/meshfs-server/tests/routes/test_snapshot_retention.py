"""Retention keeps what snapshots reference (versions and tombstones) until they are deleted."""

from __future__ import annotations

import httpx
from conftest import AuthHarness
from meshfs_server_backends import sql_only


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> dict:
    reply = await client.put("/files/content", params={"path": path}, content=data)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


async def version_ids(client: httpx.AsyncClient, node_id: str) -> list[str]:
    page = (await client.get(f"/files/{node_id}/versions")).json()
    return [v["version_id"] for v in page["versions"]]


@sql_only  # ages rows with SQL
async def test_snapshots_pin_versions_and_tombstones(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await write(alice, "/p/f.txt", b"v0")
        pinned = (await write(alice, "/p/f.txt", b"v1"))["version"]["version_id"]
        gone = (await write(alice, "/p/gone.txt", b"deleted later"))["entry"]["node_id"]
        reply = await alice.post("/snapshots", json={"path": "/p", "name": "keep"})
        assert reply.status_code == 201, reply.text
        for i in (2, 3, 4):
            node = (await write(alice, "/p/f.txt", f"v{i}".encode()))["entry"]["node_id"]
        await alice.delete("/files", params={"path": "/p/gone.txt"})
        await alice.put("/retention/policy",
                        json={"max_versions": 2, "max_days": 7, "grace_days": 1})  # fmt: skip
        async with auth.services.identity.db.write() as conn:
            await conn.execute("UPDATE nodes SET deleted_at = deleted_at - 2 * 86400"
                               " WHERE node_id = ?", (gone,))  # fmt: skip
        report = (await alice.post("/retention/apply")).json()
        # v0 and v2 went; v3 and v4 are the newest two; v1 is the snapshot's.
        assert report["pruned_versions"] == 2
        assert report["purged_nodes"] == 0
        kept = await version_ids(alice, node)
        assert len(kept) == 3
        assert pinned in kept
        listing = await alice.get("/files/list", params={"path": "/p", "include_deleted": "true"})
        assert gone in [e["node_id"] for e in listing.json()["entries"]]
        # So the snapshot still restores exactly.
        assert (await alice.post("/snapshots/keep/restore")).status_code == 200
        assert (await alice.get("/files/download", params={"path": "/p/f.txt"})).content == b"v1"
        got = await alice.get("/files/download", params={"path": "/p/gone.txt"})
        assert got.content == b"deleted later"
        # Once the snapshots are gone, retention may prune what only they kept.
        for snap in (await alice.get("/snapshots")).json()["snapshots"]:
            assert (await alice.delete(f"/snapshots/{snap['snapshot_id']}")).status_code == 200
        again = (await alice.post("/retention/apply")).json()
        assert again["pruned_versions"] >= 1
        assert pinned not in await version_ids(alice, node)
