"""Idle change streams: what 10,000 open subscribers cost one server process, and how fast one
write reaches them all.

Starts its own ``meshfs-server`` (embedded default) on a free loopback port with the open-stream
limits raised, measures its idle RSS, then opens ``--count`` subscribers of one tenant
(WebSocket ``/sync/ws`` and, in a second server, SSE ``/sync/stream``) from this process, as a
client library would (aiohttp; WebSockets offer permessage-deflate). Prints:
  * how long they took to open, the server's RSS with all of them idle and the cost of each
    (RSS growth / count; goal < 80 KiB)
  * for ``--writes`` single small writes: the time from sending the write to each subscriber
    receiving its event, p50/p99/max (goal p99 <= 1 s) and how many received it

Bounded in count (``--count``, at most 12,000) and time (every phase has a deadline). The
generator raises its open-file limit to the hard limit (the server inherits it; its own limit is
printed). Client and server share the machine's cores: the latency includes the generator's
own decoding of every message.

Usage: python scripts/bench/idle_streams.py [--count 10000] [--writes 3] [--kinds ws,sse]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, percentile, report, running_server

MAX_COUNT = 12_000
OPEN_CONCURRENCY = 64
OPEN_DEADLINE = 300.0
DELIVERY_DEADLINE = 30.0
KiB = 1024


def rss_kib(pid: int) -> int:
    """Resident set size of *pid* in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time *pid* has used (Linux): a figure the machine's load does not
    inflate, unlike latencies."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_file_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return " / ".join(line.split()[3:5])
    return "unknown"


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise SystemExit(f"open-file hard limit {hard} is below the {needed} this run needs")
    return hard


class Subscriber:
    """One open stream, and when it saw each write's event (by path)."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.seen: dict[str, float] = {}
        self.arrived = asyncio.Event()

    def got(self, path: str | None) -> None:
        if path is not None:
            self.seen[path] = time.monotonic()
            self.arrived.set()


async def follow_ws(session: aiohttp.ClientSession, server: Server, sub: Subscriber) -> None:
    url = f"{server.url.replace('http', 'ws')}/sync/ws"
    async with session.ws_connect(url, headers={"Authorization": f"Bearer {server.token}"}) as ws:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                return
            body = json.loads(message.data)
            if body["type"] == "caught_up":
                sub.ready.set()
            elif body["type"] == "event":
                sub.got(body["event"].get("path"))


async def follow_sse(session: aiohttp.ClientSession, server: Server, sub: Subscriber) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with session.get(f"{server.url}/sync/stream", headers=headers) as response:
        response.raise_for_status()
        kind = ""
        async for raw in response.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"event: "):
                kind = line[7:].decode()
            elif line.startswith(b"data: "):
                if kind == "caught_up":
                    sub.ready.set()
                elif kind == "change":
                    sub.got(json.loads(line[6:]).get("path"))


async def open_all(
    session: aiohttp.ClientSession, server: Server, kind: str, count: int
) -> tuple[list[Subscriber], list[asyncio.Task[None]], float]:
    follow = follow_ws if kind == "ws" else follow_sse
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    subs = [Subscriber() for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()

    async def one(sub: Subscriber) -> None:
        async with gate:
            task = asyncio.create_task(follow(session, server, sub))
            tasks.append(task)
            ready = asyncio.create_task(sub.ready.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                task.result()  # the stream ended before it was ready: say why

    try:
        async with asyncio.timeout(OPEN_DEADLINE):
            await asyncio.gather(*(one(sub) for sub in subs))
    except TimeoutError:  # bounded in time: go on with those that opened
        print(f"  only some subscribers opened within {OPEN_DEADLINE:.0f} s", flush=True)
    ready = [sub for sub in subs if sub.ready.is_set()]
    return ready, tasks, time.monotonic() - start


async def one_write(
    session: aiohttp.ClientSession, server: Server, subs: list[Subscriber], path: str
) -> tuple[list[float], int]:
    """Latencies (ms) from sending a write of *path* to each subscriber seeing it."""
    for sub in subs:
        sub.arrived.clear()
    headers = {"Authorization": f"Bearer {server.token}"}
    start = time.monotonic()
    async with session.put(
        f"{server.url}/files/content", params={"path": path}, data=b"fan-out", headers=headers
    ) as response:
        response.raise_for_status()
    deadline = start + DELIVERY_DEADLINE
    for sub in subs:
        if path not in sub.seen:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    while path not in sub.seen:
                        await sub.arrived.wait()
                        sub.arrived.clear()
            except TimeoutError:
                break
    latencies = [(sub.seen[path] - start) * 1000 for sub in subs if path in sub.seen]
    return latencies, len(subs) - len(latencies)


async def run_kind(kind: str, count: int, writes: int) -> None:
    label = "WebSocket" if kind == "ws" else "SSE"
    limits = {
        "MESHFS_MAX_STREAMS_PER_TOKEN": str(count + 100),
        "MESHFS_MAX_STREAMS_PER_TENANT": str(count + 100),
        "MESHFS_LOG_LEVEL": "error",
        "MESHFS_ACCESS_LOG": "false",
        "MESHFS_WORKERS": "1",  # one server process holds them all
    }
    with running_server(limits) as server:
        pid = server.process.pid
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            # One stream opened and closed first, so the idle figure includes what any first
            # stream loads (code paths, caches), not only the server at rest.
            _, warm_tasks, _ = await open_all(session, server, kind, 1)
            for task in warm_tasks:
                task.cancel()
            await asyncio.gather(*warm_tasks, return_exceptions=True)
            idle = rss_kib(pid)
            print(f"  {label}: server open-file limit {open_file_limit(pid)}", flush=True)
            report(f"{label}: server RSS idle", idle / KiB, "MiB")
            cpu = cpu_seconds(pid)
            subs, tasks, took = await open_all(session, server, kind, count)
            cpu = cpu_seconds(pid) - cpu
            count = len(subs)
            report(
                f"{label}: open {count} subscribers",
                took,
                "s",
                f"{count / took:.0f}/s; server CPU {cpu * 1e6 / count:.0f} us each",
            )
            held = rss_kib(pid)
            per = (held - idle) / count
            report(f"{label}: server RSS with {count} idle", held / KiB, "MiB")
            verdict = "ok" if per < 80 else "OVER"
            report(f"{label}: RSS per subscriber", per, "KiB", f"(goal < 80) {verdict}")
            try:
                for n in range(writes):
                    cpu = cpu_seconds(pid)
                    latencies, missed = await one_write(session, server, subs, f"/fan-out-{n}.txt")
                    cpu = cpu_seconds(pid) - cpu
                    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                    verdict = "ok" if p99 <= 1000 and not missed else "OVER"
                    report(
                        f"{label}: write {n + 1} reached {len(latencies)}/{count}",
                        p99,
                        "ms p99",
                        f"p50 {p50:.0f} ms, max {max(latencies):.0f} ms (goal p99 <= 1000) "
                        f"{verdict}; server CPU {cpu * 1000:.0f} ms",
                    )
                report(f"{label}: server RSS after the writes", rss_kib(pid) / KiB, "MiB")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help=f"at most {MAX_COUNT}")
    parser.add_argument("--writes", type=int, default=3)
    parser.add_argument("--kinds", default="ws,sse", help="comma-separated: ws, sse")
    args = parser.parse_args()
    count = min(args.count, MAX_COUNT)
    limit = raise_fd_limit(count + 200)
    print(f"Idle change streams: {count} subscribers of one tenant (generator fd limit {limit})")
    print(f"  {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")
    for kind in args.kinds.split(","):
        asyncio.run(run_kind(kind.strip(), count, args.writes))


if __name__ == "__main__":
    main()
