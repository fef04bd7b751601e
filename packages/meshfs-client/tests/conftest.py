"""Fixtures: a scriptable in-process HTTP fake, and a REAL meshfs-server subprocess.

The real server is started once per session on a free port with a temporary data directory,
polled on /healthz with a deadline, and stopped by pid at the end. Each test that needs a
session gets its own user and tenant, logged in through the real device flow (start -> approve
with `meshfs-server approve` -> poll). A traceback in the server log fails the test that
produced it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from meshfs_client_testkit import (
    Account,
    Fake,
    LiveServer,
    device_login,
    free_port,
    server_command,
    wait_healthy,
)

from meshfs_client import MeshFSClient


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    """Define routes first (``fake.route``), then ``await fake.start()``."""
    instance = Fake()
    yield instance
    if instance.server is not None:
        await instance.server.close()


# --- the real server --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def live_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    command = server_command()
    if command is None:  # the nox session installs it; a test run without it proves nothing
        pytest.fail("meshfs-server is not installed: install it beside meshfs-client to test")
    root = tmp_path_factory.mktemp("meshfs-server")
    data_dir = root / "data"
    log_path = root / "server.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    # Suites like fsspec's abstract tests send hundreds of requests a second from one tenant;
    # the default per-tenant budget (1,200/min) would turn them into 429-and-retry crawls.
    env["MESHFS_RATE_LIMIT_PER_MINUTE"] = "1000000"
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
        wait_healthy(server)
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


@pytest.fixture
async def account(live_server: LiveServer, tmp_path: Path) -> Account:
    """A fresh user in a fresh tenant, logged in."""
    suffix = uuid.uuid4().hex[:10]
    return await device_login(live_server, tmp_path / "config", f"u{suffix}", f"t{suffix}")


@pytest.fixture
async def client(account: Account) -> AsyncIterator[MeshFSClient]:
    async with account.client() as opened:
        yield opened
