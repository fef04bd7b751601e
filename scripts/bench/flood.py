"""Flood benchmark: a small unauthenticated flood must not grow the server or starve others.

Starts its own ``meshfs-server`` on a free loopback port (embedded default), measures its idle
RSS and a legitimate client's request latency, then for ``--seconds`` (at most 20) floods it
from loopback with:
  * oversized bodies: a declared 200 MB JSON body to /auth/device/start and /files/mkdir
    (the server should answer 413 before reading), chunked bodies without a length (counted,
    413 at the cap), and 4 MiB upload parts with no token (401, drained);
  * stream connections: WebSocket and SSE attempts with no token or a bad one, and one signed-in
    token opening far more WebSockets than it may hold;
while the legitimate client keeps listing and writing. Prints idle RSS, peak RSS during the
flood (and its difference to idle; the goal is under 50 MiB), the legitimate requests'
latency before and during the flood (p50/p99, and the ratio), and what the flood was answered.

Usage: python scripts/bench/flood.py [--seconds 15] [--attackers 24]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, percentile, report, running_server

MiB = 1024 * 1024
BLOCK = b"x" * MiB
MAX_SECONDS = 20.0
HOG_LIMIT = 300  # WebSockets one token tries to hold


def rss_mib(pid: int) -> float:
    """Resident set size of *pid* in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Tally:
    """What the flood's requests were answered."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, what: str) -> None:
        self.counts[what] += 1


async def _status_of(reader: asyncio.StreamReader) -> str:
    line = await asyncio.wait_for(reader.readline(), 10)
    parts = line.split()
    return parts[1].decode() if len(parts) > 1 else "closed"


async def raw_body(url: str, head: str, body_bytes: int, tally: Tally, label: str) -> None:
    """Send *head*, then up to *body_bytes* of body while the answer has not come (an early
    answer gets a moment to arrive first, as a client that waits for 100-continue would)."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = asyncio.create_task(_status_of(reader))
    try:
        writer.write(head.encode())
        await asyncio.wait({answer}, timeout=0.1)
        sent = 0
        while sent < body_bytes and not answer.done():
            piece = BLOCK[: min(MiB, body_bytes - sent)]
            writer.write(piece if "chunked" not in head else b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            sent += len(piece)
        tally.add(f"{label} -> {await answer}")
    except (ConnectionError, TimeoutError):
        tally.add(f"{label} -> connection closed")
    finally:
        if not answer.done():
            answer.cancel()
        with contextlib.suppress(BaseException):
            await answer
        writer.close()


async def attacker(server: Server, deadline: float, tally: Tally, bad_token: str) -> None:
    url = server.url
    ws_url = url.replace("http", "ws")
    kinds = [
        ("declared 200 MB /auth/device/start",
         "POST /auth/device/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         f"Content-Length: {200 * MiB}\r\n\r\n", 200 * MiB),
        ("declared 200 MB /files/mkdir",
         "POST /files/mkdir HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         f"Content-Length: {200 * MiB}\r\n\r\n", 200 * MiB),
        ("chunked 64 MB /auth/device/start",
         "POST /auth/device/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\n", 64 * MiB),
        ("4 MiB part, no token",
         "PUT /files/upload/part?upload_id=x&index=0 HTTP/1.1\r\nHost: x\r\n"
         f"Content-Length: {4 * MiB}\r\n\r\n", 4 * MiB),
    ]  # fmt: skip
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        turn = 0
        while time.monotonic() < deadline:
            turn += 1
            label, head, size = kinds[turn % len(kinds)]
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await raw_body(url, head, size, tally, label)
            except TimeoutError:  # the flood ends whatever the server does
                tally.add(f"{label} -> still sending at the end")
                return
            for token in ("", bad_token):
                try:
                    async with session.ws_connect(f"{ws_url}/sync/ws?access_token={token}"):
                        tally.add("websocket -> accepted")
                except aiohttp.WSServerHandshakeError as exc:
                    tally.add(f"websocket {'bad token' if token else 'no token'} -> {exc.status}")
                except aiohttp.ClientError:
                    tally.add("websocket -> connection error")
            async with session.get(f"{url}/sync/stream") as sse:
                tally.add(f"SSE no token -> {sse.status}")


async def token_hog(server: Server, token: str, deadline: float, tally: Tally) -> None:
    """One signed-in token opening WebSockets as fast as it can, keeping those it gets."""
    held: list[aiohttp.ClientWebSocketResponse] = []
    url = f"{server.url.replace('http', 'ws')}/sync/ws?access_token={token}"
    async with aiohttp.ClientSession() as session:
        try:
            while time.monotonic() < deadline and len(held) < HOG_LIMIT:
                try:
                    held.append(await session.ws_connect(url))
                    tally.add("token's WebSocket -> accepted")
                except aiohttp.WSServerHandshakeError as exc:
                    tally.add(f"token's WebSocket -> {exc.status}")
                    await asyncio.sleep(0.02)
        finally:
            await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)


async def legitimate(server: Server, until: float, latencies: list[float], errors: Tally) -> None:
    """A tenant's ordinary work: list the root, write a small file, in turn."""
    headers = {"Authorization": f"Bearer {server.token}"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        i = 0
        while time.monotonic() < until:
            i += 1
            start = time.perf_counter()
            if i % 2:
                response = await session.get(f"{server.url}/files/list", params={"path": "/"})
            else:
                response = await session.put(
                    f"{server.url}/files/content", params={"path": f"/legit/{i}"}, data=b"hello"
                )
            await response.read()
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status >= 300:
                errors.add(str(response.status))
            await asyncio.sleep(0.01)


async def sample_rss(pid: int, until: float, peak: list[float]) -> None:
    while time.monotonic() < until:
        peak[0] = max(peak[0], rss_mib(pid))
        await asyncio.sleep(0.02)


async def second_token(server: Server) -> str:
    async with aiohttp.ClientSession() as session:
        start = await (
            await session.post(f"{server.url}/auth/device/start", json={"client_name": "hog"})
        ).json()
        polled = await session.post(
            f"{server.url}/auth/device/poll", json={"device_code": start["device_code"]}
        )
        token: str = (await polled.json())["access_token"]
        return token


async def run(server: Server, seconds: float, attackers: int) -> None:
    pid = server.process.pid
    hog = await second_token(server)
    warm: list[float] = []
    await legitimate(server, time.monotonic() + 1.0, warm, Tally())
    idle_latency: list[float] = []
    quiet = Tally()
    await legitimate(server, time.monotonic() + 2.0, idle_latency, quiet)
    idle = rss_mib(pid)
    report("server RSS idle", idle, "MiB")

    deadline = time.monotonic() + seconds
    flood = Tally()
    busy_latency: list[float] = []
    busy = Tally()
    peak = [idle]
    await asyncio.gather(
        sample_rss(pid, deadline, peak),
        legitimate(server, deadline, busy_latency, busy),
        token_hog(server, hog, deadline, flood),
        *(attacker(server, deadline, flood, bad_token=hog[:-4] + "AAAA") for _ in range(attackers)),
    )
    after = rss_mib(pid)

    report("server RSS peak during the flood", peak[0], "MiB")
    growth = peak[0] - idle
    report("peak - idle", growth, "MiB", "(goal < 50)" + (" ok" if growth < 50 else " OVER"))
    report("server RSS after the flood", after, "MiB")
    for label, values in (("before", idle_latency), ("during", busy_latency)):
        report(f"legitimate request p50 {label} the flood", percentile(values, 50), "ms")
        report(f"legitimate request p99 {label} the flood", percentile(values, 99), "ms")
    report(
        "p50 during / before",
        percentile(busy_latency, 50) / max(percentile(idle_latency, 50), 1e-6),
        "x",
    )
    report("legitimate requests during the flood", len(busy_latency), "")
    report("legitimate requests failed during the flood", sum(busy.counts.values()), "")
    print("  flood answered:", flush=True)
    for what, count in sorted(flood.counts.items()):
        print(f"    {count:>7}  {what}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="flood length (at most 20)")
    parser.add_argument("--attackers", type=int, default=24, help="concurrent flooding clients")
    args = parser.parse_args()
    seconds = min(args.seconds, MAX_SECONDS)
    with running_server({"MESHFS_LOG_LEVEL": "error"}) as server:
        asyncio.run(run(server, seconds, args.attackers))


if __name__ == "__main__":
    main()
