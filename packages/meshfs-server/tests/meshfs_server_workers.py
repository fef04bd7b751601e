"""A real ``meshfs-server serve --workers N`` process for tests, and which worker holds a
connection (read from /proc: the worker whose socket is the server end of it)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
from meshfs_server_live import RawConnection
from meshfs_server_wait import wait_until

from meshfs_server.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_env(overrides: dict[str, Any]) -> dict[str, str]:
    """``MESHFS_*`` variables for Settings field *overrides* (a backend fixture's value)."""
    names = {f.name: f.metadata["env"] for f in fields(Settings)}
    env = {}
    for key, value in overrides.items():
        env[names[key]] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


@dataclass
class WorkersServer:
    """``meshfs-server serve --workers N`` on a loopback port, signed in as ``dev``."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    token: str = ""

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def console(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        """The pids of the worker processes running now."""
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == self.process.pid:
                found.add(int(entry))
        return found

    def worker_of(self, client_port: int) -> int | None:
        """The worker serving the connection whose client end is 127.0.0.1:*client_port*."""
        inode = None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, remote = parts[1], parts[2]
                if (
                    int(local.rpartition(":")[2], 16) == self.port
                    and int(remote.rpartition(":")[2], 16) == client_port
                ):
                    inode = parts[9]
        if inode is None:
            return None
        for pid in self.workers():
            try:
                links = [
                    os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                ]
            except OSError:
                continue
            if f"socket:[{inode}]" in links:
                return pid
        return None

    async def wait_for_workers(self, count: int) -> set[int]:
        """Wait until *count* workers run and each answers (a connection reaches it)."""
        await wait_until(lambda: len(self.workers()) == count, f"{count} workers", within=60)
        answering: set[int] = set()

        async def all_answer() -> bool:
            conn = await RawConnection.open(self.url)
            try:
                await conn.request("GET", "/healthz")
                if (await conn.response()).status != 200:
                    return False
                pid = self.worker_of(conn.writer.get_extra_info("sockname")[1])
                if pid is not None:
                    answering.add(pid)
            finally:
                await conn.close()
            return answering >= self.workers() and len(answering) >= count

        await wait_until(all_answer, f"each of {count} workers answering", within=60)
        return self.workers()

    async def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, 15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return await asyncio.to_thread(self.process.wait)


@asynccontextmanager
async def workers_server(
    tmp_path: Path, count: int = 2, backend: dict[str, Any] | None = None, **env: str
) -> AsyncIterator[WorkersServer]:
    """Start ``meshfs-server serve --workers count`` (dev auto-approve), sign in, yield it;
    stop it (and every worker) at the end."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    base |= settings_env(backend or {}) | {"MESHFS_LOG_LEVEL": "warning"} | env
    log_path = tmp_path / f"server-{port}.log"
    command = [
        sys.executable, "-m", "meshfs_server", "serve", "--workers", str(count),
        "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
        "--dev-auto-approve",
    ]  # fmt: skip

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            return subprocess.Popen(command, env=base, stdout=log, stderr=subprocess.STDOUT)

    process = await asyncio.to_thread(start)
    server = WorkersServer(f"http://127.0.0.1:{port}", port, process, log_path)
    try:

        async def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{server.console()}")
            try:
                async with httpx.AsyncClient() as probe:
                    return (await probe.get(f"{server.url}/healthz", timeout=1)).status_code == 200
            except httpx.TransportError:
                return False

        # Two workers importing the server at once on a busy 2-core machine: give them time.
        await wait_until(healthy, "the server's /healthz", within=120)
        async with httpx.AsyncClient(base_url=server.url) as http:
            started = (await http.post("/auth/device/start", json={"client_name": "t"})).json()
            polled = await http.post(
                "/auth/device/poll", json={"device_code": started["device_code"]}
            )
            server.token = polled.json()["access_token"]
        yield server
    finally:
        running = server.workers()
        await server.stop()
        for pid in running:  # never leave a worker behind, whatever happened
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
