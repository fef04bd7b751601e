"""What the server console says: an access log without secrets, sign-ins, approvals, 429s,
and (through a real ``meshfs-server serve`` process) the dev auto-approve warning and a
shutdown within a second of Ctrl-C that closes open streams with 1001 "going away"."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from conftest import AuthHarness
from meshfs_server_wait import wait_until_sync

from meshfs_server.http.requestlog import request_target
from meshfs_server.settings import Settings


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_access_log_names_each_request_and_hides_secrets(
    auth: AuthHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = (await auth.login("alice")).access_token
    async with auth.client_for(token) as alice:
        listed = await alice.get("/files/list", params={"path": "/"})
        assert listed.status_code == 200
        await alice.get("/files/meta", params={"path": "/nope", "access_token": "leaked-secret"})
        await alice.get("/files/nope%1b[2J%1b]0;pwned%07")  # the server decodes them
    access = _lines(caplog, "meshfs_server.access")
    assert any('"GET /files/list?path=%2F" 200' in line for line in access), access
    assert any("access_token=[hidden]" in line and " 404 " in line for line in access), access
    assert any('"POST /auth/device/poll" 200' in line for line in access), access
    everything = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("meshfs_server")
    )
    assert "/files/nope\\x1b[2J\\x1b]0;pwned\\x07" in everything
    assert token not in everything
    assert "leaked-secret" not in everything
    assert "\x1b" not in everything
    assert "\x07" not in everything


def test_request_target_hides_secret_parameters() -> None:
    scope = {
        "type": "websocket",
        "path": "/sync/ws",
        "query_string": b"cursor=7&access_token=eyJ.secret&refresh_token=r&user_code=ABCD-EFGH",
    }
    assert request_target(scope) == (
        "WS /sync/ws?cursor=7&access_token=[hidden]&refresh_token=[hidden]&user_code=[hidden]"
    )


async def test_sign_ins_and_approvals_are_logged(
    auth: AuthHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    owner = (await auth.login("alice", tenant="acme")).access_token
    assert any(
        line.startswith("signed in: user alice in tenant acme as device")
        for line in _lines(caplog, "meshfs_server.identity")
    ), caplog.text
    started = await auth.client.post("/auth/device/start", json={"client_name": "bob's\x1blaptop"})
    code = started.json()["user_code"]
    async with auth.client_for(owner) as alice:
        approved = await alice.post("/auth/device/activate", json={"user_code": code})
        assert approved.status_code == 200, approved.text
    assert any(
        line.startswith(
            f'device login {code} approved: "bob\'slaptop" for user alice in tenant acme'
        )
        for line in _lines(caplog, "meshfs_server.identity")
    ), caplog.text


@pytest.fixture
def auth_settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    """A tenant budget small enough to run out of in a test."""
    return Settings(data_dir=tmp_path / "auth-data", rate_limit_per_minute=5, **backend)


async def test_rate_limited_requests_are_warned_about(
    auth: AuthHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await auth.login("alice", tenant="acme", client_name="laptop")).access_token
    caplog.set_level(logging.INFO)
    async with auth.client_for(token) as alice:
        for _ in range(100):
            answer = await alice.get("/files/list", params={"path": "/"})
            if answer.status_code == 429:
                break
        assert answer.status_code == 429
    [warning] = [r for r in caplog.records if r.name == "meshfs_server.ratelimit"]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert message.startswith(
        'rate limited (429): 127.0.0.1 "GET /files/list?path=%2F" for user '
    ), message
    assert "(laptop) of tenant" in message
    assert f"retry after {answer.headers['Retry-After']} s" in message


# --- a real server process ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until_sync(check, what, within=timeout)


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


async def test_serve_console_and_prompt_shutdown(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "console.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env["MESHFS_RATE_LIMIT_PER_MINUTE"] = "5"
    command = [sys.executable, "-m", "meshfs_server", "serve", "--bind", f"127.0.0.1:{port}",
               "--data-dir", str(tmp_path / "data"), "--dev-auto-approve"]  # fmt: skip
    process = await asyncio.to_thread(_start, command, env, log_path)

    def console() -> str:
        return log_path.read_text(errors="replace")

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{console()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await asyncio.to_thread(_wait_for, healthy, 60, "the server's /healthz")
        async with aiohttp.ClientSession() as http:
            started = await (await http.post(f"{url}/auth/device/start", json={})).json()
            polled = await http.post(
                f"{url}/auth/device/poll", json={"device_code": started["device_code"]}
            )
            token = (await polled.json())["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            ws = await http.ws_connect(f"{url}/sync/ws", params={"access_token": token})
            hello = json.loads((await ws.receive()).data)
            assert hello["type"] == "hello"
            sse = await http.get(f"{url}/sync/stream", headers=bearer)
            assert (await sse.content.readline()).startswith(b": connected")
            statuses = [(await http.get(f"{url}/auth/whoami", headers=bearer)).status
                        for _ in range(8)]  # fmt: skip
            assert 429 in statuses

            await asyncio.to_thread(
                _wait_for, lambda: "rate limited (429)" in console(), 10, "the 429 warning"
            )
            stopping = time.monotonic()
            process.send_signal(signal.SIGINT)
            closed = await asyncio.wait_for(ws.receive(), 5)
            while closed.type == aiohttp.WSMsgType.TEXT:  # the backlog's caught_up
                closed = await asyncio.wait_for(ws.receive(), 5)
            rest = await asyncio.wait_for(sse.content.read(), 5)  # the stream ends
            code = await asyncio.to_thread(process.wait, 5)
            elapsed = time.monotonic() - stopping
        assert closed.type == aiohttp.WSMsgType.CLOSE
        assert closed.data == 1001  # going away
        assert rest.endswith(b"\n\n")  # ended cleanly, between two events
        assert code == 0
        assert elapsed < 1.0, f"shutdown took {elapsed:.2f}s:\n{console()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = console()
    assert "--dev-auto-approve is ON" in text
    assert "dev auto-approve: approved" in text
    assert "signed in: user dev in tenant dev" in text
    assert '127.0.0.1 "WS /sync/ws?access_token=[hidden]" 101 closed 1001' in text
    assert "MeshFS server stopping: closing" in text
    assert "MeshFS server stopped in" in text
    assert token not in text
    assert "Traceback" not in text


async def test_error_log_lines_show_client_text_safely(caplog: pytest.LogCaptureFixture) -> None:
    from starlette.requests import Request

    from meshfs_common.errors import UnavailableError
    from meshfs_server.http import errors

    scope = {
        "type": "http", "method": "GET", "path": "/files/x\x1b]0;pwned\x07\r\nforged",
        "query_string": b"access_token=leaked-secret", "headers": [],
    }  # fmt: skip
    caplog.set_level(logging.WARNING)
    answer = await errors.on_meshfs_error(Request(scope), UnavailableError("store down"))
    assert answer.status_code == 503
    [line] = [r.getMessage() for r in caplog.records if r.name == "meshfs_server"]
    assert line.startswith("GET /files/x\\x1b]0;pwned\\x07\\r\\nforged?access_token=[hidden]")
    assert not any(c in line for c in "\x1b\x07\r\n")
