"""Test helpers shared by the meshfs-client tests: a scriptable HTTP fake, a live server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
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


# --- the real server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command() -> list[str] | None:
    exe = Path(sys.executable).with_name("meshfs-server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("meshfs-server")
    return [found] if found else None


@dataclass
class LiveServer:
    """A running meshfs-server process."""

    url: str
    data_dir: Path
    log_path: Path
    command: list[str]
    process: subprocess.Popen[bytes]
    log_checked: int = 0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def approve(self, user_code: str, user: str, tenant: str) -> None:
        """Approve a device login from the command line, as an operator would."""
        done = subprocess.run(
            [
                *self.command,
                "approve",
                user_code,
                "--data-dir",
                str(self.data_dir),
                "--user",
                user,
                "--tenant",
                tenant,
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"meshfs-server approve failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')}"
            )

    def new_tracebacks(self) -> str:
        text = self.log_text()
        fresh = text[self.log_checked :]
        self.log_checked = len(text)
        return fresh if "Traceback" in fresh else ""


def launch_server(
    command: list[str],
    port: int,
    data_dir: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``meshfs-server serve`` (its output appended to *log_path*); see wait_healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= extra_env or {}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*command, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop_server(server: LiveServer) -> None:
    """Stop the server process (SIGTERM, then SIGKILL after 15 s)."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def own_server(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A server of the caller's own (its settings, its data), stopped at the end. Restart it
    on the same port with ``server.process = launch_server(...)`` + ``wait_healthy``."""
    command = server_command()
    if command is None:
        pytest.fail("meshfs-server is not installed: install it beside meshfs-client to test")
    port = free_port()
    data_dir, log_path = root / "server-data", root / "server.log"
    process = launch_server(command, port, data_dir, log_path, extra_env)
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, log_path, command, process)
    try:
        wait_healthy(server)
        yield server
    finally:
        stop_server(server)


def wait_healthy(server: LiveServer, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"meshfs-server exited early:\n{server.log_text()}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)  # a poll interval, not a synchronisation sleep
    pytest.fail(f"meshfs-server did not become healthy in {deadline_s}s:\n{server.log_text()}")


@dataclass
class Account:
    """A logged-in identity on the live server, with its own config dir."""

    server: LiveServer
    user: str
    tenant: str
    config_dir: Path

    @property
    def settings(self) -> Settings:
        return Settings(server=self.server.url, config_dir=self.config_dir)

    def client(self, **options: Any) -> MeshFSClient:
        return MeshFSClient(self.server.url, settings=self.settings, **options)

    def env(self) -> dict[str, str]:
        """Environment for running the `meshfs` CLI as this account."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
        env["MESHFS_SERVER"] = self.server.url
        env["MESHFS_CONFIG_DIR"] = str(self.config_dir)
        return env


async def device_login(server: LiveServer, config_dir: Path, user: str, tenant: str) -> Account:
    """The real device flow: start, approve from the server's CLI, poll, store."""
    settings = Settings(server=server.url, config_dir=config_dir)
    async with MeshFSClient(server.url, settings=settings) as client:
        start = await client.start_device_login("meshfs-client-tests")
        server.approve(start.user_code, user, tenant)
        answer = await client.poll_device_login(start.device_code)
        await client.adopt_tokens(answer)
    return Account(server, user, tenant, config_dir)
