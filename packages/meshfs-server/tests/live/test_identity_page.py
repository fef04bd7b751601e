"""The device approval page, driven by headless Chromium against a real server socket."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import cli_env
from meshfs_server_wait import wait_for_server

from meshfs_server.app import create_app
from meshfs_server.cli import main
from meshfs_server.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PASSWORD = "correct horse battery"


@dataclass
class Server:
    url: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def server(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[Server]:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    settings = Settings(data_dir=data, public_url=url, bind=f"127.0.0.1:{port}", **backend)
    created = await asyncio.to_thread(
        CliRunner().invoke, main,
        ["admin", "create-user", "alice", "--password-stdin", "--tenant", "acme",
         "--data-dir", str(data)],
        input=PASSWORD + "\n", env=cli_env(settings),
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    config = Config()
    config.bind = [settings.bind]
    config.accesslog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(create_app(settings, background=False), config,
                                     shutdown_trigger=stop.wait, mode="asgi"))  # fmt: skip
    await wait_for_server(url, task=task)
    try:
        yield Server(url, data)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs chromium and chromedriver (scripts/bootstrap.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="meshfs-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    # An element looked up right after a click may belong to the page still loading: find
    # waits for it (a deadline, not a sleep).
    driver.implicitly_wait(10)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _sign_in(driver: Any, url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()


def _approve_in_browser(driver: Any, start: dict[str, Any], decision: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    seen: dict[str, str] = {}
    driver.get(start["verification_uri_complete"])
    seen["prefilled"] = driver.find_element(By.ID, "user_code").get_attribute("value")
    _sign_in(driver, start["verification_uri_complete"], "alice", "wrong password")
    seen["wrong"] = driver.find_element(By.ID, "error").text
    _sign_in(driver, start["verification_uri_complete"], "alice", PASSWORD)
    seen["client"] = driver.find_element(By.ID, "client-name").text
    seen["tenant"] = driver.find_element(By.ID, "tenant").text
    driver.find_element(By.ID, decision).click()
    seen["result"] = driver.find_element(By.ID, "result").text
    return seen


async def _start(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    reply = await client.post("/auth/device/start", json={"client_name": name})
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


async def test_person_approves_a_device_in_the_browser(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        start = await _start(client, "build-agent on ci-42")
        assert start["verification_uri"] == f"{server.url}/device"
        seen = await asyncio.to_thread(_approve_in_browser, browser, start, "approve")
        tokens = await client.post("/auth/device/poll", json={"device_code": start["device_code"]})
        assert tokens.status_code == 200, tokens.text
        me = await client.get(
            "/auth/whoami", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}
        )
    assert seen["prefilled"] == start["user_code"]
    assert "Wrong username or password" in seen["wrong"]
    assert seen["client"] == "build-agent on ci-42"
    assert "acme" in seen["tenant"]
    assert seen["result"].startswith("Approved")
    assert (me.json()["username"], me.json()["tenant_name"]) == ("alice", "acme")


async def test_person_denies_a_device_in_the_browser(server: Server, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        start = await _start(client, "unknown laptop")
        seen = await asyncio.to_thread(_approve_in_browser, browser, start, "deny")
        polled = await client.post("/auth/device/poll", json={"device_code": start["device_code"]})
    assert seen["result"].startswith("Denied")
    assert polled.json()["error"] == "access_denied"


async def test_forms_without_the_csrf_cookie_are_refused(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        start = await _start(client, "laptop")
        page = await client.get("/device")
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        token = client.cookies.get("meshfs_csrf")
        form = {"user_code": start["user_code"], "username": "alice", "password": PASSWORD}
        # A forged cross-site post carries no cookie-matching token.
        client.cookies.clear()
        forged = await client.post("/device", data={**form, "csrf": token or ""})
        assert forged.status_code == 403
        # With the page's cookie but from another origin: refused too.
        client.cookies.set("meshfs_csrf", token or "", domain="127.0.0.1")
        cross = await client.post(
            "/device",
            data={**form, "csrf": token or ""},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        ok = await client.post("/device", data={**form, "csrf": token or ""})
        assert ok.status_code == 200
        assert "laptop" in ok.text
        polled = await client.post("/auth/device/poll", json={"device_code": start["device_code"]})
    assert polled.json()["error"] == "authorization_pending"  # nothing approved by the forgeries
