"""Transport behaviour against a scripted HTTP fake: retries, timeouts, token renewal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from meshfs_client_testkit import Fake, envelope

from meshfs_client import RetryPolicy, Timeouts
from meshfs_client._auth import StoredSession
from meshfs_client._credentials import Credentials, CredentialStore
from meshfs_common.errors import AuthError, GatewayTimeoutError, UnavailableError

WHOAMI = {
    "user_id": "U1",
    "username": "ada",
    "tenant_id": "T1",
    "tenant_name": "lab",
    "scope": "files",
}
NOW = "2024-01-01T00:00:00Z"
ENTRY = {"node_id": "N", "path": "/b", "name": "b", "kind": "file", "created_at": NOW,
         "modified_at": NOW}  # fmt: skip


def token_answer(access: str, refresh: str) -> dict[str, Any]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 3600,
        "user_id": "U1",
        "tenant_id": "T1",
        "session_id": "S1",
    }


def session(access: str = "old", refresh: str = "r1", expires_in: float = 3600) -> Credentials:
    return Credentials(
        server="",  # filled by caller
        access_token=access,
        refresh_token=refresh,
        expires_at=time.time() + expires_in,
    )


def stored(fake: Fake, creds: Credentials) -> Credentials:
    return Credentials(
        server=fake.url,
        access_token=creds.access_token,
        refresh_token=creds.refresh_token,
        expires_at=creds.expires_at,
    )


async def test_idempotent_request_retried_through_503(fake: Fake, tmp_path: Path) -> None:
    failures = [2]

    async def whoami(request: web.Request) -> web.Response:
        if failures[0]:
            failures[0] -= 1
            return envelope(503, "unavailable")
        return web.json_response(WHOAMI)

    fake.route("GET", "/auth/whoami", whoami)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        assert (await client.whoami()).username == "ada"
    assert fake.count("GET", "/auth/whoami") == 3


async def test_non_idempotent_request_not_retried_after_503(fake: Fake, tmp_path: Path) -> None:
    async def rename(request: web.Request) -> web.Response:
        return envelope(503, "unavailable")

    fake.route("POST", "/files/rename", rename)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        with pytest.raises(UnavailableError):
            await client.rename("/a", "/b")
    assert fake.count("POST", "/files/rename") == 1


async def test_rate_limited_request_retried_even_if_not_idempotent(
    fake: Fake, tmp_path: Path
) -> None:
    answers = [envelope(429, "rate_limited", **{"Retry-After": "0"})]

    async def rename(request: web.Request) -> web.Response:
        if answers:
            return answers.pop()
        return web.json_response(ENTRY)

    fake.route("POST", "/files/rename", rename)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        assert (await client.rename("/a", "/b")).path == "/b"
    assert fake.count("POST", "/files/rename") == 2


async def test_request_timeout_is_enforced(fake: Fake, tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response(WHOAMI)

    fake.route("GET", "/auth/whoami", slow)
    await fake.start()
    client = fake.client(
        tmp_path, token="t", timeouts=Timeouts(request=0.2), retry=RetryPolicy.none()
    )
    async with client:
        started = time.monotonic()
        with pytest.raises(GatewayTimeoutError):
            await client.whoami()
        assert time.monotonic() - started < 3


def _auth_routes(fake: Fake, *, refresh_delay: float = 0.0) -> dict[str, Any]:
    state: dict[str, Any] = {"valid": "old", "refresh": "r1", "n": 0}

    async def whoami(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {state['valid']}":
            return envelope(401, "unauthenticated", "token expired")
        return web.json_response(WHOAMI)

    async def refresh(request: web.Request) -> web.Response:
        body = await request.json()
        if body["refresh_token"] != state["refresh"]:
            return envelope(400, "invalid_grant", "refresh token reused")
        await asyncio.sleep(refresh_delay)
        state["n"] += 1
        state["valid"] = f"a{state['n']}"
        state["refresh"] = f"r{state['n'] + 1}"
        return web.json_response(token_answer(state["valid"], state["refresh"]))

    fake.route("GET", "/auth/whoami", whoami)
    fake.route("POST", "/auth/refresh", refresh)
    return state


async def test_401_refreshes_once_persists_rotation_and_retries(fake: Fake, tmp_path: Path) -> None:
    state = _auth_routes(fake)
    await fake.start()
    state["valid"] = "rotated-by-server"  # the stored access token no longer works
    async with fake.client(tmp_path, credentials=stored(fake, session())) as client:
        state["valid"] = "old-invalid"
        assert (await client.whoami()).username == "ada"
        assert fake.count("POST", "/auth/refresh") == 1
        assert client.credentials is not None
        assert client.credentials.refresh_token == "r2"
    on_disk = CredentialStore(tmp_path / "config" / "credentials.json").load(fake.url)
    assert on_disk is not None
    assert on_disk.refresh_token == "r2"
    assert on_disk.access_token == "a1"


async def test_refresh_is_single_flight_under_concurrency(fake: Fake, tmp_path: Path) -> None:
    _auth_routes(fake, refresh_delay=0.05)
    await fake.start()
    expired = stored(fake, session(expires_in=-10))
    async with fake.client(tmp_path, credentials=expired) as client:
        answers = await asyncio.gather(*(client.whoami() for _ in range(20)))
    assert {a.username for a in answers} == {"ada"}
    assert fake.count("POST", "/auth/refresh") == 1


async def test_token_refreshed_shortly_before_expiry(fake: Fake, tmp_path: Path) -> None:
    _auth_routes(fake)
    await fake.start()
    async with fake.client(tmp_path, credentials=stored(fake, session(expires_in=30))) as client:
        await client.whoami()
    # Refreshed up front (30 s left < 60 s margin), so no request was ever rejected.
    assert fake.calls == [("POST", "/auth/refresh"), ("GET", "/auth/whoami")]


async def test_rotation_by_another_process_is_adopted_not_reused(
    fake: Fake, tmp_path: Path
) -> None:
    state = _auth_routes(fake)
    await fake.start()
    async with fake.client(tmp_path, credentials=stored(fake, session())) as client:
        # Another process refreshes: the server and the file move on to a1/r2.
        state["valid"], state["refresh"] = "a1", "r2"
        store = CredentialStore(tmp_path / "config" / "credentials.json")
        store.save(
            Credentials(server=fake.url, access_token="a1", refresh_token="r2", expires_at=1e10)
        )
        assert (await client.whoami()).username == "ada"
    assert fake.count("POST", "/auth/refresh") == 0


async def test_failed_refresh_says_how_to_log_in(fake: Fake, tmp_path: Path) -> None:
    state = _auth_routes(fake)
    await fake.start()
    state["refresh"] = "something-else"
    state["valid"] = "nope"
    async with fake.client(tmp_path, credentials=stored(fake, session())) as client:
        with pytest.raises(AuthError, match="meshfs login"):
            await client.whoami()


async def test_fixed_token_401_is_final(fake: Fake, tmp_path: Path) -> None:
    _auth_routes(fake)
    await fake.start()
    async with fake.client(tmp_path, token="wrong") as client:
        with pytest.raises(AuthError):
            await client.whoami()
        assert not isinstance(client._t.auth, StoredSession)
    assert fake.count("POST", "/auth/refresh") == 0


async def test_not_logged_in_error_names_login(fake: Fake, tmp_path: Path) -> None:
    _auth_routes(fake)
    await fake.start()
    async with fake.client(tmp_path) as client:
        with pytest.raises(AuthError, match="not logged in"):
            await client.whoami()
