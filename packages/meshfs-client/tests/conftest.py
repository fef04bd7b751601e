"""Fixtures: a scriptable in-process HTTP fake, and a REAL meshfs-server subprocess.

The real server is started once per session on a free port with a temporary data directory,
polled on /healthz with a deadline, and stopped by pid at the end. Each test that needs a
session gets its own user and tenant, logged in through the real device flow (start -> approve
with `meshfs-server approve` -> poll). A traceback in the server log fails the test that
produced it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Fake

from meshfs_client import MeshFSClient, Settings


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    """Define routes first (``fake.route``), then ``await fake.start()``."""
    instance = Fake()
    yield instance
    if instance.server is not None:
        await instance.server.close()


# --- the real server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command() -> list[str] | None:
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


def _wait_healthy(server: LiveServer, deadline_s: float = 30.0) -> None:
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


@pytest.fixture(scope="session")
def live_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    command = _server_command()
    if command is None:
        pytest.skip("meshfs-server is not installed in this environment")
    root = tmp_path_factory.mktemp("meshfs-server")
    data_dir = root / "data"
    log_path = root / "server.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *command,
                "serve",
                "--bind",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, log_path, command, process)
    try:
        _wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    tail = server.log_text()
    if "Traceback" in tail[server.log_checked :]:
        pytest.fail(f"server log shows a traceback during shutdown:\n{tail[server.log_checked :]}")


@pytest.fixture
def live_server(live_server_process: LiveServer) -> Iterator[LiveServer]:
    """The session's server; the test fails if the server logged a traceback meanwhile."""
    live_server_process.new_tracebacks()
    yield live_server_process
    problem = live_server_process.new_tracebacks()
    if problem:
        pytest.fail(f"server log shows a traceback:\n{problem}")


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


@pytest.fixture
async def account(live_server: LiveServer, tmp_path: Path) -> Account:
    """A fresh user in a fresh tenant, logged in."""
    suffix = uuid.uuid4().hex[:10]
    return await device_login(live_server, tmp_path / "config", f"u{suffix}", f"t{suffix}")


@pytest.fixture
async def client(account: Account) -> AsyncIterator[MeshFSClient]:
    async with account.client() as opened:
        yield opened
