"""Every audit row names what was acted on, and a rejected token that names a tenant is audited
where that tenant's owners see it."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import AuthHarness

from meshfs_common.hashing import chunk_hash, content_hash_of


async def audit_rows(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    reply = await client.get("/audit/recent", params={"limit": 1000, **params})
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()["entries"]
    return rows


async def test_every_row_names_the_path_or_object_acted_on(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        assert (await alice.post("/files/mkdir", json={"path": "/docs"})).status_code == 201
        await alice.put("/files/content", params={"path": "/docs/a.txt"}, content=b"one")
        renamed = await alice.post(
            "/files/rename", json={"path": "/docs/a.txt", "new_path": "/docs/b.txt"}
        )
        assert renamed.status_code == 200
        data = b"chunked upload"
        chunks = [chunk_hash(data)]
        init = await alice.post("/files/upload/init", json={
            "path": "/docs/up.bin", "size": len(data), "chunks": chunks,
            "content_hash": content_hash_of(chunks),
        })  # fmt: skip
        upload_id = init.json()["upload_id"]
        await alice.put(
            "/files/upload/part", params={"upload_id": upload_id, "index": 0}, content=data
        )
        committed = await alice.post("/files/upload/commit", json={"upload_id": upload_id})
        assert committed.status_code == 201, committed.text
        node_id = committed.json()["entry"]["node_id"]
        first = committed.json()["version"]["version_id"]
        await alice.put("/files/content", params={"path": "/docs/up.bin"}, content=b"v2")
        restored = await alice.post(f"/files/{node_id}/versions/{first}/restore")
        assert restored.status_code in (200, 201), restored.text
        assert (await alice.delete("/files", params={"path": "/docs/b.txt"})).status_code == 200
        agent = await alice.post("/auth/agents", json={"name": "bot"})
        assert agent.status_code == 201
        sid = agent.json()["session_id"]
        assert (await alice.delete(f"/auth/sessions/{sid}")).status_code == 204
        policy = {"max_versions": 5, "max_days": 7, "grace_days": 7}
        assert (await alice.put("/retention/policy", json=policy)).status_code == 200
        assert (await alice.post("/retention/apply")).status_code == 200
        rows = await audit_rows(alice)

    by_action: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert [r["target"] for r in by_action["POST /files/mkdir"]] == ["/docs"]
    [rename] = by_action["POST /files/rename"]
    assert (rename["target"], rename["detail"]["new_path"]) == ("/docs/a.txt", "/docs/b.txt")
    [commit] = by_action["POST /files/upload/commit"]
    assert (commit["target"], commit["detail"]["upload_id"]) == ("/docs/up.bin", upload_id)
    [restore] = by_action["POST /files/{id}/versions/{id}/restore"]
    assert (restore["target"], restore["detail"]["version_id"]) == (node_id, first)
    assert [r["target"] for r in by_action["DELETE /files"]] == ["/docs/b.txt"]
    assert [r["target"] for r in by_action["DELETE /auth/sessions/{id}"]] == [sid]
    assert [r["target"] for r in by_action["POST /auth/agents"]] == ["bot"]
    assert by_action["auth.device_approve"][0]["target"]
    tenant = owner.tenant_id
    assert [r["target"] for r in by_action["retention.policy"]] == [tenant]
    assert [r["target"] for r in by_action["retention.apply"]] == [tenant]
    unnamed = [(r["action"], r.get("target")) for r in rows if not r.get("target")]
    assert unnamed == []
    # No row names an endpoint where it should name a path.
    assert not [r for r in rows if r["target"] in ("/files/mkdir", "/files/rename")]


async def test_device_start_is_audited_with_its_user_code(auth: AuthHarness) -> None:
    started = await auth.client.post("/auth/device/start", json={"client_name": "cli"})
    code = started.json()["user_code"]
    async with auth.services.identity.db.read() as conn:
        rows = await conn.fetchall(
            "SELECT target FROM audit WHERE action = 'auth.device_start'", ()
        )
    assert [r[0] for r in rows] == [code]


async def test_a_revoked_session_still_in_use_is_audited_in_its_tenant(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    stolen = await auth.login("alice", client_name="laptop")
    async with auth.client_for(owner.access_token) as alice:
        assert (await alice.delete(f"/auth/sessions/{stolen.session_id}")).status_code == 204
    async with auth.client_for(stolen.access_token) as thief:
        r = await thief.get("/files/list", params={"path": "/secrets"})
        assert r.status_code == 401
    async with auth.client_for(owner.access_token) as alice:
        failed = await audit_rows(alice, action="auth.failed")
    assert len(failed) == 1
    row = failed[0]
    assert row["outcome"] == "denied"
    assert row["target"] == "/secrets"
    assert (row["user_id"], row["session_id"]) == (stolen.user_id, stolen.session_id)
    assert "revoked" in row["detail"]["reason"]
    assert row["detail"]["request"] == "GET /files/list"


async def test_an_expired_access_token_is_audited_in_its_tenant(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    signer = auth.services.identity.signer
    ttl, signer.ttl = signer.ttl, -3600  # signed by the server, expired an hour ago
    try:
        expired = signer.issue(
            user_id=owner.user_id, tenant_id=owner.tenant_id, session_id=owner.session_id,
            scope="files",
        )  # fmt: skip
    finally:
        signer.ttl = ttl
    async with auth.client_for(expired) as late:
        assert (await late.post("/files/mkdir", json={"path": "/x"})).status_code == 401
    async with auth.client_for(owner.access_token) as alice:
        failed = await audit_rows(alice, action="auth.failed")
    assert [(r["session_id"], r["target"]) for r in failed] == [(owner.session_id, "/files/mkdir")]
    assert "expired" in failed[0]["detail"]["reason"]


async def test_a_forged_token_names_no_tenant(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for("garbage") as bad:
        assert (await bad.get("/files/list", params={"path": "/"})).status_code == 401
    async with auth.client_for(owner.access_token) as alice:
        assert await audit_rows(alice, action="auth.failed") == []
    async with auth.services.identity.db.read() as conn:
        rows = await conn.fetchall(
            "SELECT tenant_id, target FROM audit WHERE action = 'auth.failed'", ()
        )
    assert [tuple(r) for r in rows] == [(None, "/")]
