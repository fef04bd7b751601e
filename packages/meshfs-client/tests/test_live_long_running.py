"""Long-running commands through a server outage: the `meshfs sync` status line on a terminal
(scanning, live, offline - retrying in Ns, recovered; details in --log) and `meshfs watch`."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from meshfs_client_testkit import (
    Account,
    LiveServer,
    device_login,
    launch_server,
    own_server,
    stop_server,
    wait_healthy,
)

from meshfs_client.cli._sync_status import phase, status_line
from meshfs_client.mirror import SyncStatus
from meshfs_common.hashing import CHUNK_SIZE

MESHFS = str(Path(sys.executable).with_name("meshfs"))


def test_status_line_states() -> None:
    status = SyncStatus()
    assert phase(status, 100.0) == "scanning"
    status.scanned = True
    status.pending = 3
    assert phase(status, 100.0) == "syncing 3"
    status.pending = 0
    assert phase(status, 100.0) == "live"
    status.offline, status.retry_at = True, 103.2
    assert phase(status, 100.0) == "offline - retrying in 4s"
    status.offline, status.recovered_at = False, 100.0
    assert phase(status, 101.0) == "recovered"
    # What waited during the outage is being sent: the line still says it came back.
    status.pending = 1
    assert phase(status, 101.0) == "recovered - syncing 1"
    assert phase(status, 120.0) == "syncing 1"
    status.pending = 0
    assert phase(status, 120.0) == "live"
    status.errors = 6  # failures counted since the start are history, not a current problem
    assert "failing" not in status_line(status, 120.0)
    status.error_paths["/a.txt"] = "forbidden"
    assert "1 failing" in status_line(status, 120.0)


class Terminal:
    """A command run on a pseudo-terminal (as a person runs it); its screen output collected."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self._master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                block = os.read(self._master, 4096)
            except OSError:
                return
            if not block:
                return
            self._chunks.append(block)

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace")

    def lines(self) -> list[str]:
        """Each state the screen showed (status line redraws split on carriage returns)."""
        return [part.strip() for part in self.text.replace("\n", "\r").split("\r") if part.strip()]

    def wait_for(self, check: Callable[[], bool], what: str, deadline: float = 60) -> None:
        end = time.monotonic() + deadline
        while not check():
            if self.process.poll() is not None:
                pytest.fail(f"exited ({self.process.returncode}) before {what}:\n{self.text}")
            if time.monotonic() > end:
                pytest.fail(f"no {what} within {deadline}s:\n{self.lines()[-20:]}")
            time.sleep(0.05)  # a poll interval, not a synchronisation sleep

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.close(self._master)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with own_server(tmp_path) as started:
        yield started


def _restart(server: LiveServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    server.process = launch_server(server.command, port, server.data_dir, server.log_path)
    wait_healthy(server)


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _account(server: LiveServer, tmp_path: Path) -> Account:
    suffix = uuid.uuid4().hex[:8]
    return await device_login(server, tmp_path / "config", f"u{suffix}", f"t{suffix}")


@pytest.mark.live
async def test_sync_status_line_goes_offline_and_recovers(
    server: LiveServer, tmp_path: Path
) -> None:
    account = await _account(server, tmp_path)
    target, log = tmp_path / "mirror", tmp_path / "sync.log"
    target.mkdir()
    (target / "before.txt").write_text("before")
    argv = [MESHFS, "sync", "--target", str(target), "--state-dir", str(tmp_path / "state")]
    screen = Terminal([*argv, "--log", str(log)], account.env())
    try:
        # Live after the first pass, without waiting for a change to happen.
        screen.wait_for(lambda: "meshfs sync: live" in screen.text, "live after the first pass")
        assert any(line.startswith("meshfs sync: scanning") for line in screen.lines())

        stop_server(server)
        (target / "offline.txt").write_text("written while the server was away")
        screen.wait_for(
            lambda: "meshfs sync: offline - retrying in " in screen.text, "the offline state"
        )
        _restart(server)
        screen.wait_for(lambda: "meshfs sync: recovered" in screen.text, "recovery")

        async with account.client() as client:
            deadline = time.monotonic() + 60
            while not await client.exists("/offline.txt"):
                assert time.monotonic() < deadline, screen.lines()[-10:]
                await asyncio.sleep(0.05)  # a poll interval
        screen.wait_for(
            lambda: screen.lines()[-1].startswith(
                ("meshfs sync: live |", "meshfs sync: recovered |")
            ),
            "the line to settle after recovery",
        )
        last = screen.lines()[-1]
        assert "failing" not in last, last  # the outage left no errors behind
        assert "up 2" in last
        # A clean screen: no exception text, only status lines.
        assert "Error" not in screen.text
        assert "Traceback" not in screen.text
        events = [json.loads(line) for line in log.read_text().splitlines()]
        kinds = [e["event"] for e in events]
        assert "offline" in kinds
        assert "recovered" in kinds
        assert kinds.index("offline") < kinds.index("recovered")
        assert "error" not in kinds
        offline = next(e for e in events if e["event"] == "offline")
        assert offline["detail"]  # the cause is in the log, not on the screen
    finally:
        screen.stop()


@pytest.mark.live
async def test_watch_says_when_it_is_offline_and_back(server: LiveServer, tmp_path: Path) -> None:
    account = await _account(server, tmp_path)
    watch = _start([MESHFS, "watch", "--no-websocket"], account.env())
    collected: dict[str, list[str]] = {"out": [], "err": []}

    def pump(stream: object, key: str) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            collected[key].append(raw.decode())

    assert watch.stdout is not None
    assert watch.stderr is not None
    readers = [
        threading.Thread(target=pump, args=(watch.stdout, "out"), daemon=True),
        threading.Thread(target=pump, args=(watch.stderr, "err"), daemon=True),
    ]
    for reader in readers:
        reader.start()

    def wait_for(key: str, snippet: str) -> None:
        end = time.monotonic() + 60
        while not any(snippet in line for line in collected[key]):
            assert watch.poll() is None, collected
            assert time.monotonic() < end, (snippet, collected)
            time.sleep(0.05)  # a poll interval

    try:
        wait_for("err", "watching ")
        stop_server(server)
        wait_for("err", "offline - retrying in ")
        _restart(server)
        wait_for("err", "recovered: watching again")
        async with account.client() as client:
            await client.upload("/after.txt", b"after the outage")
        wait_for("out", "/after.txt")
    finally:
        watch.terminate()
        watch.wait(timeout=15)


@pytest.mark.live
async def test_put_r_progress_bar_says_rate_limited(tmp_path: Path) -> None:
    # 30 requests a minute: a burst of 30, then one request every 2 s (Retry-After: 2).
    with own_server(tmp_path, {"MESHFS_RATE_LIMIT_PER_MINUTE": "30"}) as limited:
        account = await _account(limited, tmp_path)
        tree = tmp_path / "photos"
        tree.mkdir()
        # Files over a chunk go one by one, in 4 requests each (small ones go many at once).
        for n in range(10):
            (tree / f"p{n:02}.jpg").write_bytes(bytes([n]) * (CHUNK_SIZE + 64 * 1024))
        screen = Terminal([MESHFS, "put", "-r", str(tree), "/photos"], account.env())
        try:
            screen.wait_for(lambda: "uploaded 10 files" in screen.text, "the upload to finish")
            assert "photos  rate limited, waiting 2s" in screen.text  # on the bar itself
            assert screen.process.wait(timeout=15) == 0
        finally:
            screen.stop()
