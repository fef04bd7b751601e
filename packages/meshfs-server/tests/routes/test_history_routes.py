"""Diffs between versions and "what changed" summaries through the HTTP API, on both backends."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import AuthHarness, Harness
from meshfs_server_backends import sql_only

from meshfs_common.ids import new_id
from meshfs_server.domain import history
from meshfs_server.domain.actor import Actor


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> dict:
    reply = await client.put("/files/content", params={"path": path}, content=data)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


async def cursor_now(client: httpx.AsyncClient) -> int:
    return (await client.get("/sync/pull", params={"cursor": 2**62})).json()["cursor"]


def client_as(harness: Harness, actor: Actor) -> httpx.AsyncClient:
    token = harness.tokens.add(actor)
    return httpx.AsyncClient(
        transport=harness.client._transport,
        base_url="http://meshfs.test",
        headers={"Authorization": f"Bearer {token}"},
    )


# --- diffs --------------------------------------------------------------------------------------


async def test_diff_head_against_previous_version(client: httpx.AsyncClient) -> None:
    first = await write(client, "/notes.md", b"one\ntwo\nthree\n")
    second = await write(client, "/notes.md", b"one\n2\nthree\nfour\n")
    reply = await client.get("/files/diff", params={"path": "/notes.md"})
    assert reply.status_code == 200, reply.text
    diff = reply.json()
    assert diff["old"]["version_id"] == first["version"]["version_id"]
    assert diff["new"]["version_id"] == second["version"]["version_id"]
    assert diff["unified"].splitlines() == [
        f"--- a/notes.md@{first['version']['version_id']}",
        f"+++ b/notes.md@{second['version']['version_id']}",
        "@@ -1,3 +1,4 @@",
        " one",
        "-two",
        "+2",
        " three",
        "+four",
    ]
    assert (diff["added"], diff["removed"]) == (2, 1)
    assert diff["identical"] is False
    assert diff["no_text"] is None
    assert diff["new"]["media_type"] == "text/markdown"
    assert diff["new"]["writer"]["device_name"] == "pytest"


async def test_diff_named_versions_and_a_first_version(client: httpx.AsyncClient) -> None:
    v1 = (await write(client, "/f.txt", b"a\n"))["version"]["version_id"]
    v2 = (await write(client, "/f.txt", b"a\nb\n"))["version"]["version_id"]
    await write(client, "/f.txt", b"a\nb\nc\n")
    # V1 alone: V1 against the head.
    against_head = (await client.get("/files/diff", params={"path": "/f.txt", "v1": v1})).json()
    assert (against_head["added"], against_head["removed"]) == (2, 0)
    # V1 and V2.
    pair = (await client.get("/files/diff", params={"path": "/f.txt", "v1": v1, "v2": v2})).json()
    assert pair["unified"].endswith(" a\n+b\n")
    # V2 alone: the version before it against it; the first version against nothing.
    before_v2 = (await client.get("/files/diff", params={"path": "/f.txt", "v2": v2})).json()
    assert before_v2["old"]["version_id"] == v1
    first = (await client.get("/files/diff", params={"path": "/f.txt", "v2": v1})).json()
    assert first["old"]["version_id"] is None
    assert first["unified"].startswith("--- /dev/null\n")
    assert (first["added"], first["removed"]) == (1, 0)
    # The same version on both sides is identical, with an empty diff.
    same = (await client.get("/files/diff", params={"path": "/f.txt", "v1": v2, "v2": v2})).json()
    assert same["identical"] is True
    assert same["unified"] == ""


async def test_diff_of_binary_content_is_a_summary(client: httpx.AsyncClient) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    await write(client, "/img.bin", png)
    await write(client, "/img.bin", png + b"\x00more")
    diff = (await client.get("/files/diff", params={"path": "/img.bin"})).json()
    assert diff["unified"] is None
    assert diff["no_text"] == "binary"
    assert diff["old"]["size"] == len(png)
    assert diff["new"]["size"] == len(png) + 5
    assert diff["old"]["media_type"] == "image/png"
    assert diff["old"]["content_hash"] != diff["new"]["content_hash"]
    assert (diff["added"], diff["removed"]) == (0, 0)


async def test_diff_of_large_text_is_a_summary(client: httpx.AsyncClient) -> None:
    big = b"line\n" * (1024 * 1024 // 5 + 1)
    await write(client, "/big.txt", b"small\n")
    await write(client, "/big.txt", big)
    diff = (await client.get("/files/diff", params={"path": "/big.txt"})).json()
    assert diff["no_text"] == "too_large"
    assert diff["unified"] is None
    assert diff["new"]["size"] == len(big)
    assert diff["text_limit"] == 1024 * 1024
    assert diff["new"]["media_type"] == "text/plain"


async def test_diff_errors(client: httpx.AsyncClient) -> None:
    await write(client, "/d/f.txt", b"x\n")
    other = (await write(client, "/g.txt", b"y\n"))["version"]["version_id"]
    cases = [
        ({"path": "/d"}, 409, "is_a_directory"),
        ({"path": "/missing"}, 404, "not_found"),
        ({"path": "/d/f.txt", "v1": "nope"}, 404, "not_found"),
        ({"path": "/d/f.txt", "v1": other}, 404, "not_found"),  # a version of another file
        ({}, 400, "bad_request"),
        ({"path": "/a/../b"}, 400, "invalid_path"),
    ]
    for params, status, code in cases:
        reply = await client.get("/files/diff", params=params)
        assert (reply.status_code, reply.json()["error"]) == (status, code), params


async def test_diff_of_a_deleted_file_by_node_id(client: httpx.AsyncClient) -> None:
    await write(client, "/gone.txt", b"1\n")
    node = (await write(client, "/gone.txt", b"2\n"))["entry"]["node_id"]
    await client.delete("/files", params={"path": "/gone.txt"})
    diff = (await client.get("/files/diff", params={"node_id": node})).json()
    assert diff["path"] == "/gone.txt"
    assert (diff["added"], diff["removed"]) == (1, 1)


async def test_agent_diffs_only_inside_its_prefix(harness: Harness) -> None:
    await write(harness.client, "/agents/bot/a.txt", b"a\n")
    await write(harness.client, "/private.txt", b"p\n")
    bot = Actor(tenant_id=harness.tenant_id, user_id=new_id(), agent_name="bot",
                path_prefix="/agents/bot")  # fmt: skip
    async with client_as(harness, bot) as agent:
        assert (await agent.get("/files/diff", params={"path": "/agents/bot/a.txt"})).is_success
        refused = await agent.get("/files/diff", params={"path": "/private.txt"})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


# --- what changed -------------------------------------------------------------------------------


async def test_changes_grouped_per_file(harness: Harness) -> None:
    client = harness.client
    await write(client, "/proj/keep.txt", b"same\n")
    await write(client, "/proj/edit.txt", b"one\ntwo\n")
    await write(client, "/proj/old-name.txt", b"moved\n")
    await write(client, "/proj/drop.txt", b"bye\n")
    await write(client, "/elsewhere.txt", b"not under /proj\n")
    start = await cursor_now(client)
    bot = Actor(tenant_id=harness.tenant_id, user_id=new_id(), agent_name="bot")
    async with client_as(harness, bot) as agent:
        await write(agent, "/proj/edit.txt", b"one\n2\nthree\n")
        await write(agent, "/proj/new.txt", b"fresh\n")
        await agent.post("/files/rename", json={"path": "/proj/old-name.txt",
                                                "new_path": "/proj/new-name.txt"})  # fmt: skip
        await write(agent, "/proj/brief.txt", b"temporary\n")
        await agent.delete("/files", params={"path": "/proj/brief.txt"})
    await client.delete("/files", params={"path": "/proj/drop.txt"})
    await write(client, "/elsewhere.txt", b"changed\n")
    reply = await client.get("/files/changes", params={"path": "/proj", "since_cursor": start})
    assert reply.status_code == 200, reply.text
    summary = reply.json()
    assert summary["from_cursor"] == start
    assert summary["to_cursor"] == await cursor_now(client)
    by_path = {c["path"]: c for c in summary["changes"]}
    assert {p: c["status"] for p, c in by_path.items()} == {
        "/proj/drop.txt": "deleted",
        "/proj/edit.txt": "modified",
        "/proj/new-name.txt": "renamed",
        "/proj/new.txt": "created",
    }
    edit = by_path["/proj/edit.txt"]
    assert (edit["added"], edit["removed"]) == (2, 1)
    assert [w["agent_name"] for w in edit["writers"]] == ["bot"]
    assert edit["first_seq"] > start
    assert edit["content_changed"] is True
    renamed = by_path["/proj/new-name.txt"]
    assert renamed["old_path"] == "/proj/old-name.txt"
    assert renamed["content_changed"] is False
    assert by_path["/proj/drop.txt"]["writers"][0]["device_name"] == "pytest"
    assert by_path["/proj/new.txt"]["size"] == 6


async def test_changes_since_a_time(client: httpx.AsyncClient) -> None:
    await write(client, "/t/before.txt", b"1\n")
    since = time.time()
    await write(client, "/t/after.txt", b"2\n")
    for value in (str(since), time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since)) + "Z"):
        reply = await client.get("/files/changes", params={"path": "/t", "since_time": value})
        paths = [c["path"] for c in reply.json()["changes"]]
        assert "/t/after.txt" in paths, value
    exact = await client.get("/files/changes", params={"path": "/t", "since_time": str(since)})
    assert [c["path"] for c in exact.json()["changes"]] == ["/t/after.txt"]


async def test_changes_bad_requests(client: httpx.AsyncClient) -> None:
    for params in (
        {},
        {"since_cursor": 0, "since_time": 1},
        {"since_cursor": 10**9},
        {"since_cursor": "x"},
        {"since_time": "yesterday"},
    ):
        reply = await client.get("/files/changes", params=params)
        assert (reply.status_code, reply.json()["error"]) == (400, "bad_request"), params


async def test_agent_sees_changes_only_inside_its_prefix(harness: Harness) -> None:
    await write(harness.client, "/secret/plan.txt", b"s\n")
    await harness.client.post("/files/mkdir", json={"path": "/agents/bot"})
    start = await cursor_now(harness.client)
    move = {"path": "/secret/plan.txt", "new_path": "/agents/bot/plan.txt"}
    await harness.client.post("/files/rename", json=move)
    bot = Actor(tenant_id=harness.tenant_id, user_id=new_id(), agent_name="bot",
                path_prefix="/agents/bot", can_write=False)  # fmt: skip
    async with client_as(harness, bot) as agent:
        refused = await agent.get("/files/changes", params={"path": "/", "since_cursor": start})
        assert refused.status_code == 403
        mine = await agent.get("/files/changes", params={"path": "/agents/bot",
                                                         "since_cursor": start})  # fmt: skip
        # Without a path: everything the token may see.
        default = await agent.get("/files/changes", params={"since_cursor": start})
        assert default.json()["path"] == "/agents/bot"
        assert default.json()["changes"] == mine.json()["changes"]
    [change] = mine.json()["changes"]
    # Moved in from outside the prefix: the agent learns it appeared, not where it came from.
    assert change["status"] == "created"
    assert change["old_path"] is None
    owner = await harness.client.get("/files/changes", params={"path": "/agents",
                                                               "since_cursor": start})  # fmt: skip
    [seen] = owner.json()["changes"]
    assert (seen["status"], seen["old_path"]) == ("renamed", "/secret/plan.txt")


async def test_a_nul_character_is_a_client_error(client: httpx.AsyncClient) -> None:
    # No id, path or name contains NUL; Postgres text cannot even hold one.
    for url, params in (
        ("/files/diff", {"node_id": "\x00"}),
        ("/files/diff", {"path": "/f", "v1": "\x00"}),
        ("/snapshots/%00", {}),
        ("/snapshots/a%00/diff", {}),
        ("/files/meta", {"node_id": "a\x00b"}),
    ):
        reply = await client.get(url, params=params)
        assert reply.json()["error"] in ("bad_request", "not_found"), (url, params)


async def test_content_written_back_is_no_change(client: httpx.AsyncClient) -> None:
    await write(client, "/back.txt", b"original\n")
    start = await cursor_now(client)
    await write(client, "/back.txt", b"edited\n")
    await write(client, "/back.txt", b"original\n")
    summary = (await client.get("/files/changes", params={"since_cursor": start})).json()
    assert summary["changes"] == []


async def test_a_long_range_comes_in_parts(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "MAX_SUMMARY_EVENTS", 5)
    start = await cursor_now(client)
    for i in range(8):
        await write(client, f"/long/f{i}.txt", b"x")  # 9 events with the mkdir of /long
    first = (await client.get("/files/changes", params={"since_cursor": start})).json()
    assert first["has_more"] is True
    assert first["to_cursor"] == start + 5
    rest = (await client.get("/files/changes", params={"since_cursor": first["to_cursor"]})).json()
    assert rest["has_more"] is False
    assert rest["to_cursor"] == start + 9
    paths = {c["path"] for c in first["changes"] + rest["changes"]}
    assert paths == {"/long", *(f"/long/f{i}.txt" for i in range(8))}


@sql_only  # ages rows with SQL
async def test_a_trimmed_history_is_said_so(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await write(alice, "/old.txt", b"old")
        async with auth.services.identity.db.write() as conn:
            await conn.execute("UPDATE events SET at = at - 400 * 86400")
        await write(alice, "/new.txt", b"new")
        report = (await alice.post("/retention/apply")).json()
        assert report["pruned_events"] >= 1
        summary = (await alice.get("/files/changes", params={"since_cursor": 0})).json()
        assert summary["history_trimmed"] is True
        assert [c["path"] for c in summary["changes"]] == ["/new.txt"]
        by_time = (await alice.get("/files/changes", params={"since_time": 0})).json()
        assert by_time["history_trimmed"] is True
