"""Extended attributes from one client against a real ``meshfs-server`` process (embedded default).

Measures, in one run, from one ``MeshFSClient``, one request at a time (a single thread's
calls, bound by the latency of each durable commit) and --in-flight at a time (a mount serving
several processes, a script using asyncio; the server's group commit shares fsyncs):
  * setxattr per second (``PUT /files/xattr``: a durable transaction, a ctime, a feed event) -
    the target is >= 1,000/s
  * getxattr per second (``GET /files/xattr``)
  * the baseline: stat per second (``GET /files/meta``) through the same client, and the
    ratio of each to it

Figures are medians of --runs runs; not a pass/fail test. Client, server and disk share the
machine's cores: compare ratios, not absolute numbers.

Usage: python scripts/bench/xattrs.py [--ops 2000] [--runs 3] [--in-flight 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import median, report, running_server

from meshfs_client import MeshFSClient


async def rate(ops: int, one: Callable[[int], Awaitable[object]], in_flight: int = 1) -> float:
    """Operations per second of *ops* calls of *one*, *in_flight* at a time."""
    pending = iter(range(ops))

    async def worker() -> None:
        for i in pending:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return ops / (time.perf_counter() - start)


async def measure(url: str, token: str, ops: int, runs: int, in_flight: int) -> None:
    figures: dict[str, list[float]] = {}
    async with MeshFSClient(url, token=token) as client:
        for run in range(runs):
            path = f"/xattr-{run}.txt"
            await client.upload(path, b"content")

            # Names cycle through 200 (a node holds at most 256): sets create, then replace.
            async def setx(i: int, path: str = path) -> object:
                return await client.setxattr(path, f"user.k{i % 200}", b"v%d" % i)

            async def getx(i: int, path: str = path) -> object:
                return await client.getxattr(path, f"user.k{i % 200}")

            async def stat(i: int, path: str = path) -> object:
                return await client.meta(path)

            for name, one in (("set", setx), ("get", getx), ("stat", stat)):
                figures.setdefault(name, []).append(await rate(ops, one))
                figures.setdefault(f"{name} x{in_flight}", []).append(
                    await rate(ops, one, in_flight)
                )
    base = median(figures["stat"])
    for name, label in (("stat", "stat (GET /files/meta), baseline"),
                        ("set", "setxattr (PUT /files/xattr)"),
                        ("get", "getxattr (GET /files/xattr)")):  # fmt: skip
        one_by_one = median(figures[name])
        report(f"{label}, sequential", one_by_one, "ops/s", f"{one_by_one / base:.2f}x stat")
        many = median(figures[f"{name} x{in_flight}"])
        report(f"{label}, {in_flight} in flight", many, "ops/s", f"{many / one_by_one:.1f}x seq")
    print("  target: setxattr >= 1000/s from one client")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    with running_server() as server:
        print(f"extended attributes, one client, {args.ops} ops x {args.runs} runs")
        asyncio.run(measure(server.url, server.token, args.ops, args.runs, args.in_flight))
    return 0


if __name__ == "__main__":
    sys.exit(main())
