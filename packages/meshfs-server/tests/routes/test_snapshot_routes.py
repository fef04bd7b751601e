"""Snapshots through the HTTP API on both backends: create, list, diff, restore, undo, scopes."""

from __future__ import annotations

import httpx
from conftest import Harness

from meshfs_common.ids import new_id
from meshfs_server.domain.actor import Actor


async def write(client: httpx.AsyncClient, path: str, data: bytes) -> dict:
    reply = await client.put("/files/content", params={"path": path}, content=data)
    assert reply.status_code in (200, 201), reply.text
    return reply.json()


async def tree(client: httpx.AsyncClient, path: str) -> dict[str, bytes | None]:
    """Every path below *path* with its content (None for a directory)."""
    out: dict[str, bytes | None] = {}
    pending = [path]
    while pending:
        listing = await client.get("/files/list", params={"path": pending.pop()})
        assert listing.status_code == 200, listing.text
        for entry in listing.json()["entries"]:
            if entry["kind"] == "dir":
                out[entry["path"]] = None
                pending.append(entry["path"])
            else:
                got = await client.get("/files/download", params={"path": entry["path"]})
                out[entry["path"]] = got.content
    return out


def client_as(harness: Harness, actor: Actor) -> httpx.AsyncClient:
    token = harness.tokens.add(actor)
    return httpx.AsyncClient(
        transport=harness.client._transport,
        base_url="http://meshfs.test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def seed(client: httpx.AsyncClient) -> None:
    await write(client, "/proj/readme.md", b"# project\n")
    await write(client, "/proj/src/main.py", b"print('hello')\n")
    await write(client, "/proj/src/util.py", b"def f():\n    return 1\n")
    await write(client, "/proj/docs/guide.md", b"guide\n")
    await write(client, "/proj/data.bin", b"\x00\x01\x02")


async def mess_up(client: httpx.AsyncClient) -> None:
    """Every kind of change: edit, create, delete a file and a directory, rename, move a
    directory, create a directory."""
    await write(client, "/proj/src/main.py", b"print('bye')\n")
    await write(client, "/proj/new.txt", b"new\n")
    await client.delete("/files", params={"path": "/proj/readme.md"})
    await client.delete("/files", params={"path": "/proj/docs", "recursive": "true"})
    await client.post("/files/rename", json={"path": "/proj/src/util.py",
                                             "new_path": "/proj/src/helpers.py"})  # fmt: skip
    await client.post("/files/rename", json={"path": "/proj/src", "new_path": "/proj/lib"})
    await write(client, "/proj/lib/extra/deep.txt", b"deep\n")
    await write(client, "/proj/readme.md", b"a different readme\n")  # a new file, same path


async def test_create_list_show_and_delete(client: httpx.AsyncClient) -> None:
    await seed(client)
    reply = await client.post("/snapshots", json={"path": "/proj", "name": "before-agent"})
    assert reply.status_code == 201, reply.text
    snap = reply.json()
    assert (snap["name"], snap["path"], snap["files"], snap["directories"]) == (
        "before-agent", "/proj", 5, 3,
    )  # fmt: skip
    assert snap["bytes"] == 10 + 15 + 22 + 6 + 3
    assert snap["created_by"]["device_name"] == "pytest"
    await client.post("/snapshots", json={"path": "/proj/src", "name": "src"})
    names = [s["name"] for s in (await client.get("/snapshots")).json()["snapshots"]]
    assert names == ["src", "before-agent"]  # newest first
    under = (await client.get("/snapshots", params={"path": "/proj/src"})).json()["snapshots"]
    assert [s["name"] for s in under] == ["src"]
    by_id = await client.get(f"/snapshots/{snap['snapshot_id']}")
    assert by_id.json()["name"] == "before-agent"
    assert (await client.get("/snapshots/before-agent")).json() == by_id.json()
    assert (await client.delete("/snapshots/src")).status_code == 200
    assert (await client.get("/snapshots/src")).status_code == 404


async def test_create_errors(client: httpx.AsyncClient) -> None:
    await seed(client)
    await client.post("/snapshots", json={"path": "/proj", "name": "taken"})
    cases = [
        ({"path": "/proj", "name": "taken"}, 409, "already_exists"),
        ({"path": "/missing", "name": "x"}, 404, "not_found"),
        ({"path": "/proj", "name": ""}, 400, "bad_request"),
        ({"path": "/proj", "name": "a\nb"}, 400, "bad_request"),
        ({"path": "/proj", "name": new_id()}, 400, "bad_request"),
        ({"path": "/a/../b", "name": "x"}, 400, "invalid_path"),
        ({"path": "/proj"}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        reply = await client.post("/snapshots", json=body)
        assert (reply.status_code, reply.json()["error"]) == (status, code), body
    for method, url in (
        ("GET", "/snapshots/nope"),
        ("GET", "/snapshots/nope/diff"),
        ("POST", "/snapshots/nope/restore"),
        ("DELETE", "/snapshots/nope"),
    ):
        reply = await client.request(method, url)
        assert (reply.status_code, reply.json()["error"]) == (404, "not_found"), url


async def test_diff_restore_and_undo(client: httpx.AsyncClient) -> None:
    await seed(client)
    before = await tree(client, "/proj")
    await client.post("/snapshots", json={"path": "/proj", "name": "s1"})
    assert (await client.get("/snapshots/s1/diff")).json()["changes"] == []
    await mess_up(client)
    after = await tree(client, "/proj")
    diff = (await client.get("/snapshots/s1/diff")).json()
    status = {(c["status"], c["path"], c.get("old_path")) for c in diff["changes"]}
    assert status == {
        ("renamed", "/proj/lib/main.py", "/proj/src/main.py"),  # moved with its directory
        ("renamed", "/proj/lib", "/proj/src"),
        ("renamed", "/proj/lib/helpers.py", "/proj/src/util.py"),
        ("deleted", "/proj/readme.md", None),
        ("created", "/proj/readme.md", None),
        ("deleted", "/proj/docs", None),
        ("deleted", "/proj/docs/guide.md", None),
        ("created", "/proj/new.txt", None),
        ("created", "/proj/lib/extra", None),
        ("created", "/proj/lib/extra/deep.txt", None),
    }  # fmt: skip
    main = next(c for c in diff["changes"] if c["path"] == "/proj/lib/main.py")
    assert main["content_changed"]
    assert (main["added"], main["removed"]) == (1, 1)
    assert main["writers"][0]["device_name"] == "pytest"

    meta = (await client.get("/files/meta", params={"path": "/proj/lib/main.py"})).json()
    versions_before = len((await client.get(f"/files/{meta['node_id']}/versions")).json()
                          ["versions"])  # fmt: skip
    restored = await client.post("/snapshots/s1/restore")
    assert restored.status_code == 200, restored.text
    result = restored.json()
    assert result["undo"]["name"].startswith("before-restore-s1-")
    assert await tree(client, "/proj") == before
    assert (await client.get("/snapshots/s1/diff")).json()["changes"] == []
    # History kept: the restore wrote a new version, and the old ones are all there.
    versions = (await client.get(f"/files/{meta['node_id']}/versions")).json()["versions"]
    assert len(versions) == versions_before + 1
    assert versions[0]["restored_from"] is not None
    # The feed tells every device what happened, as ordinary events.
    pulled = (await client.get("/sync/pull", params={"cursor": result["undo"]["cursor"]})).json()
    assert {e["type"] for e in pulled["events"]} <= {"delete", "rename", "restore", "mkdir"}
    assert pulled["events"]

    # The restore is undoable: restoring its undo snapshot brings the messed-up tree back.
    undone = await client.post(f"/snapshots/{result['undo']['snapshot_id']}/restore")
    assert undone.status_code == 200, undone.text
    assert await tree(client, "/proj") == after


async def test_restore_when_the_root_was_deleted_or_replaced(client: httpx.AsyncClient) -> None:
    await seed(client)
    before = await tree(client, "/proj")
    await client.post("/snapshots", json={"path": "/proj", "name": "s"})
    await client.delete("/files", params={"path": "/proj", "recursive": "true"})
    assert (await client.post("/snapshots/s/restore")).status_code == 200
    assert await tree(client, "/proj") == before
    await client.delete("/files", params={"path": "/proj", "recursive": "true"})
    await write(client, "/proj", b"now a file")
    assert (await client.post("/snapshots/s/restore")).status_code == 200
    assert await tree(client, "/proj") == before


async def test_restore_swapped_names(client: httpx.AsyncClient) -> None:
    await write(client, "/p/a", b"A")
    await write(client, "/p/b", b"B")
    await client.post("/snapshots", json={"path": "/p", "name": "s"})
    await client.post("/files/rename", json={"path": "/p/a", "new_path": "/p/tmp"})
    await client.post("/files/rename", json={"path": "/p/b", "new_path": "/p/a"})
    await client.post("/files/rename", json={"path": "/p/tmp", "new_path": "/p/b"})
    assert (await client.post("/snapshots/s/restore")).status_code == 200
    assert await tree(client, "/p") == {"/p/a": b"A", "/p/b": b"B"}


async def test_restore_respects_token_scopes(harness: Harness) -> None:
    await seed(harness.client)
    await harness.client.post("/snapshots", json={"path": "/proj", "name": "s"})
    await harness.client.post("/snapshots", json={"path": "/proj/src", "name": "src"})
    reader = Actor(tenant_id=harness.tenant_id, user_id=new_id(), can_write=False)
    outsider = Actor(tenant_id=harness.tenant_id, user_id=new_id(), agent_name="bot",
                     path_prefix="/proj/src")  # fmt: skip
    async with client_as(harness, reader) as ro:
        assert (await ro.get("/snapshots/s/diff")).status_code == 200
        for method, url, body in (
            ("POST", "/snapshots/s/restore", None),
            ("DELETE", "/snapshots/s", None),
            ("POST", "/snapshots", {"path": "/proj", "name": "mine"}),
        ):
            reply = await ro.request(method, url, json=body)
            assert (reply.status_code, reply.json()["error"]) == (403, "read_only"), url
    async with client_as(harness, outsider) as bot:
        # An agent sees and uses only snapshots inside its prefix.
        listed = (await bot.get("/snapshots")).json()["snapshots"]
        assert [s["name"] for s in listed] == ["src"]
        for method, url in (("GET", "/snapshots/s"), ("GET", "/snapshots/s/diff"),
                            ("POST", "/snapshots/s/restore")):  # fmt: skip
            reply = await bot.request(method, url)
            assert (reply.status_code, reply.json()["error"]) == (403, "forbidden"), url
        assert (await bot.get("/snapshots", params={"path": "/proj"})).status_code == 403
        assert (await bot.post("/snapshots/src/restore")).status_code == 200


async def test_restore_cannot_pull_a_node_back_from_outside_the_agents_prefix(
    harness: Harness,
) -> None:
    await write(harness.client, "/proj/src/keep.py", b"k\n")
    bot = Actor(tenant_id=harness.tenant_id, user_id=new_id(), agent_name="bot",
                path_prefix="/proj/src")  # fmt: skip
    async with client_as(harness, bot) as agent:
        assert (await agent.post("/snapshots", json={"path": "/proj/src",
                                                     "name": "a"})).status_code == 201  # fmt: skip
    await harness.client.post("/files/rename", json={"path": "/proj/src/keep.py",
                                                     "new_path": "/outside.py"})  # fmt: skip
    async with client_as(harness, bot) as agent:
        reply = await agent.post("/snapshots/a/restore")
        assert (reply.status_code, reply.json()["error"]) == (403, "forbidden")
    # Nothing changed: the refused restore was all or nothing.
    assert (await harness.client.get("/files/meta", params={"path": "/outside.py"})).is_success
    assert [s["name"] for s in (await harness.client.get("/snapshots")).json()["snapshots"]] == [
        "a"
    ]


async def test_undo_snapshot_name_never_reuses_another_snapshot(client: httpx.AsyncClient) -> None:
    await write(client, "/p/f.txt", b"1")
    await write(client, "/q/g.txt", b"2")
    await client.post("/snapshots", json={"path": "/p", "name": "s"})
    await write(client, "/p/f.txt", b"changed")
    cursor = (await client.get("/sync/pull", params={"cursor": 2**62})).json()["cursor"]
    # A snapshot of another folder that happens to have the name the undo snapshot would get.
    taken = {"path": "/q", "name": f"before-restore-s-{cursor}"}
    assert (await client.post("/snapshots", json=taken)).status_code == 201
    undo = (await client.post("/snapshots/s/restore")).json()["undo"]
    assert undo["name"] == f"before-restore-s-{cursor}-2"
    assert undo["path"] == "/p"
    assert (await client.post(f"/snapshots/{undo['name']}/restore")).status_code == 200
    assert (await client.get("/files/download", params={"path": "/p/f.txt"})).content == b"changed"


async def test_deep_trees(client: httpx.AsyncClient) -> None:
    deep = "/deep" + "/d" * 1200
    await write(client, f"{deep}/leaf.txt", b"bottom")
    await client.post("/snapshots", json={"path": "/deep", "name": "deep"})
    await client.delete("/files", params={"path": "/deep/d", "recursive": "true"})
    diff = (await client.get("/snapshots/deep/diff")).json()
    assert len(diff["changes"]) == 1201
    assert (await client.post("/snapshots/deep/restore")).status_code == 200
    got = await client.get("/files/download", params={"path": f"{deep}/leaf.txt"})
    assert got.content == b"bottom"


async def test_snapshot_of_the_whole_tenant(harness: Harness) -> None:
    fresh = Actor(tenant_id=new_id(), user_id=new_id(), device_name="fresh")
    async with client_as(harness, fresh) as client:
        # A tenant that never wrote anything: an empty snapshot, and a feed at 0.
        assert (await client.post("/snapshots", json={"path": "/", "name": "empty"})).is_success
        nothing = await client.get("/files/changes", params={"since_cursor": 0})
        assert nothing.json()["changes"] == []
        await seed(client)
        await client.post("/snapshots", json={"path": "/", "name": "all"})
        before = await tree(client, "/")
        await mess_up(client)
        assert (await client.post("/snapshots/all/restore")).status_code == 200
        assert await tree(client, "/") == before
        assert (await client.post("/snapshots/empty/restore")).status_code == 200
        assert await tree(client, "/") == {}


async def test_restored_content_moves_the_files_times_and_keeps_its_mode(
    client: httpx.AsyncClient,
) -> None:
    await write(client, "/t/run.sh", b"#!/bin/sh\necho one\n")
    changed = await client.post("/files/attributes", json={"path": "/t/run.sh", "mode": 0o755})
    assert changed.status_code == 200, changed.text
    await client.post("/snapshots", json={"path": "/t", "name": "times"})
    await write(client, "/t/run.sh", b"#!/bin/sh\necho two\n")
    before = (await client.get("/files/meta", params={"path": "/t/run.sh"})).json()
    restored = await client.post("/snapshots/times/restore")
    assert restored.status_code == 200, restored.text
    after = (await client.get("/files/meta", params={"path": "/t/run.sh"})).json()
    got = await client.get("/files/download", params={"path": "/t/run.sh"})
    assert got.content == b"#!/bin/sh\necho one\n"
    # New content: mtime and ctime move (make and rsync see the file changed); mode kept.
    assert after["mtime_ns"] > before["mtime_ns"]
    assert after["ctime_ns"] > before["ctime_ns"]
    assert after["modified_at"] != before["modified_at"]
    assert after["mode"] == 0o755
    history = (await client.get(f"/files/{after['node_id']}/versions")).json()
    assert history["versions"][0]["mode"] == 0o755
    # The restore event carries the file's attributes as a write's does.
    events = (await client.get("/sync/pull", params={"cursor": 0, "limit": 1000})).json()
    restore = [e for e in events["events"] if e["type"] == "restore"][-1]
    assert restore["attributes"] == {"mode": 0o755, "mtime_ns": after["mtime_ns"]}
