"""POSIX attribute changes per second from one client against a real ``meshfs-server`` process.

Measures, with one ``MeshFSClient`` on the embedded default (SQLite + local content dir):

  * chmod (``POST /files/attributes`` with a mode), one request at a time and 8 in flight
  * utimens (mtime and atime), one request at a time and 8 in flight
  * the baseline in the same run: stat (``GET /files/meta``), one at a time, which reads the
    same node without writing - the ratio shows what the atomic, durable, feed-recorded change
    costs over a read

Each change is a durable metadata commit with its own feed event (no content version). Target:
>= 1,000 changes/s from one client. Besides requests/s (which a loaded machine bounds), the
server process's CPU time per request is printed: it does not depend on what else runs, and
1 / (CPU per request) is what one server core could answer. Figures are medians of --runs runs;
not a pass/fail test.
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


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of process *pid* and its descendants (the server's
    workers), from Linux /proc."""
    parents: dict[str, str] = {}
    times: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(entry.name)) is not None:
            parents[entry.name] = fields[1]
            times[entry.name] = int(fields[11]) + int(fields[12])
    family, grew = {str(pid)}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family}
        grew = not more <= family
        family |= more
    return sum(times.get(p, 0) for p in family) / os.sysconf("SC_CLK_TCK")


async def rate(
    server: Server, count: int, parallel: int, change: Callable[[int], Awaitable[object]]
) -> tuple[float, float]:
    """Changes per second for *count* changes, *parallel* in flight, and the server's CPU
    seconds per change."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await change(i)

    cpu = cpu_seconds(server.process.pid)
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(parallel):
            tasks.create_task(worker())
    elapsed = time.perf_counter() - start
    return count / elapsed, (cpu_seconds(server.process.pid) - cpu) / count


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
        cpu: dict[str, list[float]] = {}
        cases = [
            ("stat, 1 in flight (baseline)", stat, 1),
            ("chmod, 1 in flight", chmod, 1),
            ("utimens, 1 in flight", utimens, 1),
            ("chmod, 8 in flight", chmod, 8),
            ("utimens, 8 in flight", utimens, 8),
        ]
        for _ in range(runs):
            for name, change, parallel in cases:
                ops, per_op = await rate(server, count, parallel, change)
                results.setdefault(name, []).append(ops)
                cpu.setdefault(name, []).append(per_op)
        baseline = median(results[cases[0][0]])
        for name, _, _ in cases:
            value = median(results[name])
            note = f"server CPU {median(cpu[name]) * 1e6:.0f} us/request"
            if name != cases[0][0]:
                note += f", ratio to stat {value / baseline:.2f}"
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
