"""POSIX attribute changes per second from one client against a real ``meshfs-server`` process.

Measures, with one ``MeshFSClient`` on the embedded default (SQLite + local content dir):

  * chmod (``POST /files/attributes`` with a mode), one request at a time and 8 in flight
  * utimens (mtime and atime), one request at a time and 8 in flight
  * the baseline in the same run: stat (``GET /files/meta``), one at a time, which reads the
    same node without writing - the ratio shows what the atomic, durable, feed-recorded change
    costs over a read

Each change is a durable metadata commit with its own feed event (no content version). Target:
>= 1,000 changes/s from one client. Figures are medians of --runs runs; not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, median, report, running_server

from meshfs_client import MeshFSClient

FILES = 64  # changes rotate over this many files (one directory)


async def rate(count: int, parallel: int, change: Callable[[int], Awaitable[object]]) -> float:
    """Changes per second for *count* changes, *parallel* in flight."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await change(i)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(parallel):
            tasks.create_task(worker())
    return count / (time.perf_counter() - start)


async def measure(server: Server, count: int, runs: int) -> None:
    async with MeshFSClient(server.url, token=server.token) as client:
        for i in range(FILES):
            await client.upload(f"/bench/f{i:02d}", b"x")

        def chmod(i: int) -> Awaitable[object]:
            # Alternate the mode so every request is a real change (a no-op is not recorded).
            return client.chmod(f"/bench/f{i % FILES:02d}", 0o600 if (i // FILES) % 2 else 0o640)

        def utimens(i: int) -> Awaitable[object]:
            return client.utime(f"/bench/f{i % FILES:02d}", mtime_ns=1_000 + i, atime_ns=i)

        def stat(i: int) -> Awaitable[object]:
            return client.meta(f"/bench/f{i % FILES:02d}")

        results: dict[str, list[float]] = {}
        cases = [
            ("stat, 1 in flight (baseline)", stat, 1),
            ("chmod, 1 in flight", chmod, 1),
            ("utimens, 1 in flight", utimens, 1),
            ("chmod, 8 in flight", chmod, 8),
            ("utimens, 8 in flight", utimens, 8),
        ]
        for _ in range(runs):
            for name, change, parallel in cases:
                results.setdefault(name, []).append(await rate(count, parallel, change))
        baseline = median(results[cases[0][0]])
        for name, _, _ in cases:
            value = median(results[name])
            note = "" if name == cases[0][0] else f"ratio to stat {value / baseline:.2f}"
            report(name, value, "ops/s", note)
        changes = await client.set_attributes("/bench/f00", mode=0o644)
        assert changes.mode == 0o644


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="changes per measurement")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    print("MeshFS POSIX attribute benchmark (embedded server: SQLite + local content dir)")
    print(f"  {os.cpu_count()} cores; load average at start {load[0]:.2f} {load[1]:.2f}")
    print(f"  {args.count} operations per measurement, medians of {args.runs} runs")
    with running_server() as server:
        await measure(server, args.count, args.runs)
    load = os.getloadavg()
    print(f"  load average at end {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
