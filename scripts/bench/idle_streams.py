"""Idle change streams: what 10,000 open subscribers cost one server process, and how fast one
write reaches them all.

Starts its own ``meshfs-server`` (embedded default) on a free loopback port with the open-stream
limits raised, measures its idle RSS, then opens ``--count`` subscribers of one tenant
(WebSocket ``/sync/ws`` and, in a second server, SSE ``/sync/stream``) as a client library
would (aiohttp; WebSockets offer permessage-deflate), spread over ``--receivers`` processes so
the generator's own decoding of every message does not queue behind one event loop. Prints:
  * how long they took to open, the server's RSS with all of them idle and the cost of each
    (RSS growth / count; goal < 80 KiB)
  * for ``--writes`` single small writes: the time from sending the write to each subscriber
    receiving its event, p50/p99/max (goal p99 <= 1 s) and how many received it

Bounded in count (``--count``, at most 12,000) and time (every phase has a deadline). The
generator raises its open-file limit to the hard limit (the server inherits it; its own limit is
printed). Client and server share the machine's cores: the latency includes the generator's
own decoding of every message, so each write also prints the server's CPU per subscriber (which
the load does not inflate) and the receiving processes' CPU.

Usage: python scripts/bench/idle_streams.py [--count 10000] [--writes 3] [--kinds ws,sse]
       [--receivers N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.connection import Connection
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


def _retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


async def open_all(
    session: aiohttp.ClientSession,
    server: Server,
    kind: str,
    count: int,
    concurrency: int = OPEN_CONCURRENCY,
) -> tuple[list[Subscriber], list[asyncio.Task[None]], float]:
    follow = follow_ws if kind == "ws" else follow_sse
    gate = asyncio.Semaphore(concurrency)
    subs = [Subscriber() for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    failed: list[str] = []
    start = time.monotonic()

    async def one(sub: Subscriber) -> None:
        async with gate:
            task = asyncio.create_task(follow(session, server, sub))
            task.add_done_callback(_retrieved)  # one past the open deadline ends quietly
            tasks.append(task)
            ready = asyncio.create_task(sub.ready.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():  # the stream ended before it was ready: count it, say why
                ready.cancel()
                failed.append(repr(task.exception()) if not task.cancelled() else "cancelled")

    try:
        async with asyncio.timeout(OPEN_DEADLINE):
            await asyncio.gather(*(one(sub) for sub in subs))
    except TimeoutError:  # bounded in time: go on with those that opened
        print(f"  only some subscribers opened within {OPEN_DEADLINE:.0f} s", flush=True)
    if failed:
        print(f"  {len(failed)} subscribers failed to open (first: {failed[0]})", flush=True)
    ready = [sub for sub in subs if sub.ready.is_set()]
    return ready, tasks, time.monotonic() - start


def receiver(
    kind: str, url: str, token: str, count: int, concurrency: int, conn: Connection
) -> None:
    """A receiving process: open *count* subscribers (*concurrency* handshakes at a time), then
    answer the coordinator's commands (``("expect", path, deadline)`` -> arrival times and
    misses; ``("stop",)``)."""
    asyncio.run(_receive(kind, url, token, count, concurrency, conn))


async def _receive(
    kind: str, url: str, token: str, count: int, concurrency: int, conn: Connection
) -> None:
    server = Server(url, token, Path(), None)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        subs, tasks, _ = await open_all(session, server, kind, count, concurrency)
        conn.send(len(subs))
        try:
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command[0] != "expect":
                    return
                _, path, deadline = command
                cpu = time.process_time()
                for sub in subs:
                    try:
                        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                            while path not in sub.seen:
                                await sub.arrived.wait()
                                sub.arrived.clear()
                    except TimeoutError:
                        break
                seen = [sub.seen[path] for sub in subs if path in sub.seen]
                conn.send((seen, len(subs) - len(seen), time.process_time() - cpu))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Receivers:
    """Several receiving processes, so the load generator's own decoding of every message is
    spread over processes rather than queued behind one event loop."""

    def __init__(self, kind: str, server: Server, count: int, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        # The handshakes in flight stay within the server's listen backlog, whatever the count
        # of processes.
        concurrency = max(1, OPEN_CONCURRENCY // processes)
        self.pipes: list[Connection] = []
        self.processes = []
        for share in shares:
            ours, theirs = context.Pipe()
            process = context.Process(
                target=receiver,
                args=(kind, server.url, server.token, share, concurrency, theirs),
                daemon=True,
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    def opened(self) -> int:
        deadline = time.monotonic() + OPEN_DEADLINE + 30
        total = 0
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise SystemExit("a receiving process did not report within the open deadline")
            total += pipe.recv()
        return total

    def expect(self, path: str, deadline: float) -> tuple[list[float], int, float]:
        """Arrival times of *path* at every subscriber, misses and the receivers' CPU."""
        for pipe in self.pipes:
            pipe.send(("expect", path, deadline))
        arrivals: list[float] = []
        missed = 0
        cpu = 0.0
        for pipe in self.pipes:
            if not pipe.poll(DELIVERY_DEADLINE + 30):
                raise SystemExit("a receiving process did not answer")
            seen, lost, used = pipe.recv()
            arrivals += seen
            missed += lost
            cpu += used
        return arrivals, missed, cpu

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.kill()


async def one_write(
    session: aiohttp.ClientSession, server: Server, receivers: Receivers, path: str
) -> tuple[list[float], int, float]:
    """Latencies (ms) from sending a write of *path* to each subscriber seeing it, the misses
    and the receiving processes' CPU seconds."""
    headers = {"Authorization": f"Bearer {server.token}"}
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
    async with session.put(
        f"{server.url}/files/content", params={"path": path}, data=b"fan-out", headers=headers
    ) as response:
        response.raise_for_status()
    loop = asyncio.get_running_loop()
    arrivals, missed, cpu = await loop.run_in_executor(
        None, receivers.expect, path, start + DELIVERY_DEADLINE
    )
    return [(seen - start) * 1000 for seen in arrivals], missed, cpu


async def run_kind(kind: str, count: int, writes: int, processes: int) -> None:
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
            start = time.monotonic()
            receivers = Receivers(kind, server, count, processes)
            try:
                count = await asyncio.get_running_loop().run_in_executor(None, receivers.opened)
                took = time.monotonic() - start
                cpu = cpu_seconds(pid) - cpu
                report(
                    f"{label}: open {count} subscribers",
                    took,
                    "s",
                    f"{count / took:.0f}/s from {processes} processes; "
                    f"server CPU {cpu * 1e6 / count:.0f} us each",
                )
                held = rss_kib(pid)
                per = (held - idle) / count
                report(f"{label}: server RSS with {count} idle", held / KiB, "MiB")
                verdict = "ok" if per < 80 else "OVER"
                report(f"{label}: RSS per subscriber", per, "KiB", f"(goal < 80) {verdict}")
                for n in range(writes):
                    cpu = cpu_seconds(pid)
                    latencies, missed, used = await one_write(
                        session, server, receivers, f"/fan-out-{n}.txt"
                    )
                    cpu = cpu_seconds(pid) - cpu
                    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                    verdict = "ok" if p99 <= 1000 and not missed else "OVER"
                    report(
                        f"{label}: write {n + 1} reached {len(latencies)}/{count}",
                        p99,
                        "ms p99",
                        f"p50 {p50:.0f} ms, max {max(latencies):.0f} ms (goal p99 <= 1000) "
                        f"{verdict}; server CPU {cpu * 1000:.0f} ms "
                        f"({cpu * 1e6 / count:.1f} us per subscriber), "
                        f"receivers' CPU {used * 1000:.0f} ms",
                    )
                report(f"{label}: server RSS after the writes", rss_kib(pid) / KiB, "MiB")
            finally:
                receivers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help=f"at most {MAX_COUNT}")
    parser.add_argument("--writes", type=int, default=3)
    parser.add_argument("--kinds", default="ws,sse", help="comma-separated: ws, sse")
    parser.add_argument(
        "--receivers",
        type=int,
        default=max(2, os.cpu_count() or 2),
        help="receiving processes the subscribers are spread over (default: one per core, >= 2)",
    )
    args = parser.parse_args()
    count = min(args.count, MAX_COUNT)
    limit = raise_fd_limit(count + 200)
    print(f"Idle change streams: {count} subscribers of one tenant (generator fd limit {limit})")
    print(f"  {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")
    for kind in args.kinds.split(","):
        asyncio.run(run_kind(kind.strip(), count, args.writes, max(1, args.receivers)))


if __name__ == "__main__":
    main()
