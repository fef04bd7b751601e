"""Versions belong to files: asking for a directory's is a 409 that says so, not an empty list
(`meshfs versions DIR` used to print nothing and exit 0)."""

from __future__ import annotations

from conftest import AuthHarness


async def test_versions_of_a_directory_is_is_a_directory(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await alice.post("/files/mkdir", json={"path": "/dir"})
        node = (await alice.get("/files/meta", params={"path": "/dir"})).json()["node_id"]
        reply = await alice.get(f"/files/{node}/versions")
    assert reply.status_code == 409, reply.text
    assert reply.json()["error"] == "is_a_directory"
    assert "/dir is a directory" in reply.json()["error_description"]
