"""The agent scenario through the real API with real identity, on both backends: an agent token
edits files under /proj, the owner lists what changed, diffs it and restores the snapshot; the
tree equals the snapshot and the history shows everything."""

from __future__ import annotations

import httpx
from conftest import AuthHarness


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> dict:
    reply = await client.put("/files/content", params={"path": path}, content=data)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


async def tree(client: httpx.AsyncClient, path: str) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    pending = [path]
    while pending:
        for entry in (await client.get("/files/list", params={"path": pending.pop()})).json()[
            "entries"
        ]:
            if entry["kind"] == "dir":
                out[entry["path"]] = None
                pending.append(entry["path"])
            else:
                got = await client.get("/files/download", params={"path": entry["path"]})
                out[entry["path"]] = got.content
    return out


async def test_agent_edits_owner_reviews_and_restores(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await write(alice, "/proj/plan.md", b"step 1\nstep 2\n")
        await write(alice, "/proj/data/table.csv", b"a,b\n1,2\n")
        await write(alice, "/proj/old.txt", b"old\n")
        before = await tree(alice, "/proj")
        snap = await alice.post("/snapshots", json={"path": "/proj", "name": "before-agent"})
        assert snap.status_code == 201, snap.text
        cursor = snap.json()["cursor"]
        made = await alice.post("/auth/agents", json={"name": "bot", "path_prefix": "/proj",
                                                      "access": "write"})  # fmt: skip
        assert made.status_code == 201, made.text
    async with auth.client_for(made.json()["token"]) as bot:
        await write(bot, "/proj/plan.md", b"step 1\nstep 2 (done)\nstep 3\n")
        await write(bot, "/proj/data/extra.csv", b"c\n3\n")
        await bot.delete("/files", params={"path": "/proj/old.txt"})
        await bot.post("/files/rename", json={"path": "/proj/data", "new_path": "/proj/tables"})
        # Its limits hold: nothing outside /proj, and no peeking at others' history.
        everywhere = {"path": "/", "since_cursor": cursor}
        assert (await bot.get("/files/changes", params=everywhere)).status_code == 403
    async with auth.client_for(owner.access_token) as alice:
        summary = (
            await alice.get("/files/changes", params={"path": "/proj", "since_cursor": cursor})
        ).json()
        seen = {(c["status"], c["path"], c["old_path"]) for c in summary["changes"]}
        assert seen == {
            ("modified", "/proj/plan.md", None),
            ("created", "/proj/tables/extra.csv", None),
            ("deleted", "/proj/old.txt", None),
            ("renamed", "/proj/tables", "/proj/data"),
        }
        for change in summary["changes"]:
            assert [w["agent_name"] for w in change["writers"]] == ["bot"]
        plan = next(c for c in summary["changes"] if c["path"] == "/proj/plan.md")
        assert (plan["added"], plan["removed"]) == (2, 1)
        query = {"path": "/proj/plan.md", "v1": plan["old_version_id"]}
        diff = (await alice.get("/files/diff", params=query)).json()
        assert "-step 2\n+step 2 (done)\n+step 3\n" in diff["unified"]

        restored = await alice.post("/snapshots/before-agent/restore")
        assert restored.status_code == 200, restored.text
        assert await tree(alice, "/proj") == before
        # The history shows everything: the agent's version and the restore, nothing lost.
        meta = (await alice.get("/files/meta", params={"path": "/proj/plan.md"})).json()
        versions = (await alice.get(f"/files/{meta['node_id']}/versions")).json()["versions"]
        assert [v["writer"].get("agent_name") for v in versions] == [None, "bot", None]
        assert versions[0]["restored_from"] == plan["old_version_id"]
        events = (await alice.get("/sync/pull", params={"cursor": cursor})).json()["events"]
        agent_steps = [e["type"] for e in events if e["writer"].get("agent_name") == "bot"]
        assert agent_steps == ["write", "write", "delete", "rename"]
        undo_cursor = restored.json()["undo"]["cursor"]
        assert {(e["type"], e["path"]) for e in events if e["seq"] > undo_cursor} >= {
            ("restore", "/proj/plan.md"),
            ("restore", "/proj/old.txt"),
            ("rename", "/proj/data"),
            ("delete", "/proj/tables/extra.csv"),  # deleted where it was, then the move back
        }
        audit = (await alice.get("/audit/recent", params={"limit": 100})).json()["entries"]
        assert any("/snapshots/" in a["action"] and a["action"].endswith("/restore")
                   for a in audit)  # fmt: skip
