"""Shared fixtures: a real app on temporary storage, driven through a real ASGI client.

``TokenTable`` stands in for identity at the authentication port so namespace tests do not
depend on the device flow; identity has its own tests with real tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    tokens = TokenTable()
    tenant = new_id()
    token = tokens.add(Actor(tenant_id=tenant, user_id=new_id(), device_name="pytest"))
    app = create_app(settings, authenticate=tokens.authenticate, background=False)
    async with LifespanManager(app) as manager:
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
