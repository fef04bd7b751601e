"""Roles, agent tokens, sessions, audit, plans, retention and quota through the real API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness
from meshfs_server_backends import STARTUP_SECONDS, sql_only

from meshfs_common.hashing import chunk_hash, content_hash_of
from meshfs_server.app import create_app
from meshfs_server.settings import Settings


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> httpx.Response:
    return await client.put("/files/content", params={"path": path}, content=data)


# --- roles --------------------------------------------------------------------------------------


async def test_reader_reads_but_cannot_write(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    reader = await auth.login("rita", tenant="alice", role="reader")
    assert reader.tenant_id == owner.tenant_id
    async with (
        auth.client_for(owner.access_token) as alice,
        auth.client_for(reader.access_token) as rita,
    ):
        assert (await write(alice, "/shared.txt", b"hello")).status_code in (200, 201)
        got = await rita.get("/files/download", params={"path": "/shared.txt"})
        assert got.content == b"hello"
        for attempt in (
            write(rita, "/mine.txt", b"x"),
            rita.post("/files/mkdir", json={"path": "/d"}),
            rita.delete("/files", params={"path": "/shared.txt"}),
            rita.post("/files/rename", json={"path": "/shared.txt", "new_path": "/s2.txt"}),
        ):
            reply = await attempt
            assert (reply.status_code, reply.json()["error"]) == (403, "read_only")
        assert (await rita.post("/auth/agents", json={"name": "bot"})).status_code == 403


async def test_role_change_applies_on_next_request(auth: AuthHarness) -> None:
    await auth.login("alice")
    writer = await auth.login("wes", tenant="alice", role="writer")
    async with auth.client_for(writer.access_token) as wes:
        assert (await wes.post("/files/mkdir", json={"path": "/a"})).status_code == 201
        async with auth.services.identity.db.write() as conn:
            await conn.execute("UPDATE memberships SET role = 'reader' WHERE user_id = ?",
                               (writer.user_id,))  # fmt: skip
        assert (await wes.post("/files/mkdir", json={"path": "/b"})).status_code == 403
        async with auth.services.identity.db.write() as conn:
            await conn.execute("DELETE FROM memberships WHERE user_id = ?", (writer.user_id,))
        assert (await wes.get("/files/list", params={"path": "/"})).status_code == 401


async def test_only_owners_change_retention(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    writer = await auth.login("wes", tenant="alice", role="writer")
    policy = {"max_versions": 5, "max_days": 3, "grace_days": 2}
    async with auth.client_for(writer.access_token) as wes:
        assert (await wes.get("/retention/policy")).status_code == 200
        assert (await wes.put("/retention/policy", json=policy)).status_code == 403
        assert (await wes.post("/retention/apply")).status_code == 403
    async with auth.client_for(owner.access_token) as alice:
        reply = await alice.put("/retention/policy", json=policy)
        assert reply.json() == policy
        # Raising beyond the plan's preset would be raising the plan: refused.
        too_much = await alice.put(
            "/retention/policy", json={"max_versions": 21, "max_days": 7, "grace_days": 7}
        )
        assert too_much.status_code == 400
        info = (await alice.get("/plans/current")).json()
    assert info["plan"] == "free"
    assert info["retention"] == policy
    assert info["plan_retention"] == {"max_versions": 20, "max_days": 7, "grace_days": 7}


# --- agent tokens -------------------------------------------------------------------------------


async def make_agent(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    reply = await client.post("/auth/agents", json={"name": "bot", **body})
    assert reply.status_code == 201, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def test_agent_token_prefix_and_access(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        for path in ("/agents/bot", "/private"):
            await alice.post("/files/mkdir", json={"path": path})
        await write(alice, "/private/secret.txt", b"s3cret")
        rw = await make_agent(alice, path_prefix="/agents/bot", access="write")
        ro = await make_agent(alice, name="reader-bot", path_prefix="/agents", access="read")
    assert rw["token"].startswith("mfa_")
    async with auth.client_for(rw["token"]) as bot:
        assert (await write(bot, "/agents/bot/out.txt", b"result")).status_code in (200, 201)
        for attempt in (
            write(bot, "/private/x.txt", b"no"),
            bot.get("/files/download", params={"path": "/private/secret.txt"}),
            bot.get("/files/list", params={"path": "/"}),
            # Renames across the prefix boundary, in both directions.
            bot.post("/files/rename", json={"path": "/agents/bot/out.txt", "new_path": "/out.txt"}),
            bot.post("/files/rename", json={"path": "/private/secret.txt",
                                            "new_path": "/agents/bot/stolen.txt"}),
            bot.post("/files/rename", json={"path": "/agents/bot", "new_path": "/bot2"}),
        ):  # fmt: skip
            reply = await attempt
            assert reply.status_code == 403, reply.text
        assert (await bot.post("/auth/agents", json={"name": "child"})).status_code == 403
        me = (await bot.get("/auth/whoami")).json()
        assert me["user_id"] == owner.user_id
        versions = await bot.get("/files/meta", params={"path": "/agents/bot/out.txt"})
        assert versions.status_code == 200
    async with auth.client_for(ro["token"]) as reader:
        got = await reader.get("/files/download", params={"path": "/agents/bot/out.txt"})
        assert got.content == b"result"
        assert (await write(reader, "/agents/r.txt", b"x")).status_code == 403
    # Every version records which agent wrote it.
    async with auth.client_for(owner.access_token) as alice:
        meta = (await alice.get("/files/meta", params={"path": "/agents/bot/out.txt"})).json()
        page = (await alice.get(f"/files/{meta['node_id']}/versions")).json()
    assert page["versions"][0]["writer"]["agent_name"] == "bot"


async def test_agent_token_expiry_and_revocation(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        short = await make_agent(alice, name="short", expires_in=60)
        other = await make_agent(alice, name="other")
        assert (
            await alice.post("/auth/agents", json={"name": "x", "expires_in": 5})
        ).status_code == 400
    async with auth.services.identity.db.write() as conn:
        await conn.execute("UPDATE sessions SET expires_at = ? WHERE session_id = ?",
                           (time.time() - 1, short["session_id"]))  # fmt: skip
    async with auth.client_for(short["token"]) as bot:
        assert (await bot.get("/auth/whoami")).status_code == 401
    async with auth.client_for(other["token"]) as bot:
        assert (await bot.get("/auth/whoami")).status_code == 200
    async with auth.client_for(owner.access_token) as alice:
        listed = (await alice.get("/auth/sessions")).json()["sessions"]
        assert {s["name"] for s in listed} >= {"other", "pytest"}
        assert any(s["current"] for s in listed)
        revoked = await alice.delete(f"/auth/sessions/{other['session_id']}")
        assert revoked.status_code == 204
    async with auth.client_for(other["token"]) as bot:
        assert (await bot.get("/auth/whoami")).status_code == 401


async def test_session_revoke_rules(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    writer = await auth.login("wes", tenant="alice", role="writer")
    writer2 = await auth.login("wes", client_name="phone")
    outsider = await auth.login("eve")
    async with auth.client_for(writer.access_token) as wes:
        # A writer cannot touch the owner's session (it looks absent) but can end their own.
        assert (await wes.delete(f"/auth/sessions/{owner.session_id}")).status_code == 404
        assert (await wes.get("/auth/sessions", params={"all": "true"})).status_code == 403
        assert (await wes.delete(f"/auth/sessions/{writer2.session_id}")).status_code == 204
    async with auth.client_for(outsider.access_token) as eve:
        assert (await eve.delete(f"/auth/sessions/{owner.session_id}")).status_code == 404
    async with auth.client_for(owner.access_token) as alice:
        everyone = (await alice.get("/auth/sessions", params={"all": "true"})).json()["sessions"]
        assert {s["username"] for s in everyone} == {"alice", "wes"}
        assert (await alice.delete(f"/auth/sessions/{writer.session_id}")).status_code == 204
    async with auth.client_for(writer.access_token) as wes:
        assert (await wes.get("/auth/whoami")).status_code == 401


# --- audit --------------------------------------------------------------------------------------


async def test_audit_records_mutations_and_auth_events(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    writer = await auth.login("wes", tenant="alice", role="writer")
    async with auth.client_for(writer.access_token) as wes:
        await wes.post("/files/mkdir", json={"path": "/w"})
        mine = (await wes.get("/audit/recent")).json()["entries"]
        assert mine
        assert {e["user_id"] for e in mine} == {writer.user_id}
        assert (
            await wes.get("/audit/recent", params={"user_id": owner.user_id})
        ).status_code == 403
    async with auth.client_for(owner.access_token) as alice:
        await alice.post("/files/mkdir", json={"path": "/o"})
        await alice.post("/files/mkdir", json={"path": "/w"})  # exists: 200, still audited
        rows = (await alice.get("/audit/recent", params={"limit": 1000})).json()["entries"]
        actions = [e["action"] for e in rows]
        assert "POST /files/mkdir" in actions
        assert "auth.login" in actions
        assert "auth.device_approve" in actions
        mkdirs = [e for e in rows if e["action"] == "POST /files/mkdir"]
        assert {e["user_id"] for e in mkdirs} == {owner.user_id, writer.user_id}
        assert all(e["detail"]["status"] in (200, 201) for e in mkdirs)
        auth_only = (await alice.get("/audit/recent", params={"action": "auth.*"})).json()
        assert all(e["action"].startswith("auth.") for e in auth_only["entries"])
        page1 = (await alice.get("/audit/recent", params={"limit": 2})).json()
        assert page1["has_more"]
        assert len(page1["entries"]) == 2
        page2 = (
            await alice.get("/audit/recent", params={"limit": 2, "before": page1["next_before"]})
        ).json()
        assert page2["entries"][0]["audit_id"] < page1["entries"][-1]["audit_id"]


async def test_failed_authentication_is_audited(auth: AuthHarness) -> None:
    async with auth.client_for("garbage") as bad:
        assert (await bad.get("/files/list", params={"path": "/"})).status_code == 401
    async with auth.services.identity.db.read() as conn:
        rows = await conn.fetchall("SELECT action, outcome FROM audit WHERE action = 'auth.failed'")
        assert list(rows) == [("auth.failed", "denied")]


# --- plans, quota, retention --------------------------------------------------------------------


async def test_usage_is_deduplicated(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await write(alice, "/a.bin", b"x" * 1000)
        await write(alice, "/b.bin", b"x" * 1000)  # same content: stored once
        await write(alice, "/c.bin", b"y" * 500)
        info = (await alice.get("/plans/current")).json()
    assert info["storage"]["used"] == 1500
    assert info["storage"]["quota"] == auth.settings.tenant_storage_quota_bytes
    assert info["rate_limit_per_minute"] == auth.settings.rate_limit_per_minute


@pytest.fixture
async def small(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[AuthHarness]:
    settings = Settings(
        data_dir=tmp_path / "small", gc_grace_seconds=0, tenant_storage_quota_bytes=1000,
        rate_limit_per_minute=100_000, **backend,
    )  # fmt: skip
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as client:
            yield AuthHarness(app, transport, client, app.state.services, settings)


async def test_quota_refuses_writes_over_it(small: AuthHarness) -> None:
    owner = await small.login("alice")
    async with small.client_for(owner.access_token) as alice:
        assert (await write(alice, "/a", b"a" * 600)).status_code == 201
        over = await write(alice, "/b", b"b" * 600)
        assert (over.status_code, over.json()["error"]) == (507, "quota_exceeded")
        assert (await alice.get("/files/meta", params={"path": "/b"})).status_code == 404
        assert (await write(alice, "/c", b"c" * 400)).status_code == 201
        info = (await alice.get("/plans/current")).json()["storage"]
    assert info == {"quota": 1000, "used": 1000, "reserved": 0}


async def test_quota_counts_deduplicated_content_once(small: AuthHarness) -> None:
    owner = await small.login("alice")
    async with small.client_for(owner.access_token) as alice:
        assert (await write(alice, "/a", b"x" * 900)).status_code == 201
        # The same bytes again (another file, a rename over a file, a restore) cost nothing.
        assert (await write(alice, "/copy-of-a", b"x" * 900)).status_code == 201
        over = await write(alice, "/new", b"y" * 200)
        assert over.status_code == 507
        await alice.delete("/files", params={"path": "/copy-of-a"})
        info = (await alice.get("/plans/current")).json()["storage"]
    assert info["used"] == 900


async def test_quota_race_never_exceeds(small: AuthHarness) -> None:
    owner = await small.login("alice")
    async with small.client_for(owner.access_token) as alice:

        async def chunked(i: int) -> int:
            data = bytes([i]) * 300
            chunks = [chunk_hash(data)]
            init = await alice.post("/files/upload/init", json={
                "path": f"/u{i}", "size": len(data), "content_hash": content_hash_of(chunks),
                "chunks": chunks,
            })  # fmt: skip
            if init.status_code != 200:
                return init.status_code
            upload_id = init.json()["upload_id"]
            await alice.put("/files/upload/part", params={"upload_id": upload_id, "index": 0},
                            content=data)  # fmt: skip
            done = await alice.post("/files/upload/commit", json={"upload_id": upload_id})
            return done.status_code

        async def oneshot(i: int) -> int:
            return (await write(alice, f"/o{i}", bytes([100 + i]) * 300)).status_code

        results = await asyncio.gather(
            *(chunked(i) for i in range(6)), *(oneshot(i) for i in range(6))
        )
        info = (await alice.get("/plans/current")).json()["storage"]
    assert set(results) <= {200, 201, 507}
    assert results.count(201) == 3  # 3 x 300 fit in 1000; a 4th never does
    assert info["used"] <= 1000


@sql_only  # ages rows with SQL
async def test_retention_prunes_versions_and_purges_tombstones(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        for i in range(5):
            await write(alice, "/f.txt", f"version {i}".encode())
        await write(alice, "/gone.txt", b"deleted soon")
        gone = (await alice.get("/files/meta", params={"path": "/gone.txt"})).json()
        await alice.delete("/files", params={"path": "/gone.txt"})
        await alice.put("/retention/policy",
                        json={"max_versions": 2, "max_days": 7, "grace_days": 1})  # fmt: skip
        async with auth.services.identity.db.write() as conn:
            await conn.execute("UPDATE nodes SET deleted_at = deleted_at - 2 * 86400"
                               " WHERE node_id = ?", (gone["node_id"],))  # fmt: skip
        report = (await alice.post("/retention/apply")).json()
        meta = (await alice.get("/files/meta", params={"path": "/f.txt"})).json()
        versions = (await alice.get(f"/files/{meta['node_id']}/versions")).json()["versions"]
        head = await alice.get("/files/download", params={"path": "/f.txt"})
        listing = await alice.get("/files/list", params={"path": "/", "include_deleted": "true"})
    assert report["pruned_versions"] == 3
    assert report["purged_nodes"] == 1
    assert report["deleted_chunks"] == 4  # three pruned versions + the purged file
    assert next(v["version_id"] for v in versions) == meta["version_id"]
    assert len(versions) == 2
    assert head.content == b"version 4"
    assert [e["name"] for e in listing.json()["entries"]] == ["f.txt"]


@sql_only  # ages rows with SQL
async def test_retention_never_prunes_a_head(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await write(alice, "/old.txt", b"only version")
        async with auth.services.identity.db.write() as conn:
            await conn.execute("UPDATE versions SET created_at = created_at - 365 * 86400")
        report = (await alice.post("/retention/apply")).json()
        got = await alice.get("/files/download", params={"path": "/old.txt"})
    assert report["pruned_versions"] == 0
    assert got.content == b"only version"


# --- rate limits --------------------------------------------------------------------------------


async def test_tenant_rate_limit_under_load(tmp_path: Path, backend: dict[str, Any]) -> None:
    settings = Settings(data_dir=tmp_path / "rl", rate_limit_per_minute=30, **backend)
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            harness = AuthHarness(app, transport, client, app.state.services, settings)
            alice = await harness.login("alice")
            bob = await harness.login("bob")
            async with harness.client_for(alice.access_token) as a:
                replies = await asyncio.gather(
                    *(a.get("/files/list", params={"path": "/"}) for _ in range(60))
                )
            async with harness.client_for(bob.access_token) as b:
                other = await b.get("/files/list", params={"path": "/"})
    codes = [r.status_code for r in replies]
    assert codes.count(200) == 30  # the burst is the per-minute budget
    limited = [r for r in replies if r.status_code == 429]
    assert len(limited) == 30
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"] == "rate_limited"
    assert other.status_code == 200  # another tenant has its own bucket


async def test_auth_endpoints_are_limited_per_address(auth: AuthHarness) -> None:
    from meshfs_server.auth.ratelimit import RateLimiter

    auth.services.identity.limits.auth_addresses = RateLimiter(5, 60.0)
    codes = [(await auth.client.post("/auth/device/start", json={})).status_code for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3


async def test_user_code_guessing_is_limited(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        codes = [
            (await alice.post("/auth/device/activate", json={"user_code": "BCDF-GHJK"})).status_code
            for _ in range(12)
        ]
    assert codes[:10] == [404] * 10
    assert codes[10:] == [429, 429]
