"""Shared helpers for benchmarks: start a real server process, log in, time things.

Benchmarks print figures and ratios against baselines measured in the same run; they are not
pass/fail tests. On a 2-core machine client, server and storage share the CPU: read medians.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def _server_command() -> list[str]:
    exe = shutil.which("meshfs-server")
    return [exe] if exe else [sys.executable, "-m", "meshfs_server"]


@contextlib.contextmanager
def running_server(extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """``meshfs-server serve`` on a free port with a temporary data dir, signed in."""
    data_dir = Path(tempfile.mkdtemp(prefix="meshfs-bench-", dir=os.environ.get("BENCH_DIR")))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_DATA_DIR": str(data_dir), "MESHFS_BIND_ADDR": f"127.0.0.1:{port}"}
    env |= {"MESHFS_DEV_AUTO_APPROVE": "true", "MESHFS_LOG_LEVEL": "warning"}
    env |= {"MESHFS_RATE_LIMIT_PER_MINUTE": "100000000"}
    env |= extra_env or {}
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([*_server_command(), "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded 2-core machine starts workers slowly
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "server.log").read_text())
            time.sleep(0.05)
        start = httpx.post(f"{url}/auth/device/start", json={"client_name": "bench"}).json()
        token = httpx.post(
            f"{url}/auth/device/poll", json={"device_code": start["device_code"]}
        ).json()["access_token"]
        yield Server(url, token, data_dir, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def report(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"  {name:<46} {value:>10.1f} {unit:<8} {note}", flush=True)
