"""Worker processes benchmark: MeshFS at 1 and N workers beside a hello-world ceiling.

Measures, in one run, on the same server configuration (hypercorn, uvloop, keep-alive 75 s,
no access log) and the same load generator (wrk when installed, 1 thread, 8 connections; else
an aiohttp loop at concurrency 8):
  * a hello-world Starlette app: requests/s at 1 and N workers (the ceiling), asked for ``/``
    and asked MeshFS's own stats request (the same path, query string and bearer token, which
    the HTTP stack parses for hello-world too)
  * MeshFS ``GET /files/meta`` (stats/s) and its ratio to the ceiling (target >= 0.8x, and
    >= 3,000/s)
  * MeshFS ``PUT /files/content`` of 1 KiB (small writes/s; target >= 1,500/s)
  * commit -> WebSocket event on another worker, p50/p99 (target p99 <= 20 ms), while a
    stats load runs, on the embedded default and (when Postgres is available) on Postgres + S3

Rounds alternate hello-world and MeshFS so that a machine busy with other work costs both
alike; medians are printed. Beside requests/s each line gives the server's CPU time per
request (user + system, every process of the server, from /proc): on a machine shared with
other work that figure, and the ratio of hello-world's to MeshFS's ("on a dedicated CPU"),
hold steadier than requests/s.

Usage: python scripts/bench/workers.py [--workers N] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "packages" / "meshfs-server" / "tests"))

from _harness import Server, free_port, median, percentile, report, running_server  # noqa: E402
from meshfs_server_live import RawConnection  # noqa: E402
from meshfs_server_workers import WorkersServer  # noqa: E402

CONNECTIONS = 8
HELLO_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/{path:path}", hello)])
"""
# Each file gets content of its own (a new file's content is new to the server: the same
# bytes every time would be stored once and measure only the metadata commit).
WRITE_SCRIPT = """
counter = 0
wrk.method = "PUT"
request = function()
  counter = counter + 1
  local body = ("%s-" .. counter .. " " .. string.rep("x", 1024)):sub(1, 1024)
  return wrk.format(nil, "/files/content?path=/bench-%s/f" .. counter, nil, body)
end
"""


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process *root* and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        parent[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo += [child for child, ppid in parent.items() if ppid == pid]
    return total


@contextlib.contextmanager
def hello_server(workers: int) -> Iterator[tuple[str, int]]:
    """The hello-world app on hypercorn with *workers* processes; yields its URL and pid."""
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-hello-"))
    (work / "hello.py").write_text(HELLO_APP)
    port = free_port()
    command = [sys.executable, "-m", "hypercorn", "-k", "uvloop", "-w", str(workers),
               "--keep-alive", "75", "-b", f"127.0.0.1:{port}", "hello:app"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the hello-world server did not start")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


class Measured:
    """Requests/s of one load run, and the server's CPU microseconds per request."""

    def __init__(self, rate: float, cpu_us: float) -> None:
        self.rate = rate
        self.cpu_us = cpu_us


def measure(
    pid: int, url: str, seconds: float, token: str | None = None, script: str | None = None
) -> Measured:
    """:func:`wrk_rate` with the CPU time the server (*pid* and its children) spent."""
    before = tree_cpu(pid)
    rate = wrk_rate(url, seconds, token, script)
    spent = tree_cpu(pid) - before
    return Measured(rate, spent / (rate * seconds) * 1e6 if rate else float("inf"))


def wrk_rate(
    url: str, seconds: float, token: str | None = None, script: str | None = None
) -> float:
    """Requests/s answered 2xx, by wrk (or aiohttp when wrk is not installed)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if shutil.which("wrk") is None:
        return asyncio.run(_aiohttp_rate(url, seconds, headers, script is not None))
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        if script:
            lua.write(script)
    try:
        if script:
            args += ["-s", lua.name]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    return rate * (total - errors) / total if total else 0.0


async def _aiohttp_rate(url: str, seconds: float, headers: dict[str, str], write: bool) -> float:
    done = 0
    stop = time.monotonic() + seconds
    prefix = f"bench-{time.monotonic_ns()}"

    async def worker(n: int) -> None:
        nonlocal done
        i = 0
        async with aiohttp.ClientSession(headers=headers) as http:
            while time.monotonic() < stop:
                i += 1
                if write:
                    target = url.split("/files/")[0] + f"/files/content?path=/{prefix}/{n}-{i}"
                    body = f"{prefix} {n}-{i} ".encode().ljust(1024, b"x")
                    async with http.put(target, data=body) as r:
                        ok = r.status in (200, 201)
                else:
                    async with http.get(url) as r:
                        await r.read()
                        ok = r.status == 200
                done += ok

    await asyncio.gather(*(worker(n) for n in range(CONNECTIONS)))
    return done / seconds


def throughput(workers: int, seconds: float, rounds: int) -> None:
    print(f"{workers} worker(s):", flush=True)
    hello: list[Measured] = []
    same: list[Measured] = []  # hello-world given MeshFS's request (path, query, bearer token)
    stats: list[Measured] = []
    writes: list[Measured] = []
    env = {"MESHFS_WORKERS": str(workers)}
    with hello_server(workers) as (hello_url, hello_pid), running_server(env) as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        httpx.put(f"{server.url}/files/content", params={"path": "/s/f"}, content=b"x" * 1024,
                  headers=headers).raise_for_status()  # fmt: skip
        meta = f"{server.url}/files/meta?path=/s/f"
        pid = server.process.pid
        wrk_rate(hello_url, 1)  # warm both up: first requests, caches, lazily built state
        wrk_rate(meta, 1, server.token)
        for n in range(rounds):
            hello.append(measure(hello_pid, hello_url, seconds))
            same.append(
                measure(hello_pid, f"{hello_url}/files/meta?path=/s/f", seconds, server.token)
            )
            stats.append(measure(pid, meta, seconds, server.token))
            script = WRITE_SCRIPT.replace("%s", f"{workers}-{n}")
            writes.append(
                measure(pid, f"{server.url}/files/content", seconds, server.token, script)
            )
    ceiling = median([m.rate for m in hello])
    stat_rate = median([m.rate for m in stats])
    hello_cpu = median([m.cpu_us for m in hello])
    stat_cpu = median([m.cpu_us for m in stats])
    same_rate = median([m.rate for m in same])
    same_cpu = median([m.cpu_us for m in same])
    report(f"hello-world Starlette on hypercorn, {workers} worker(s)", ceiling, "req/s",
           f"{hello_cpu:.0f} us CPU/request")  # fmt: skip
    report(f"hello-world given the stats request, {workers} worker(s)", same_rate, "req/s",
           f"{same_cpu:.0f} us CPU/request (same path, query and bearer token)")  # fmt: skip
    report(
        f"stats (GET /files/meta), {workers} worker(s)", stat_rate, "stats/s",
        f"{stat_rate / ceiling:.2f}x hello-world, {stat_rate / same_rate:.2f}x given the same"
        f" request; {stat_cpu:.0f} us CPU/request, {hello_cpu / stat_cpu:.2f}x /"
        f" {same_cpu / stat_cpu:.2f}x on a dedicated CPU (targets >= 3000/s, >= 0.8x)",
    )  # fmt: skip
    report(f"small writes (PUT 1 KiB), {workers} worker(s)", median([m.rate for m in writes]),
           "files/s", f"{median([m.cpu_us for m in writes]):.0f} us CPU/request"
           " (target >= 1500)")  # fmt: skip


async def _pinned(workers: WorkersServer, avoid: int | None) -> tuple[RawConnection, int]:
    """A keep-alive connection served by a worker other than *avoid*."""
    for _ in range(100):
        conn = await RawConnection.open(workers.url)
        await conn.request("GET", "/healthz")
        await conn.response()
        owner = workers.worker_of(conn.writer.get_extra_info("sockname")[1])
        if owner is not None and owner != avoid:
            return conn, owner
        await conn.close()
    raise RuntimeError("could not reach another worker")


async def cross_worker_latency(server: Server, samples: int, seconds_of_load: float) -> None:
    """A write through one worker, the event at a WebSocket served by another, under a stats
    load; from the commit (the event's ``at``) and from sending the write."""
    port = int(server.url.rpartition(":")[2])
    workers = WorkersServer(server.url, port, server.process, server.data_dir / "server.log")
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            ws = await http.ws_connect(f"{server.url}/sync/ws",
                                       params={"access_token": server.token})  # fmt: skip
            watcher = workers.worker_of(ws.get_extra_info("sockname")[1])
            if watcher is not None:
                break
            await ws.close()
        while (await ws.receive_json())["type"] != "caught_up":
            pass
        writer, _ = await _pinned(workers, watcher)
        await writer.request("PUT", "/files/content?path=/lat/seed", headers, b"x")
        await writer.response()
        load = asyncio.create_task(asyncio.to_thread(
            wrk_rate, f"{server.url}/files/meta?path=/lat/seed", seconds_of_load, server.token
        ))  # fmt: skip
        from_commit, from_send = [], []
        for i in range(samples):
            sent = time.perf_counter()
            await writer.request("PUT", f"/files/content?path=/lat/{i}", headers, b"ping")
            await writer.response()
            while True:
                message = await ws.receive_json()
                if message["type"] == "event" and message["event"]["path"] == f"/lat/{i}":
                    break
            now = datetime.now().astimezone()
            from_send.append((time.perf_counter() - sent) * 1000)
            at = datetime.fromisoformat(message["event"]["at"].replace("Z", "+00:00"))
            from_commit.append((now - at).total_seconds() * 1000)
        await load
        await writer.close()
        await ws.close()
    report("commit -> WebSocket on another worker, p50", percentile(from_commit, 50), "ms")
    report("commit -> WebSocket on another worker, p99", percentile(from_commit, 99), "ms",
           "(target <= 20)")  # fmt: skip
    report("write sent -> WebSocket on another worker, p99", percentile(from_send, 99), "ms")


def latency_runs(workers: int, samples: int) -> None:
    print(f"cross-worker event latency ({workers} workers, under a stats load):", flush=True)
    load_seconds = 10.0
    with running_server({"MESHFS_WORKERS": str(workers)}) as server:
        print("  embedded default (SQLite + local dir):")
        asyncio.run(cross_worker_latency(server, samples, load_seconds))
    try:
        from backends import production_env
        from meshfs_server_backends import TEST_BUCKET, Postgres, Production, Seaweed
    except ImportError as exc:
        print(f"  Postgres + S3: skipped ({exc})")
        return
    try:
        postgres = Postgres.start(fsync=True)
    except Exception as exc:  # no Postgres on this machine
        print(f"  Postgres + S3: skipped ({exc})")
        return
    seaweed = Seaweed.start()
    try:
        seaweed.create_bucket(TEST_BUCKET)
        prod = Production(postgres, seaweed)
        env = production_env(prod, postgres.database_dsn("postgres"))
        with running_server(env | {"MESHFS_WORKERS": str(workers)}) as server:
            print("  Postgres + S3:")
            asyncio.run(cross_worker_latency(server, samples, load_seconds))
    except RuntimeError as exc:  # the server did not come up in time (a very busy machine)
        print(f"  Postgres + S3: no figures, the server did not start: {str(exc)[-300:]}")
    finally:
        seaweed.stop()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    tool = "wrk -t1 -c8" if shutil.which("wrk") else "aiohttp, concurrency 8 (wrk not installed)"
    print(f"MeshFS worker processes benchmark (load: {tool})")
    for count in sorted({1, max(1, args.workers)}):
        throughput(count, args.seconds, args.rounds)
    latency_runs(max(2, args.workers), args.latency_samples)


if __name__ == "__main__":
    main()
