"""Integration fixtures: real processes on real sockets, started the way a user starts them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class ServerProcess:
    """``scripts/serve.sh`` (the README's command) as a child process."""

    data_dir: Path
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [str(ROOT / "scripts" / "serve.sh"), "--bind", f"127.0.0.1:{self.port}",
                   "--data-dir", str(self.data_dir)]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 120, "the server's /healthz")  # first run may sync the venv

    def stop(self) -> int:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM:\n{self.log()}") from None
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def approve(self, user_code: str, user: str, tenant: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "meshfs_server", "approve", user_code, "--user", user,
             "--tenant", tenant, "--data-dir", str(self.data_dir)],
            check=True, env=self.env, capture_output=True,
        )  # fmt: skip

    def login(self, user: str = "alice", tenant: str = "acme") -> str:
        """The real device flow: start, approve from the command line, poll."""
        start = httpx.post(f"{self.url}/auth/device/start", json={"client_name": "pytest"}).json()
        self.approve(start["user_code"], user, tenant)
        answer = httpx.post(
            f"{self.url}/auth/device/poll", json={"device_code": start["device_code"]}
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    proc = ServerProcess(tmp_path / "data", free_port(), tmp_path / "server.log", env)
    proc.start()
    try:
        yield proc
    finally:
        if proc.process is not None:
            proc.stop()
        assert "Traceback" not in proc.log(), proc.log()
