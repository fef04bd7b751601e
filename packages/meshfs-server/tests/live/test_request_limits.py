"""Request bodies are capped per route before they are read (413), and an early answer never
leaves a keep-alive client with a dead connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from conftest import AuthHarness, Harness
from meshfs_server_live import RawConnection, serving

from meshfs_common.hashing import CHUNK_SIZE
from meshfs_server.http.codec import CHUNK_LIST_BODY, SMALL_BODY

MiB = 1024 * 1024


class Body:
    """A request body streamed in pieces, remembering how much of it was read."""

    def __init__(self, size: int, piece: int = 16 * 1024) -> None:
        self.size = size
        self.piece = piece
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.read < self.size:
            block = b"x" * min(self.piece, self.size - self.read)
            self.read += len(block)
            yield block


async def test_declared_oversized_body_is_refused_before_it_is_read(harness: Harness) -> None:
    body = Body(200 * MiB)
    answer = await harness.client.post(
        "/files/mkdir", content=body, headers={"Content-Length": str(200 * MiB)}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"
    assert answer.json()["detail"] == {"limit": SMALL_BODY}
    assert body.read == 0


async def test_unauthenticated_sign_in_body_over_the_cap_is_refused(auth: AuthHarness) -> None:
    body = Body(200 * MiB)
    answer = await auth.client.post(
        "/auth/device/start", content=body, headers={"Content-Length": str(200 * MiB)}
    )
    assert answer.status_code == 413
    assert body.read == 0


async def test_chunked_body_is_counted_and_refused_at_the_cap(harness: Harness) -> None:
    body = Body(50 * MiB)  # no Content-Length: sent chunked
    answer = await harness.client.post("/files/mkdir", content=body)
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"
    assert body.read <= SMALL_BODY + body.piece  # reading stopped at the cap


async def test_unauthenticated_chunked_sign_in_body_is_refused(auth: AuthHarness) -> None:
    body = Body(50 * MiB)
    answer = await auth.client.post("/auth/device/start", content=body)
    assert answer.status_code == 413
    assert body.read <= SMALL_BODY + body.piece


@pytest.mark.parametrize(
    ("route", "cap"),
    [
        ("/files/upload/init", CHUNK_LIST_BODY),
        ("/files/upload/part?upload_id=x&index=0", CHUNK_SIZE),
    ],
)
async def test_routes_that_carry_more_have_their_own_cap(
    harness: Harness, route: str, cap: int
) -> None:
    method = "PUT" if "part" in route else "POST"
    size = {"Content-Length": str(cap + 1)}
    over = await harness.client.request(method, route, content=Body(cap + 1), headers=size)
    assert over.status_code == 413
    assert over.json()["detail"] == {"limit": cap}
    # At the cap the body reaches the route (which then judges its content).
    within = await harness.client.request(method, route, content=Body(cap))
    assert within.status_code not in (413, 500)


async def test_one_shot_writes_stream_without_a_cap(harness: Harness) -> None:
    answer = await harness.client.put(
        "/files/content", params={"path": "/big"}, content=Body(2 * CHUNK_SIZE + 5)
    )
    assert answer.status_code == 201
    assert answer.json()["version"]["size"] == 2 * CHUNK_SIZE + 5


async def test_early_413_arrives_without_the_body_over_a_real_socket(harness: Harness) -> None:
    async with serving(harness.client._transport.app) as url:  # type: ignore[attr-defined]
        conn = await RawConnection.open(url)
        try:
            # Headers only: a server that waited for the body would never answer.
            await conn.request("POST", "/auth/device/start", {"Content-Length": str(200 * MiB)})
            answer = await conn.response(wait=5)
            assert answer.status == 413
            assert answer.headers["connection"] == "close"
            assert await conn.closed_by_server()
        finally:
            await conn.close()


async def test_keep_alive_survives_an_early_401_with_a_small_body(harness: Harness) -> None:
    async with serving(harness.client._transport.app) as url:  # type: ignore[attr-defined]
        conn = await RawConnection.open(url)
        try:
            body = b'{"path": "/x"}' + b" " * 2000
            await conn.request("POST", "/files/mkdir", {"Content-Type": "application/json"}, body)
            refused = await conn.response()
            assert refused.status == 401
            assert refused.headers.get("connection") != "close"
            # The same connection serves the next request.
            await conn.request("GET", "/healthz")
            assert (await conn.response()).status == 200
            # A body the route streams (no cap), refused before reading: drained as well.
            await conn.request("PUT", "/files/content?path=/y", body=b"z" * MiB)
            assert (await conn.response()).status == 401
            await conn.request("GET", "/healthz")
            assert (await conn.response()).status == 200
        finally:
            await conn.close()


async def test_early_answer_to_a_large_unread_body_says_connection_close(
    harness: Harness,
) -> None:
    async with serving(harness.client._transport.app) as url:  # type: ignore[attr-defined]
        conn = await RawConnection.open(url)
        try:
            await conn.request("PUT", "/files/content?path=/y", {"Content-Length": str(64 * MiB)})
            refused = await conn.response()
            assert refused.status == 401
            assert refused.headers["connection"] == "close"
        finally:
            await conn.close()


async def test_keep_alive_client_sees_no_reset_after_early_answers(harness: Harness) -> None:
    app = harness.client._transport.app  # type: ignore[attr-defined]
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        for _ in range(3):
            refused = await client.post("/files/mkdir", json={"path": "/nope"})
            assert refused.status_code == 401
            too_big = await client.post("/files/mkdir", content=b"x" * (SMALL_BODY + 1))
            assert too_big.status_code == 413
            assert (await client.get("/healthz")).status_code == 200


async def test_client_leaving_mid_body_is_not_a_server_error(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that goes away halfway through its body (a cancelled upload) is its own doing:
    no 500 and no traceback in the server's log."""
    app = harness.client._transport.app  # type: ignore[attr-defined]
    token = harness.client.headers["Authorization"].encode()
    incoming = [
        {"type": "http.request", "body": b'{"path": "/hal', "more_body": True},
        {"type": "http.disconnect"},
    ]
    answered: list[int] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answered.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/files/mkdir", "raw_path": b"/files/mkdir",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8787), "extensions": {},
        "headers": [(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json"),
                    (b"authorization", token)],
    }  # fmt: skip
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(app(scope, receive, send), 10)
    assert answered == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await harness.client.get("/files/meta", params={"path": "/hal"})).status_code == 404
