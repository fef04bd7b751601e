"""``meshfs-server serve --workers 2`` as a user runs it: one port, several processes.

Every test starts a real server process with two workers and pins its connections to a chosen
worker (the kernel hands each new connection to one of them; /proc tells which), so that what
one worker does is checked from the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from meshfs_server_backends import sql_backends
from meshfs_server_live import RawConnection
from meshfs_server_wait import wait_until
from meshfs_server_workers import WorkersServer, workers_server

on_sql = pytest.mark.parametrize("backend", sql_backends(), indirect=True)
ATTEMPTS = 60  # connections tried before giving up on reaching a given worker


async def raw_on(
    server: WorkersServer, stack: AsyncExitStack, *, worker: int | None = None,
    avoid: int | None = None,
) -> tuple[RawConnection, int]:  # fmt: skip
    """A keep-alive HTTP connection served by *worker* (or by any worker but *avoid*)."""
    for _ in range(ATTEMPTS):
        conn = await RawConnection.open(server.url)
        port = conn.writer.get_extra_info("sockname")[1]
        owner = None

        async def known(port: int = port) -> bool:
            nonlocal owner
            owner = server.worker_of(port)
            return owner is not None

        await wait_until(known, "the connection's worker")
        assert owner is not None
        if (worker is None or owner == worker) and owner != avoid:
            stack.push_async_callback(conn.close)
            return conn, owner
        await conn.close()
    raise AssertionError(f"no connection reached worker {worker} (avoiding {avoid})")


async def ws_on(
    server: WorkersServer, http: aiohttp.ClientSession, stack: AsyncExitStack, *,
    worker: int | None = None, avoid: int | None = None, token: str | None = None,
) -> tuple[aiohttp.ClientWebSocketResponse, int]:  # fmt: skip
    """A change-feed WebSocket served by *worker* (or any but *avoid*), its backlog replayed."""
    found: list[tuple[aiohttp.ClientWebSocketResponse, int]] = []

    async def reached() -> bool:
        try:
            ws = await http.ws_connect(
                f"{server.url}/sync/ws", params={"access_token": token or server.token}
            )
        except aiohttp.WSServerHandshakeError as refused:
            # A socket just closed on the wrong worker may count until its worker says so.
            if refused.status != 429:
                raise
            return False
        owner = server.worker_of(ws.get_extra_info("sockname")[1])
        if owner is not None and (worker is None or owner == worker) and owner != avoid:
            found.append((ws, owner))
            return True
        await ws.close()
        return False

    await wait_until(reached, f"a WebSocket on worker {worker} (avoiding {avoid})", within=30)
    ws, owner = found[0]
    stack.push_async_callback(ws.close)
    while (await ws.receive_json(timeout=10))["type"] != "caught_up":
        pass
    return ws, owner


async def put(conn: RawConnection, token: str, path: str, body: bytes) -> int:
    await conn.request(
        "PUT", f"/files/content?path={path}", {"Authorization": f"Bearer {token}"}, body
    )
    return (await conn.response()).status


@asynccontextmanager
async def two_workers(
    tmp_path: Path, backend: dict[str, Any] | None = None, **env: str
) -> AsyncIterator[tuple[WorkersServer, set[int]]]:
    async with workers_server(tmp_path, 2, backend, **env) as server:
        yield server, await server.wait_for_workers(2)


# --- the processes --------------------------------------------------------------------------


async def test_one_port_and_a_dead_worker_is_replaced_while_the_other_serves(
    tmp_path: Path,
) -> None:
    async with two_workers(tmp_path) as (server, pids):
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        answers = []

        async def replaced() -> bool:
            # Every request meanwhile is answered (by the surviving worker, then both).
            async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as r:
                answers.append(r.status)
            now = server.workers()
            return len(now) == 2 and victim not in now

        await wait_until(replaced, "a new worker in place of the killed one", within=60)
        assert set(answers) == {200}
        await server.wait_for_workers(2)
        assert f"(pid {victim}) exited with signal SIGKILL; starting a new one" in (
            server.console()
        )
        assert server.process.poll() is None


async def test_one_signal_stops_every_worker_and_closes_their_streams(tmp_path: Path) -> None:
    async with two_workers(tmp_path) as (server, pids), AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        first, one = await ws_on(server, http, stack)
        second, _ = await ws_on(server, http, stack, avoid=one)
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        closes = [await ws.receive(timeout=5) for ws in (first, second)]
        code = await asyncio.to_thread(server.process.wait, 10)
        elapsed = time.monotonic() - stopping
        assert [c.type for c in closes] == [aiohttp.WSMsgType.CLOSE] * 2
        assert [c.data for c in closes] == [1001, 1001]  # going away
        assert code == 0, server.console()
        assert elapsed < 2.0, f"stopping took {elapsed:.2f}s:\n{server.console()}"
        await wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "no worker left"
        )
        assert "Traceback" not in server.console()


# --- the embedded database and the feed across workers ------------------------------------


@on_sql
async def test_a_write_reaches_a_websocket_on_the_other_worker(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with two_workers(tmp_path, backend) as (server, _), AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        ws, watcher = await ws_on(server, http, stack)
        writer, _ = await raw_on(server, stack, avoid=watcher)
        for i in range(20):
            assert await put(writer, server.token, f"/bell/{i}", b"ring") in (200, 201)
            # Pushed: a follower never polls, so without the doorbell between the workers
            # nothing would arrive until some later ring (the bench measures the latency).
            while True:
                message = await ws.receive_json(timeout=5)
                if message["type"] == "event" and message["event"]["path"] == f"/bell/{i}":
                    break


@on_sql
async def test_writes_from_two_workers_are_serialised_in_one_gap_free_sequence(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with two_workers(tmp_path, backend) as (server, pids), AsyncExitStack() as stack:
        conns = []
        for pid in sorted(pids):
            for _ in range(3):
                conns.append((await raw_on(server, stack, worker=pid))[0])
        shared = os.urandom(3000)  # the same chunk, uploaded by both workers at once
        expected: dict[str, bytes] = {}

        async def writes(index: int, conn: RawConnection) -> None:
            for n in range(15):
                path = f"/w{index}/f{n}"
                body = shared if n % 3 == 0 else os.urandom(2000)
                assert await put(conn, server.token, path, body) in (200, 201)
                expected[path] = body

        await asyncio.gather(*(writes(i, c) for i, c in enumerate(conns)))
        headers = {"Authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            events: list[dict[str, Any]] = []
            cursor = 0
            while True:
                async with http.get(f"{server.url}/sync/pull", params={"cursor": cursor}) as r:
                    page = await r.json()
                events += page["events"]
                cursor = page["cursor"]
                if not page["has_more"]:
                    break
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            written = {e["path"] for e in events if e["type"] == "write"}
            assert written == set(expected)
            for path, body in expected.items():
                async with http.get(f"{server.url}/files/download", params={"path": path}) as r:
                    assert r.status == 200
                    got = await r.read()
                assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), path


# --- limits every worker shares ---------------------------------------------------------------


@on_sql
async def test_the_tenant_budget_is_one_budget_across_workers(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    env = {"MESHFS_RATE_LIMIT_PER_MINUTE": "6"}
    async with two_workers(tmp_path, backend, **env) as (server, pids), AsyncExitStack() as stack:
        conns = [(await raw_on(server, stack, worker=pid))[0] for pid in sorted(pids)]
        statuses: list[int] = []
        for _ in range(6):
            for conn in conns:
                await conn.request("GET", "/auth/whoami", server.bearer)
                statuses.append((await conn.response()).status)
        # Six a minute in all: with two separate budgets both workers would admit six.
        assert statuses.count(200) <= 6, statuses
        assert statuses[-2:] == [429, 429], statuses


@on_sql
async def test_open_stream_limits_count_every_worker(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    env = {"MESHFS_MAX_STREAMS_PER_TOKEN": "2"}
    async with two_workers(tmp_path, backend, **env) as (server, _), AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        _, one = await ws_on(server, http, stack)
        await ws_on(server, http, stack, avoid=one)  # the token's two: one on each worker
        refused = 0
        for _ in range(4):  # a third stream, wherever it lands, is one too many
            with pytest.raises(aiohttp.WSServerHandshakeError) as over:
                await http.ws_connect(
                    f"{server.url}/sync/ws", params={"access_token": server.token}
                )
            assert over.value.status == 429
            refused += 1
        assert refused == 4


@on_sql
async def test_a_revoked_session_is_refused_by_every_worker_within_a_second(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with two_workers(tmp_path, backend) as (server, pids), AsyncExitStack() as stack:
        conns = [(await raw_on(server, stack, worker=pid))[0] for pid in sorted(pids)]
        for conn in conns:  # each worker has resolved the token (and may remember it)
            await conn.request("GET", "/auth/whoami", server.bearer)
            assert (await conn.response()).status == 200
        await conns[0].request(
            "POST", "/auth/logout", server.bearer | {"Content-Type": "application/json"}, b"{}"
        )
        assert (await conns[0].response()).status in (200, 204)
        signed_out = time.monotonic()

        async def refused_everywhere() -> bool:
            statuses = []
            for conn in conns:
                await conn.request("GET", "/auth/whoami", server.bearer)
                statuses.append((await conn.response()).status)
            return statuses == [401, 401]

        await wait_until(refused_everywhere, "every worker refusing the token", within=5)
        assert time.monotonic() - signed_out < 1.0


@on_sql
async def test_sign_in_requests_from_one_address_share_one_budget(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    from meshfs_server.auth.ratelimit import AUTH_PER_MINUTE

    async with two_workers(tmp_path, backend) as (server, pids), AsyncExitStack() as stack:
        conns = [(await raw_on(server, stack, worker=pid))[0] for pid in sorted(pids)]
        admitted = 0
        refused = [0, 0]
        started = time.monotonic()
        for _ in range(AUTH_PER_MINUTE):
            for n, conn in enumerate(conns):
                await conn.request(
                    "POST", "/auth/device/start", {"Content-Type": "application/json"}, b"{}"
                )
                status = (await conn.response()).status
                admitted += status == 200
                refused[n] += status == 429
        refilled = (time.monotonic() - started) * AUTH_PER_MINUTE / 60
        # One budget for the address: what it holds plus what refilled meanwhile (two separate
        # budgets would have admitted every one of the 2 x AUTH_PER_MINUTE requests).
        assert admitted <= AUTH_PER_MINUTE + refilled + 1, (admitted, refilled)
        assert min(refused) > 0, refused
