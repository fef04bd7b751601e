"""Test helpers shared by the meshfs-client tests (a scriptable HTTP fake)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from meshfs_client import MeshFSClient, RetryPolicy, Settings
from meshfs_client._credentials import Credentials, CredentialStore

# --- a scriptable fake server (unit tests of client behaviour at the HTTP boundary) ----------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fake:
    """An aiohttp app whose routes each test defines; records every request it sees."""

    app: web.Application = field(
        default_factory=lambda: web.Application(client_max_size=64 * 1024 * 1024)
    )
    calls: list[tuple[str, str]] = field(default_factory=list)
    server: TestServer | None = None

    async def start(self) -> None:
        """Start serving (after the routes are defined)."""
        self.server = TestServer(self.app, host="127.0.0.1")
        await self.server.start_server()

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def recorded(request: web.Request) -> web.StreamResponse:
            self.calls.append((request.method, request.path))
            return await handler(request)

        self.app.router.add_route(method, path, recorded)

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call == (method, path))

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def client(
        self,
        tmp_path: Path,
        *,
        token: str | None = None,
        credentials: Credentials | None = None,
        **options: Any,
    ) -> MeshFSClient:
        """A client for this fake with its own config dir (and optionally a stored session)."""
        settings = Settings(server=self.url, config_dir=tmp_path / "config")
        if credentials is not None:
            CredentialStore(settings.credentials_path).save(credentials)
        options.setdefault("retry", RetryPolicy(attempts=5, initial=0.001, maximum=0.01))
        return MeshFSClient(self.url, token=token, settings=settings, **options)


def envelope(status: int, code: str, message: str = "", **headers: str) -> web.Response:
    """An error answer in the MeshFS envelope."""
    return web.json_response(
        {"error": code, "error_description": message or code}, status=status, headers=headers
    )
