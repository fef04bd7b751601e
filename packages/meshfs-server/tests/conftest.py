"""Shared fixtures: a real app on temporary storage, driven through a real ASGI client.

``TokenTable`` stands in for identity at the authentication port so namespace tests do not
depend on the device flow; identity has its own tests with real tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import meshfs_server_backends
import pytest
from asgi_lifespan import LifespanManager
from meshfs_server_backends import STARTUP_SECONDS
from meshfs_server_wait import wait_for_server
from starlette.requests import HTTPConnection

from meshfs_common.errors import AuthError
from meshfs_common.ids import new_id
from meshfs_server.app import create_app
from meshfs_server.domain.actor import Actor
from meshfs_server.services import Services
from meshfs_server.settings import Settings


@dataclass
class TokenTable:
    """Bearer token -> Actor, for tests."""

    actors: dict[str, Actor] = field(default_factory=dict)

    def add(self, actor: Actor) -> str:
        token = f"t-{new_id()}"
        self.actors[token] = actor
        return token

    async def authenticate(self, conn: HTTPConnection) -> Actor:
        header = conn.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() or conn.query_params.get("access_token", "")
        actor = self.actors.get(token)
        if actor is None:
            raise AuthError("missing or unknown bearer token")
        return actor


@dataclass
class Harness:
    client: httpx.AsyncClient
    services: Services
    tokens: TokenTable
    tenant_id: str
    settings: Settings

    def as_other_tenant(self) -> httpx.AsyncClient:
        token = self.tokens.add(Actor(tenant_id=new_id(), user_id=new_id()))
        return httpx.AsyncClient(
            transport=self.client._transport,
            base_url="http://meshfs.test",
            headers={"Authorization": f"Bearer {token}"},
        )


# Postgres + SeaweedFS for the session, and the backend each test runs on.
production = meshfs_server_backends.production
backend = meshfs_server_backends.backend
private_postgres = meshfs_server_backends.private_postgres
private_seaweed = meshfs_server_backends.private_seaweed


@pytest.fixture
def settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    """Run on each backend (see meshfs_server_backends: SQLite + local dir, Postgres + S3)."""
    return Settings(data_dir=tmp_path / "data", gc_grace_seconds=0, **backend)


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    tokens = TokenTable()
    tenant = new_id()
    token = tokens.add(Actor(tenant_id=tenant, user_id=new_id(), device_name="pytest"))
    app = create_app(settings, authenticate=tokens.authenticate, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://meshfs.test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield Harness(client, app.state.services, tokens, tenant, settings)


@pytest.fixture
def client(harness: Harness) -> httpx.AsyncClient:
    return harness.client


@dataclass
class LiveServer:
    """The app served by hypercorn on a real loopback socket."""

    url: str
    token: str
    harness: Harness


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def live(harness: Harness) -> AsyncIterator[LiveServer]:
    import asyncio

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    started = harness.client._transport.app  # type: ignore[attr-defined]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # already started by the harness: acknowledge only
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await started(scope, receive, send)

    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait, mode="asgi"))
    url = f"http://127.0.0.1:{port}"
    await wait_for_server(url, task=task)
    token = harness.client.headers["Authorization"].removeprefix("Bearer ")
    try:
        yield LiveServer(url, token, harness)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# --- identity: the real Identity with real tokens (appended by the identity work) -------------


@dataclass
class AuthHarness:
    """An app with real identity: device logins, JWTs, sessions, roles."""

    app: Any
    transport: httpx.ASGITransport
    client: httpx.AsyncClient
    services: Services
    settings: Settings

    def client_for(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        """A client on the same app, with *token* as its bearer (or anonymous)."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(
            transport=self.transport, base_url="http://meshfs.test", headers=headers
        )

    async def login(
        self, username: str = "alice", *, tenant: str | None = None, role: str = "owner",
        client_name: str = "pytest",
    ) -> Any:  # fmt: skip
        """A full device login approved for *username* (created as needed); the TokenResponse."""
        import time

        from meshfs_common.models import TokenResponse, decode
        from meshfs_server.auth.service import approve_for_account

        started = await self.client.post("/auth/device/start", json={"client_name": client_name})
        assert started.status_code == 200, started.text
        user_code = started.json()["user_code"]
        async with self.services.identity.db.write() as conn:
            await approve_for_account(
                conn,
                user_code,
                username,
                tenant,
                role,
                approve=True,
                now=time.time(),
                via="test",
            )
        polled = await self.client.post(
            "/auth/device/poll", json={"device_code": started.json()["device_code"]}
        )
        assert polled.status_code == 200, polled.text
        return decode(polled.content, TokenResponse)


@pytest.fixture
def auth_settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    """Identity on each backend: SQLite, or Postgres (identity's tables, keys and rate buckets
    then live in Postgres too)."""
    return Settings(data_dir=tmp_path / "auth-data", gc_grace_seconds=0, **backend)


def cli_env(settings: Settings) -> dict[str, str | None]:
    """The environment for a ``meshfs-server`` command on the database *settings* use."""
    return {"MESHFS_DATABASE_URL": settings.database_url}


@pytest.fixture
async def auth(auth_settings: Settings) -> AsyncIterator[AuthHarness]:
    app = create_app(auth_settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as client:
            yield AuthHarness(app, transport, client, app.state.services, auth_settings)
