"""A token limited to a path prefix sees only its prefix: the change feed (pull, SSE, WebSocket)
through the scope, the agent's own audit rows and session, upload answers that never reveal
content stored outside, and no tenant-wide usage numbers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness, Harness, LiveServer
from hypothesis import given
from hypothesis import strategies as st
from meshfs_server_backends import STARTUP_SECONDS

from meshfs_common import paths
from meshfs_common.hashing import CHUNK_SIZE, chunk_hash, content_hash_of
from meshfs_common.ids import new_id
from meshfs_common.models import ChangeEvent
from meshfs_server.app import create_app
from meshfs_server.domain import feed as feed_module
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.scope import REPLACED, WHOLE_TENANT, Scope
from meshfs_server.settings import Settings

PREFIX = "/p/x"

# --- the rules, on events as the store records them --------------------------------------------


def event(type: str, path: str, **fields: Any) -> ChangeEvent:
    kind = fields.pop("kind", "dir" if type == "mkdir" else "file")
    return ChangeEvent(
        seq=fields.pop("seq", 7), type=type, node_id=fields.pop("node_id", "N"), kind=kind,
        path=path, at=datetime.now(UTC), **fields,
    )  # fmt: skip


def test_scope_view_rules() -> None:
    scope = Scope(PREFIX)
    inside = event("write", "/p/x/a", version_id="V", size=1, content_hash="H")
    assert scope.view(inside) == inside
    assert scope.view(event("write", "/p/xy/a")) is None  # a sibling sharing the name's start
    assert scope.view(event("mkdir", "/p")) is None  # making an ancestor changes nothing here
    assert scope.view(event("delete", "/other", kind="dir")) is None
    assert scope.view(event("restore", "/elsewhere/f")) is None
    # Into the prefix from outside: a creation, without the outside path or the node it replaced.
    came = scope.view(
        event("rename", "/p/x/in", old_path="/secret/s", version_id="V", size=3,
              content_hash="H", node_id="T", replaced_node_id="M")
    )  # fmt: skip
    assert isinstance(came, ChangeEvent)
    assert (came.type, came.path, came.old_path, came.node_id) == ("write", "/p/x/in", None, "T")
    assert (came.version_id, came.size, came.content_hash, came.replaced_node_id) == (
        "V", 3, "H", None,
    )  # fmt: skip
    folder = scope.view(event("rename", "/p/x/d", old_path="/secret/d", kind="dir"))
    assert isinstance(folder, ChangeEvent)
    assert (folder.type, folder.kind, folder.path, folder.old_path) == (
        "mkdir",
        "dir",
        "/p/x/d",
        None,
    )
    # Out of the prefix: a delete of the old path, naming the node that left.
    left = scope.view(event("rename", "/out", old_path="/p/x/a", node_id="A", version_id="V"))
    assert isinstance(left, ChangeEvent)
    assert (left.type, left.path, left.old_path, left.node_id, left.version_id) == (
        "delete", "/p/x/a", None, "A", "V",
    )  # fmt: skip
    over = scope.view(
        event("rename", "/out", old_path="/p/x/a", node_id="OUTSIDE", replaced_node_id="A",
              version_id="NEW")
    )  # fmt: skip
    assert isinstance(over, ChangeEvent)
    assert (over.type, over.path, over.node_id, over.version_id) == ("delete", "/p/x/a", "A", None)
    # Within the prefix, or wholly outside it.
    moved = event("rename", "/p/x/b", old_path="/p/x/a")
    assert scope.view(moved) == moved
    assert scope.view(event("rename", "/q/b", old_path="/q/a")) is None
    # The prefix itself deleted is an event in it; an ancestor deleted or moved replaces it.
    gone = event("delete", "/p/x", kind="dir")
    assert scope.view(gone) == gone
    assert scope.view(event("delete", "/p", kind="dir")) is REPLACED
    assert scope.view(event("rename", "/q", old_path="/p", kind="dir")) is REPLACED
    assert scope.view(event("rename", "/p", old_path="/q", kind="dir")) is REPLACED
    # The whole tenant sees every event as it is.
    outside = event("rename", "/out", old_path="/secret")
    assert WHOLE_TENANT.view(outside) == outside


def test_scope_view_of_an_exchange() -> None:
    scope = Scope(PREFIX)
    # Both sides inside: shown as they are.
    both = event("rename", "/p/x/b", old_path="/p/x/a", node_id="A", exchanged_with="B")
    assert scope.view(both) == both
    # One side inside: one creation there that replaces the node the scope knew, however the
    # two events are ordered; the side moving out is not shown.
    came = scope.view(
        event("rename", "/p/x/a", old_path="/secret/s", node_id="S", exchanged_with="A",
              version_id="V", size=1, content_hash="H")
    )  # fmt: skip
    assert isinstance(came, ChangeEvent)
    assert (came.type, came.path, came.node_id, came.replaced_node_id, came.old_path) == (
        "write", "/p/x/a", "S", "A", None,
    )  # fmt: skip
    assert came.exchanged_with is None
    left = event("rename", "/secret/s", old_path="/p/x/a", node_id="A", exchanged_with="S")
    assert scope.view(left) is None
    folder = scope.view(
        event("rename", "/p/x/d", old_path="/secret/d", kind="dir", node_id="D",
              exchanged_with="A")
    )  # fmt: skip
    assert isinstance(folder, ChangeEvent)
    assert (folder.type, folder.replaced_node_id) == ("mkdir", "A")


tree_paths = st.lists(st.sampled_from("abc"), min_size=0, max_size=3).map(
    lambda names: paths.join(names)
)


@given(
    prefix=tree_paths,
    kind=st.sampled_from(["mkdir", "write", "rename", "delete", "restore"]),
    path=tree_paths.filter(lambda p: p != "/"),
    old_path=tree_paths.filter(lambda p: p != "/"),
    over=st.booleans(),
)
def test_scope_view_never_shows_anything_outside(
    prefix: str, kind: str, path: str, old_path: str, over: bool
) -> None:
    scope = Scope(prefix)
    rename = kind == "rename"
    original = event(
        kind, path, node_id="NODE", version_id="VERSION",
        old_path=old_path if rename else None,
        replaced_node_id="MOVED" if rename and over else None,
    )  # fmt: skip
    seen = scope.view(original)
    if isinstance(seen, ChangeEvent):
        assert scope.contains(seen.path)
        assert seen.old_path is None or scope.contains(seen.old_path)
        if seen.replaced_node_id is not None or seen.node_id == "MOVED":
            assert scope.contains(old_path)  # only a node that was inside is named
        if seen.type == "delete" and rename:
            assert seen.path == old_path
            assert scope.contains(old_path)
    elif seen is None:  # hidden: nothing inside changed
        assert not scope.contains(path)
        assert not (rename and scope.contains(old_path))
    else:  # the prefix itself was replaced by a change above it
        touched = [path, old_path] if rename else [path]
        assert any(t != prefix and paths.is_within(prefix, t) for t in touched)
    if not rename and scope.contains(path):
        assert seen == original
    assert WHOLE_TENANT.view(original) == original


# --- the feed through a prefix ------------------------------------------------------------------


def agent_client(harness: Harness, prefix: str = PREFIX, *, can_write: bool = True) -> Any:
    actor = Actor(
        tenant_id=harness.tenant_id, user_id=new_id(), session_id=new_id(), agent_name="bot",
        path_prefix=prefix, can_write=can_write,
    )  # fmt: skip
    token = harness.tokens.add(actor)
    return token, httpx.AsyncClient(
        transport=harness.client._transport,
        base_url="http://meshfs.test",
        headers={"Authorization": f"Bearer {token}"},
    )


async def put(client: httpx.AsyncClient, path: str, data: bytes) -> dict[str, Any]:
    reply = await client.put("/files/content", params={"path": path}, content=data)
    assert reply.status_code in (200, 201), reply.text
    entry: dict[str, Any] = reply.json()["entry"]
    return entry


async def move(client: httpx.AsyncClient, src: str, dst: str, **extra: Any) -> None:
    reply = await client.post("/files/rename", json={"path": src, "new_path": dst, **extra})
    assert reply.status_code == 200, reply.text


async def mixed_history(owner: httpx.AsyncClient) -> set[str]:
    """Changes in and out of the prefix and across its boundary; what must never be shown."""
    secrets = {"/secret", "/other", "/out"}
    await owner.post("/files/mkdir", json={"path": PREFIX})
    await put(owner, "/p/x/a.txt", b"inside")
    hidden = await put(owner, "/secret/stays.txt", b"never shown")
    secrets |= {hidden["node_id"], hidden["version_id"], hidden["content_hash"]}
    await put(owner, "/secret/s.txt", b"outside bytes")
    await move(owner, "/secret/s.txt", "/p/x/in.txt")  # in: a write
    await move(owner, "/p/x/a.txt", "/out.txt")  # out: a delete
    await put(owner, "/secret/d/f.txt", b"in a folder")
    await move(owner, "/secret/d", "/p/x/d")  # a folder in: a mkdir
    await put(owner, "/p/x/t.txt", b"target")
    other = await put(owner, "/other/u.txt", b"moved over the target")
    secrets.add(other["node_id"])
    await move(owner, "/other/u.txt", "/p/x/t.txt", overwrite=True)  # in, over a file: a write
    await owner.delete("/files", params={"path": "/secret", "recursive": "1"})
    return secrets


EXPECTED = [
    ("mkdir", "/p"),
    ("mkdir", "/p/x"),
    ("write", "/p/x/a.txt"),
    ("write", "/p/x/in.txt"),
    ("delete", "/p/x/a.txt"),
    ("mkdir", "/p/x/d"),
    ("write", "/p/x/t.txt"),
    ("write", "/p/x/t.txt"),
]


def shown(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["path"]) for e in events]


def assert_no_secret(payload: Any, secrets: set[str]) -> None:
    text = json.dumps(payload)
    for secret in secrets:
        assert secret not in text, (secret, text)


async def test_pull_shows_only_the_prefix_and_pages_through_gaps(harness: Harness) -> None:
    owner = harness.client
    secrets = await mixed_history(owner)
    _, agent = agent_client(harness, "/p/x")
    head = (await owner.get("/sync/pull", params={"cursor": 0})).json()["cursor"]
    async with agent:
        events: list[dict[str, Any]] = []
        cursor = 0
        while True:
            page = (await agent.get("/sync/pull", params={"cursor": cursor, "limit": 2})).json()
            assert not page["reset"]
            assert len(page["events"]) <= 2
            assert page["cursor"] >= cursor
            assert_no_secret(page, secrets)
            events += page["events"]
            cursor = page["cursor"]
            if not page["has_more"]:
                break
    # The mkdir of /p comes from "mkdir -p": visible only where it is within the prefix.
    assert shown(events) == EXPECTED[1:]
    assert cursor == head  # a scoped client catches up to the tenant's cursor
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    moved_in = next(e for e in events if e["path"] == "/p/x/in.txt")
    assert moved_in["old_path"] is None
    assert moved_in["content_hash"] == content_hash_of([chunk_hash(b"outside bytes")])


async def test_pull_never_stalls_on_long_stretches_outside(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = harness.client
    monkeypatch.setattr(feed_module, "SCAN_LIMIT", 4)  # examine only 4 events per pull
    for i in range(10):
        await put(owner, f"/elsewhere/{i}", b"x")
    await put(owner, "/p/x/late.txt", b"y")
    _, agent = agent_client(harness)
    async with agent:
        cursor, pages, events = 0, 0, []
        while True:
            page = (await agent.get("/sync/pull", params={"cursor": cursor})).json()
            pages += 1
            events += page["events"]
            assert page["cursor"] > cursor or not page["has_more"]
            cursor = page["cursor"]
            if not page["has_more"]:
                break
    assert [e["path"] for e in events] == ["/p/x", "/p/x/late.txt"]
    assert pages >= 3  # empty pages with has_more carried the client over the stretch
    assert cursor == 14  # mkdir /elsewhere, 10 writes, mkdir /p and /p/x, the late write


async def test_ancestor_deleted_or_moved_is_a_reset(harness: Harness) -> None:
    owner = harness.client
    await put(owner, "/p/x/a.txt", b"1")
    _, agent = agent_client(harness)
    async with agent:
        start = (await agent.get("/sync/pull", params={"cursor": 0})).json()["cursor"]
        await put(owner, "/p/x/b.txt", b"2")
        await move(owner, "/p", "/q")  # the prefix now names nothing
        await owner.post("/files/mkdir", json={"path": "/p/x"})
        first = (await agent.get("/sync/pull", params={"cursor": start})).json()
        assert shown(first["events"]) == [("write", "/p/x/b.txt")]
        assert first["has_more"]
        reset = (await agent.get("/sync/pull", params={"cursor": first["cursor"]})).json()
        assert (reset["reset"], reset["events"], reset["has_more"]) == (True, [], True)
        after = (await agent.get("/sync/pull", params={"cursor": reset["cursor"]})).json()
        assert (after["reset"], shown(after["events"])) == (False, [("mkdir", "/p/x")])


async def read_stream(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """The next *count* change and reset events of an SSE response (type, data)."""
    found: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    while len(found) < count:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line == "":
            if fields.get("event") in ("change", "reset"):
                found.append({"event": fields["event"], **json.loads(fields["data"])})
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    return found


async def test_sse_backlog_and_live_through_a_prefix(live: LiveServer) -> None:
    owner = live.harness.client
    secrets = await mixed_history(owner)
    token, agent = agent_client(live.harness)
    await agent.aclose()
    async with aiohttp.ClientSession() as session:
        url = f"{live.url}/sync/stream?cursor=0&access_token={token}"
        async with session.get(url) as stream:
            backlog = await read_stream(stream, len(EXPECTED) - 1)
            assert [(e["type"], e["path"]) for e in backlog] == EXPECTED[1:]
            await put(owner, "/secret2/s.txt", b"outside bytes")
            await move(owner, "/secret2/s.txt", "/p/x/live-in.txt")
            await move(owner, "/p/x/t.txt", "/other-live.txt")
            await put(owner, "/p/x/last.txt", b"z")
            live_events = await read_stream(stream, 3)
            await move(owner, "/p", "/gone")
            (reset,) = await read_stream(stream, 1)
    assert [(e["type"], e["path"]) for e in live_events] == [
        ("write", "/p/x/live-in.txt"), ("delete", "/p/x/t.txt"), ("write", "/p/x/last.txt"),
    ]  # fmt: skip
    assert_no_secret(backlog + live_events, secrets | {"/secret2", "/other-live.txt"})
    assert reset["event"] == "reset"


async def test_websocket_backlog_and_live_through_a_prefix(live: LiveServer) -> None:
    owner = live.harness.client
    secrets = await mixed_history(owner)
    token, agent = agent_client(live.harness)
    await agent.aclose()
    url = f"{live.url}/sync/ws?cursor=0&access_token={token}"
    received: list[dict[str, Any]] = []

    async def until(kind: str) -> dict[str, Any]:
        while True:
            message = await ws.receive_json(timeout=5)
            received.append(message)
            if message["type"] == kind:
                return message

    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        caught_up = await until("caught_up")
        head = (await owner.get("/sync/pull", params={"cursor": 0})).json()["cursor"]
        assert caught_up["cursor"] == head
        await put(owner, "/secret3/s.txt", b"outside bytes")
        await move(owner, "/secret3/s.txt", "/p/x/ws-in.txt")
        await put(owner, "/p/x/ws-last.txt", b"w")
        while not any(
            m["type"] == "event" and m["event"]["path"] == "/p/x/ws-last.txt" for m in received
        ):
            await until("event")
        await owner.delete("/files", params={"path": "/p", "recursive": "1"})
        reset = await until("reset")
    events = [m["event"] for m in received if m["type"] == "event"]
    assert shown(events) == [*EXPECTED[1:], ("write", "/p/x/ws-in.txt"),
                             ("write", "/p/x/ws-last.txt")]  # fmt: skip
    assert_no_secret(received, secrets | {"/secret3"})
    assert reset["cursor"] == (await owner.get("/sync/pull", params={"cursor": 0})).json()["cursor"]


# --- audit, sessions, plan: an agent's own rows only --------------------------------------------


async def make_agent(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    reply = await client.post("/auth/agents", json={"name": "bot", **body})
    assert reply.status_code == 201, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def test_agent_sees_its_own_audit_rows_and_session(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await alice.post("/files/mkdir", json={"path": "/private/plans"})
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
        other_bot = await make_agent(alice, name="other", path_prefix="/p/y", access="write")
    async with auth.client_for(other_bot["token"]) as other:
        await other.post("/files/mkdir", json={"path": "/p/y/theirs"})
    async with auth.client_for(bot["token"]) as agent:
        await agent.post("/files/mkdir", json={"path": "/p/x/mine"})
        rows = (await agent.get("/audit/recent", params={"limit": 1000})).json()["entries"]
        sessions = (await agent.get("/auth/sessions", params={"include_revoked": "1"})).json()
        everyone = await agent.get("/auth/sessions", params={"all": "1"})
        filtered = await agent.get("/audit/recent", params={"user_id": owner.user_id})
        # Its creator's other sessions look absent, as they do in the list.
        revoke = await agent.delete(f"/auth/sessions/{owner.session_id}")
        assert (revoke.status_code, revoke.json()["error"]) == (404, "not_found")
    assert rows
    assert {r["session_id"] for r in rows} == {bot["session_id"]}
    assert any(r["action"] == "POST /files/mkdir" for r in rows)
    text = json.dumps(rows)
    for seen_elsewhere in ("/private", "/p/y", owner.session_id, other_bot["session_id"]):
        assert seen_elsewhere not in text
    assert [s["session_id"] for s in sessions["sessions"]] == [bot["session_id"]]
    assert sessions["sessions"][0]["current"] is True
    assert everyone.status_code == 403
    # Its creator's id is its own user id: allowed, and still only its own rows.
    assert {r["session_id"] for r in filtered.json()["entries"]} == {bot["session_id"]}
    async with auth.client_for(owner.access_token) as alice:
        mine = (await alice.get("/auth/sessions")).json()["sessions"]
        trail = (await alice.get("/audit/recent", params={"limit": 1000})).json()["entries"]
    assert {s["session_id"] for s in mine} >= {bot["session_id"], other_bot["session_id"]}
    assert {r.get("session_id") for r in trail} >= {bot["session_id"], owner.session_id}


async def test_agent_plan_shows_quota_not_tenant_usage(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        await put(alice, "/private/big.bin", b"x" * 5000)
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
        whole = await make_agent(alice, name="whole", path_prefix="/", access="read")
        full = (await alice.get("/plans/current")).json()["storage"]
    async with auth.client_for(bot["token"]) as agent:
        limited = (await agent.get("/plans/current")).json()["storage"]
    async with auth.client_for(whole["token"]) as agent:
        unlimited = (await agent.get("/plans/current")).json()["storage"]
    assert full == {"quota": auth.settings.tenant_storage_quota_bytes, "used": 5000,
                    "reserved": 0}  # fmt: skip
    assert limited == {"quota": auth.settings.tenant_storage_quota_bytes}
    assert unlimited == full


# --- uploads: content outside the prefix is never revealed ---------------------------------------


def init_body(path: str, chunks: list[bytes]) -> dict[str, Any]:
    names = [chunk_hash(c) for c in chunks]
    return {"path": path, "size": sum(map(len, chunks)), "content_hash": content_hash_of(names),
            "chunks": names}  # fmt: skip


async def test_upload_init_never_reveals_content_outside_the_prefix(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    secret = b"a" * CHUNK_SIZE  # a whole chunk the tenant stores outside the prefix
    tail = b"the agent's own tail"
    async with auth.client_for(owner.access_token) as alice:
        await put(alice, "/private/secret.bin", secret)
        used = (await alice.get("/plans/current")).json()["storage"]["used"]
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
        whole = await make_agent(alice, name="whole", path_prefix="/", access="write")
    async with auth.client_for(whole["token"]) as agent:  # sees everything: deduplicated
        seen = await agent.post("/files/upload/init", json=init_body("/w.bin", [secret, tail]))
        assert seen.json()["missing"] == [1]
    async with auth.client_for(bot["token"]) as agent:
        init = await agent.post("/files/upload/init", json=init_body("/p/x/g.bin", [secret, tail]))
        assert init.status_code == 200, init.text
        answer = init.json()
        assert answer["missing"] == [0, 1]
        assert not answer.get("part_urls")  # parts go through the server
        upload_id = answer["upload_id"]
        # Sending the tail alone: the guessed chunk is still missing, whatever the tenant holds.
        part = await agent.put("/files/upload/part", params={"upload_id": upload_id, "index": 1},
                               content=tail)  # fmt: skip
        assert part.json()["missing"] == [0]
        early = await agent.post("/files/upload/commit", json={"upload_id": upload_id})
        assert (early.status_code, early.json()["error"]) == (409, "upload_incomplete")
        assert early.json()["detail"]["missing"] == [0]
        part = await agent.put("/files/upload/part", params={"upload_id": upload_id, "index": 0},
                               content=secret)  # fmt: skip
        assert part.json()["missing"] == []
        done = await agent.post("/files/upload/commit", json={"upload_id": upload_id})
        assert done.status_code == 201, done.text
        got = await agent.get("/files/download", params={"path": "/p/x/g.bin"})
        assert got.content == secret + tail
    async with auth.client_for(owner.access_token) as alice:
        after = (await alice.get("/plans/current")).json()["storage"]["used"]
    assert after == used + len(tail)  # the store kept one copy of the resent chunk


async def test_upload_commit_needs_the_parts_sent(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    secret = b"guessable content stored outside"
    async with auth.client_for(owner.access_token) as alice:
        await put(alice, "/private/s.txt", secret)
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
    async with auth.client_for(bot["token"]) as agent:
        init = await agent.post("/files/upload/init", json=init_body("/p/x/s.txt", [secret]))
        assert init.json()["missing"] == [0]
        commit = await agent.post(
            "/files/upload/commit", json={"upload_id": init.json()["upload_id"]}
        )
        assert commit.json()["error"] == "upload_incomplete"
        # A one-shot write of the same bytes simply works (and reveals nothing).
        assert (await agent.put("/files/content", params={"path": "/p/x/s.txt"},
                                content=secret)).status_code == 201  # fmt: skip


async def test_restore_of_a_file_outside_the_prefix_is_refused(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        entry = await put(alice, "/private/s.txt", b"secret")
        await alice.delete("/files", params={"path": "/private/s.txt"})
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
    async with auth.client_for(bot["token"]) as agent:
        stolen = await agent.post(
            f"/files/{entry['node_id']}/versions/{entry['version_id']}/restore",
            json={"path": "/p/x/stolen.txt"},
        )
        assert stolen.status_code == 403
        assert (await agent.get("/files/meta", params={"path": "/p/x/stolen.txt"})).status_code in (
            403, 404,
        )  # fmt: skip


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


async def test_quota_never_tells_an_agent_what_the_tenant_stores(small: AuthHarness) -> None:
    owner = await small.login("alice")
    stored = b"s" * 900  # stored outside the prefix; writing it again costs the tenant nothing
    async with small.client_for(owner.access_token) as alice:
        await put(alice, "/private/s.bin", stored)
        bot = await make_agent(alice, path_prefix="/p/x", access="write")
        whole = await make_agent(alice, name="whole", path_prefix="/", access="write")
    async with small.client_for(whole["token"]) as agent:  # sees everything: deduplicated
        assert (await agent.put("/files/content", params={"path": "/w.bin"},
                                content=stored)).status_code == 201  # fmt: skip
    async with small.client_for(bot["token"]) as agent:
        # Charged as new content, so the answer is the same whether or not the tenant has it.
        for data in (stored, b"n" * 900):
            over = await agent.put("/files/content", params={"path": "/p/x/c.bin"}, content=data)
            assert (over.status_code, over.json()["error"]) == (507, "quota_exceeded")
            assert over.json()["detail"] == {"quota": 1000, "requested": 900}
            assert "stored" not in over.json()["error_description"]
        init = await agent.post("/files/upload/init", json=init_body("/p/x/u.bin", [b"u" * 200]))
        assert (init.status_code, init.json()["detail"]) == (507, {"quota": 1000, "requested": 200})
