"""Change streams (SSE and WebSocket) are capped per token and per tenant, counted by the rate
limiter, and survive input they do not understand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import AuthHarness, Harness, LiveServer
from meshfs_server_live import serving
from meshfs_server_wait import wait_until

from meshfs_common.ids import new_id
from meshfs_server.domain.actor import Actor
from meshfs_server.http.streams import CLOSE_OVER_LIMIT
from meshfs_server.http.sync import BINARY_REFUSED
from meshfs_server.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", gc_grace_seconds=0, max_streams_per_token=2,
        max_streams_per_tenant=3, **backend,
    )  # fmt: skip


@pytest.fixture
def auth_settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    return Settings(
        data_dir=tmp_path / "auth-data", gc_grace_seconds=0, rate_limit_per_minute=3, **backend
    )


async def test_open_streams_are_capped_per_token_and_per_tenant(live: LiveServer) -> None:
    harness = live.harness
    alice = Actor(tenant_id=harness.tenant_id, user_id=new_id(), session_id=new_id())
    bob = Actor(tenant_id=harness.tenant_id, user_id=new_id(), session_id=new_id())
    token_a, token_b = harness.tokens.add(alice), harness.tokens.add(bob)
    slots = harness.services.streams

    def ws_url(token: str) -> str:
        return f"{live.url}/sync/ws?access_token={token}"

    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(ws_url(token_a))
        assert (await first.receive_json(timeout=5))["type"] == "hello"
        sse = await session.get(
            f"{live.url}/sync/stream", headers={"Authorization": f"Bearer {token_a}"}
        )
        assert sse.status == 200
        assert slots.count(alice) == (2, 2)

        # A third stream for the same token: refused at the handshake, with a wait hint.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(ws_url(token_a))
        assert refused.value.status == 429
        assert refused.value.headers is not None
        assert "Retry-After" in refused.value.headers
        over = await session.get(
            f"{live.url}/sync/stream", headers={"Authorization": f"Bearer {token_a}"}
        )
        assert over.status == 429
        body = await over.json()
        assert body["error"] == "rate_limited"
        assert "this token" in body["error_description"]

        # Another token of the same tenant: one stream left for the tenant, then refused.
        other = await session.ws_connect(ws_url(token_b))
        assert (await other.receive_json(timeout=5))["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as tenant_full:
            await session.ws_connect(ws_url(token_b))
        assert tenant_full.value.status == 429

        # Closing a stream gives its slot back.
        await first.close()
        await wait_until(lambda: slots.count(alice)[0] == 1, "the closed socket's slot")
        again = await session.ws_connect(ws_url(token_a))
        assert (await again.receive_json(timeout=5))["type"] == "hello"
        sse.close()
        await wait_until(lambda: slots.count(alice)[0] == 1, "the closed SSE stream's slot")
        for ws in (again, other):
            await ws.close()
    await wait_until(lambda: slots.count(alice) == (0, 0), "every slot back")


async def test_websocket_attempts_spend_the_tenant_rate_limit(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    async with serving(auth.transport.app) as url, aiohttp.ClientSession() as session:
        socket_url = f"{url}/sync/ws?access_token={tokens.access_token}"
        opened = []
        for _ in range(3):  # the tenant's budget: 3 requests a minute
            ws = await session.ws_connect(socket_url)
            opened.append(ws)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(socket_url)
        assert refused.value.status == 429
        for ws in opened:
            await ws.close()


async def test_binary_frame_gets_an_error_and_the_socket_keeps_serving(live: LiveServer) -> None:
    url = f"{live.url}/sync/ws?access_token={live.token}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        await ws.send_bytes(b"\x00\xff binary")
        answer = await ws.receive_json(timeout=5)
        while answer["type"] == "caught_up":
            answer = await ws.receive_json(timeout=5)
        assert answer["type"] == "error"
        assert answer["error"]["error"] == "bad_request"
        assert answer["error"]["error_description"] == BINARY_REFUSED
        await ws.send_json({"type": "ping", "cursor": 7})
        while (message := await ws.receive_json(timeout=5))["type"] != "pong":
            pass
        assert message["cursor"] == 7
        assert not ws.closed


async def test_without_http_denial_a_refused_socket_closes_with_4429(harness: Harness) -> None:
    """Servers without the WebSocket denial extension: accepted, then closed with 4429."""
    alice = Actor(tenant_id=harness.tenant_id, user_id=new_id(), session_id=new_id())
    token = harness.tokens.add(alice)
    held = [harness.services.streams.open(alice) for _ in range(2)]  # the token's limit
    sent: list[dict[str, Any]] = []
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws",
        "path": "/sync/ws", "raw_path": b"/sync/ws", "root_path": "", "extensions": {},
        "query_string": f"access_token={token}".encode(), "headers": [],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8787), "subprotocols": [],
    }  # fmt: skip
    app = harness.client._transport.app  # type: ignore[attr-defined]
    await asyncio.wait_for(app(scope, receive, send), 10)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert sent[1]["code"] == CLOSE_OVER_LIMIT
    assert "this token" in sent[1]["reason"]
    for slot in held:
        slot.release()
    assert harness.services.streams.count(alice) == (0, 0)
