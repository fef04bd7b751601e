"""The change feed: pull paging and reset, SSE with Last-Event-ID, WebSocket replay + live."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx
import pytest
from conftest import Harness, LiveServer


async def make_events(client: httpx.AsyncClient, n: int, prefix: str = "/e") -> None:
    for i in range(n):
        await client.put("/files/content", params={"path": f"{prefix}{i}"}, content=b"x")


async def test_pull_pages_without_gaps(client: httpx.AsyncClient) -> None:
    await make_events(client, 25)
    seqs: list[int] = []
    cursor = 0
    while True:
        page = (await client.get("/sync/pull", params={"cursor": cursor, "limit": 10})).json()
        seqs += [e["seq"] for e in page["events"]]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert seqs == list(range(1, 26))
    empty = (await client.get("/sync/pull", params={"cursor": cursor})).json()
    assert (empty["events"], empty["cursor"], empty["reset"]) == ([], 25, False)


async def test_cursor_outside_log_gets_reset(client: httpx.AsyncClient) -> None:
    await make_events(client, 3)
    r = (await client.get("/sync/pull", params={"cursor": 99})).json()
    assert r["reset"] is True
    assert r["cursor"] == 3


async def test_rename_event_carries_both_paths(client: httpx.AsyncClient) -> None:
    await client.put("/files/content", params={"path": "/a"}, content=b"1")
    await client.post("/files/rename", json={"path": "/a", "new_path": "/b"})
    last = (await client.get("/sync/pull")).json()["events"][-1]
    assert (last["type"], last["old_path"], last["path"]) == ("rename", "/a", "/b")


async def read_sse(response: aiohttp.ClientResponse, count: int) -> list[dict]:
    """Parse *count* ``change`` events from an SSE response."""
    found: list[dict] = []
    event: dict = {}
    while len(found) < count:
        line = (await asyncio.wait_for(response.content.readline(), 5)).decode().rstrip("\n")
        if line == "":
            if event.get("event") == "change":
                found.append(event)
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value
    return found


async def test_sse_replays_then_streams_and_honours_last_event_id(live: LiveServer) -> None:
    client = live.harness.client
    await make_events(client, 3)
    headers = {"Authorization": f"Bearer {live.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{live.url}/sync/stream?cursor=1", headers=headers) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            backlog = await read_sse(r, 2)
            assert [int(e["id"]) for e in backlog] == [2, 3]
            await make_events(client, 1, prefix="/live")
            (live_event,) = await read_sse(r, 1)
            assert json.loads(live_event["data"])["path"] == "/live0"
            assert live_event["id"] == "4"
        resume = headers | {"Last-Event-ID": "2"}
        async with session.get(f"{live.url}/sync/stream", headers=resume) as r:
            assert [int(e["id"]) for e in await read_sse(r, 2)] == [3, 4]


async def test_websocket_backlog_then_live_no_gaps(live: LiveServer) -> None:
    client = live.harness.client
    await make_events(client, 5)
    url = f"{live.url}/sync/ws?cursor=2&access_token={live.token}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "hello", "cursor": 2, "event": None, "error": None}
        writer = asyncio.create_task(make_events(client, 20, prefix="/w"))  # races the replay
        seqs: list[int] = []
        caught_up = False
        while len(seqs) < 23:
            message = await ws.receive_json(timeout=5)
            if message["type"] == "caught_up":
                caught_up = True
            elif message["type"] == "event":
                seqs.append(message["event"]["seq"])
        await writer
        assert caught_up
        assert seqs == list(range(3, 26))
        await ws.send_json({"type": "ping"})
        while (message := await ws.receive_json(timeout=5))["type"] != "pong":
            pass


async def test_websocket_reset_and_auth(live: LiveServer) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{live.url}/sync/ws?cursor=50&access_token={live.token}"
        async with session.ws_connect(url) as ws:
            await ws.receive_json(timeout=5)  # hello
            reset = await ws.receive_json(timeout=5)
            assert (reset["type"], reset["cursor"]) == ("reset", 0)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{live.url}/sync/ws?access_token=bad")
        assert refused.value.status == 401


async def test_cursor_older_than_retained_log_gets_reset(harness: Harness) -> None:
    client = harness.client
    await make_events(client, 3)
    trimmed = await harness.services.feed.trim(harness.tenant_id, time.time() + 1)
    assert trimmed == 3
    await make_events(client, 2, prefix="/later")
    old = (await client.get("/sync/pull", params={"cursor": 1})).json()
    assert (old["reset"], old["cursor"], old["events"]) == (True, 5, [])
    fresh = (await client.get("/sync/pull", params={"cursor": 3})).json()
    assert [e["seq"] for e in fresh["events"]] == [4, 5]
    assert fresh["reset"] is False


async def test_one_write_reaches_every_websocket_and_sse_subscriber_alike(
    live: LiveServer,
) -> None:
    """Subscribers share one fan-out: every one of them gets the write, with the same bytes
    for each kind of stream."""
    client = live.harness.client
    headers = {"Authorization": f"Bearer {live.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        sockets = [await session.ws_connect(f"{live.url}/sync/ws?cursor=0") for _ in range(4)]
        streams = [await session.get(f"{live.url}/sync/stream?cursor=0") for _ in range(4)]
        try:
            for ws in sockets:  # hello, then caught_up: subscribed before the write
                while (await ws.receive_json(timeout=5))["type"] != "caught_up":
                    pass
            for sse in streams:
                while not (await asyncio.wait_for(sse.content.readline(), 5)).startswith(
                    b"event: caught_up"
                ):
                    pass
            await make_events(client, 1, prefix="/shared")
            texts = [await ws.receive_str(timeout=5) for ws in sockets]
            frames = [(await read_sse(sse, 1))[0] for sse in streams]
        finally:
            for ws in sockets:
                await ws.close()
            for sse in streams:
                sse.close()
    assert len(set(texts)) == 1
    message = json.loads(texts[0])
    assert (message["type"], message["event"]["path"]) == ("event", "/shared0")
    assert all(frame == frames[0] for frame in frames)
    assert json.loads(frames[0]["data"]) == message["event"]


async def test_live_frames_go_past_the_request_middleware(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open stream's start and end pass through the request middleware, its live frames go
    straight to the server: a write sent to many streams costs each one call, not one per
    middleware layer."""
    from collections import Counter

    from meshfs_server.http.draining import Draining

    seen: Counter[str] = Counter()
    for name in ("_websocket", "_http"):
        original = getattr(Draining, name)

        async def counted(self: Draining, scope, receive, send, original=original) -> None:  # type: ignore[no-untyped-def]
            async def counting(message: dict) -> None:
                more = "+more" if message.get("more_body") else ""
                seen[message["type"] + more] += 1
                await send(message)

            await original(self, scope, receive, counting)

        monkeypatch.setattr(Draining, name, counted)
    client = live.harness.client
    headers = {"Authorization": f"Bearer {live.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        ws = await session.ws_connect(f"{live.url}/sync/ws?cursor=0")
        sse = await session.get(f"{live.url}/sync/stream?cursor=0")
        try:
            while (await ws.receive_json(timeout=5))["type"] != "caught_up":
                pass
            while not (await asyncio.wait_for(sse.content.readline(), 5)).startswith(
                b"event: caught_up"
            ):
                pass
            await make_events(client, 3, prefix="/past")
            paths = [(await ws.receive_json(timeout=5))["event"]["path"] for _ in range(3)]
            frames = await read_sse(sse, 3)
        finally:
            await ws.close()
            sse.close()
    assert paths == ["/past0", "/past1", "/past2"]
    assert [json.loads(frame["data"])["path"] for frame in frames] == paths
    assert seen["websocket.accept"] == 1
    assert seen["http.response.start"] >= 1
    assert seen["websocket.send"] == 0
    assert seen["http.response.body+more"] == 0


async def test_write_and_restore_events_carry_the_new_heads_mode_and_mtime(
    client: httpx.AsyncClient,
) -> None:
    """A follower (``meshfs sync``) places a written file with its mode and mtime from the
    event alone: they are what ``GET /files/meta`` says of the new head."""

    async def last_event() -> dict:
        return (await client.get("/sync/pull")).json()["events"][-1]

    async def meta(path: str) -> dict:
        return (await client.get("/files/meta", params={"path": path})).json()

    mtime = 1_700_000_000_123_456_789
    first = await client.put(
        "/files/content", params={"path": "/m", "mode": 0o755, "mtime_ns": mtime}, content=b"1"
    )
    event = await last_event()
    assert event["type"] == "write"
    assert event["attributes"] == {"mode": 0o755, "mtime_ns": mtime}

    # A new version of an existing file keeps its mode; its mtime is the commit's.
    await client.put("/files/content", params={"path": "/m"}, content=b"2")
    event, now = await last_event(), await meta("/m")
    assert event["attributes"] == {"mode": 0o755, "mtime_ns": now["mtime_ns"]}
    assert now["mtime_ns"] != mtime

    # A rename over a file with other names writes the moved content under the name.
    await client.put("/files/content", params={"path": "/src", "mtime_ns": mtime}, content=b"3")
    await client.post("/files/link", json={"path": "/src", "new_path": "/src2"})
    await client.post("/files/rename", json={"path": "/src", "new_path": "/m", "overwrite": True})
    event, now = await last_event(), await meta("/m")
    assert (event["type"], event["path"]) == ("write", "/m")
    assert event["attributes"] == {"mode": now["mode"], "mtime_ns": now["mtime_ns"]}

    node_id, version_id = first.json()["entry"]["node_id"], first.json()["version"]["version_id"]
    restored = await client.post(f"/files/{node_id}/versions/{version_id}/restore")
    assert restored.status_code == 200, restored.text
    event, now = await last_event(), await meta("/m")
    assert event["type"] == "restore"
    assert event["attributes"] == {"mode": now["mode"], "mtime_ns": now["mtime_ns"]}
