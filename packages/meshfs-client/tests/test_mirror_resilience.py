"""The mirror under failure: a sync process killed mid-transfer, and the server going away."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from meshfs_client_testkit import (
    Account,
    LiveServer,
    device_login,
    free_port,
    server_command,
    wait_healthy,
)
from mirror_testkit import local_tree, remote_tree, running_mirrors, sync_process, wait_for

from meshfs_client import MeshFSClient

pytestmark = pytest.mark.live

BIG = 128 * 1024 * 1024


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_killed_mid_download_resumes_and_never_shows_a_partial_file(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    data = os.urandom(BIG)
    digest = hashlib.sha256(data).hexdigest()
    await client.upload("/big.bin", data)
    target, state = tmp_path / "a", tmp_path / "state"
    final = target / "big.bin"
    seen_partial: list[int] = []

    def check_final() -> bool:
        """The file at its final name is complete whenever it exists."""
        try:
            size = final.stat().st_size
        except FileNotFoundError:
            return False
        if size != BIG:
            seen_partial.append(size)
        return size == BIG

    process = sync_process(account, target, state, log=tmp_path / "sync1.log")
    try:

        async def temp_growing() -> bool:
            check_final()
            temps = list(target.glob(".big.bin.*.meshfs-tmp")) if target.exists() else []
            return any(t.stat().st_size > 0 for t in temps if t.exists())

        await wait_for(temp_growing, deadline=60, what="the download to start")
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        _stop(process)
    assert not final.exists(), "the download finished before it could be interrupted"
    process = sync_process(account, target, state, log=tmp_path / "sync2.log")
    try:

        async def complete() -> bool:
            return check_final()

        await wait_for(complete, deadline=120, what="the download after a restart")
        assert hashlib.sha256(final.read_bytes()).hexdigest() == digest

        async def temps_gone() -> bool:
            return not list(target.glob("*.meshfs-tmp")) and not list(target.glob(".*.meshfs-tmp"))

        await wait_for(temps_gone, deadline=30, what="temporary files cleaned up")
    finally:
        _stop(process)
    assert not seen_partial, f"partial content visible at the final name: sizes {seen_partial}"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A server of this test's own, which the test may stop and start again (same port)."""
    command = server_command()
    if command is None:
        pytest.fail("meshfs-server is not installed: install it beside meshfs-client to test")
    port = free_port()
    data_dir = tmp_path / "server-data"
    log_path = tmp_path / "server.log"
    server = LiveServer(
        f"http://127.0.0.1:{port}",
        data_dir,
        log_path,
        command,
        _launch(command, port, data_dir, log_path),
    )
    wait_healthy(server)
    try:
        yield server
    finally:
        _stop(server.process)


def _launch(
    command: list[str], port: int, data_dir: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*command, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )


async def test_server_restart_during_sync_converges_after(
    own_server: LiveServer, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    account = await device_login(own_server, tmp_path / "config", f"u{suffix}", f"t{suffix}")
    a, b = tmp_path / "a", tmp_path / "b"
    async with account.client() as client, running_mirrors(account, [a, b], tmp_path / "st"):
        a.mkdir(exist_ok=True)
        (a / "before.txt").write_bytes(b"before")

        async def converged() -> bool:
            try:
                remote = await remote_tree(client)
            except Exception:
                return False
            return local_tree(a) == local_tree(b) == remote

        await wait_for(converged, deadline=60, what="first sync")
        _stop(own_server.process)  # network loss: the server is gone
        (a / "offline-a.txt").write_bytes(b"written while the server was down (a)")
        (b / "offline-b.txt").write_bytes(b"written while the server was down (b)")
        (b / "before.txt").write_bytes(b"edited while down")
        port = int(own_server.url.rsplit(":", 1)[1])
        own_server.process = _launch(
            own_server.command, port, own_server.data_dir, own_server.log_path
        )
        wait_healthy(own_server)
        await wait_for(converged, deadline=90, what="convergence after the server came back")
        tree = local_tree(a)
        assert tree["/offline-a.txt"].startswith(b"written")  # type: ignore[union-attr]
        assert tree["/offline-b.txt"].startswith(b"written")  # type: ignore[union-attr]
        assert tree["/before.txt"] == b"edited while down"
