"""Large files: a 1 GiB upload and download through the client library against the durable
local baseline on the same disk, in one run.

Each operation reads 1 GiB cold and writes it durably, so each is compared with the same local
job: ``cp`` of the file followed by ``sync`` of the copy. Before every timed operation the page
cache is dropped (``/proc/sys/vm/drop_caches`` when this process may write it; else
``posix_fadvise(DONTNEED)`` on the source, the server's content and the destination - the line
at the start says which). Prints MiB/s, the ratios (targets: upload >= 0.5x, download >= 0.8x
of the baseline) and the server's and this client's CPU seconds per operation.

The server runs the embedded default (SQLite + local content directory) on the same disk;
``--postgres`` runs a second server on Postgres + SeaweedFS (started by the test kit) as well.

Usage: python scripts/bench/large_files.py [--size-mib 1024] [--runs 3] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import Server, median, report, running_server  # noqa: E402
from client_transfer import make_file  # noqa: E402

from meshfs_client import MeshFSClient  # noqa: E402

MIB = 1024 * 1024
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def _can_drop_caches() -> bool:
    try:
        with DROP_CACHES.open("w") as knob:
            knob.write("1")
        return True
    except OSError:
        return False


def _advise_cold(paths: list[Path]) -> None:
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)  # only clean pages can be dropped
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


class Cold:
    """Makes the next read come from the disk."""

    def __init__(self) -> None:
        self.global_drop = _can_drop_caches()

    @property
    def method(self) -> str:
        if self.global_drop:
            return "page cache dropped (/proc/sys/vm/drop_caches) before each operation"
        return "posix_fadvise(DONTNEED) on the files involved before each operation"

    def __call__(self, *paths: Path) -> None:
        os.sync()
        if self.global_drop:
            DROP_CACHES.write_text("1")
        else:
            _advise_cold(list(paths))


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of *pid* (this process when None)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(server: Server) -> float:
    """CPU seconds of the server process and its workers."""
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    with contextlib.suppress(OSError):
        pids += [int(p) for p in children.read_text().split()]
    return sum(cpu_seconds(pid) for pid in pids)


def durable_copy(source: Path, dest: Path) -> None:
    """The baseline: ``cp`` then ``sync`` of the copy."""
    subprocess.run(["cp", str(source), str(dest)], check=True)
    subprocess.run(["sync", str(dest)], check=True)


@contextlib.contextmanager
def measured(times: list[float], cpu: list[tuple[float, float]], server: Server) -> Iterator[None]:
    start, own, served = time.perf_counter(), cpu_seconds(), server_cpu(server)
    yield
    times.append(time.perf_counter() - start)
    cpu.append((cpu_seconds() - own, server_cpu(server) - served))


async def run(server: Server, work: Path, size: int, runs: int, cold: Cold, label: str) -> None:
    source, copy, back = work / "big.bin", work / "copy.bin", work / "back.bin"
    mib = size / MIB
    local: list[float] = []
    up: list[float] = []
    down: list[float] = []
    up_cpu: list[tuple[float, float]] = []
    down_cpu: list[tuple[float, float]] = []
    unused: list[tuple[float, float]] = []
    content = server.data_dir
    async with MeshFSClient(server.url, token=server.token) as client:
        for attempt in range(runs):
            make_file(source, size, seed=attempt)  # new content each run: nothing deduplicated
            cold(source)
            with measured(local, unused, server):
                durable_copy(source, copy)
            copy.unlink()
            cold(source)
            with measured(up, up_cpu, server):
                await client.upload(f"/big-{attempt}.bin", source)
            cold(content)
            with measured(down, down_cpu, server):
                await client.download_to(f"/big-{attempt}.bin", back)
            back.unlink()
            await client.delete(f"/big-{attempt}.bin")
    source.unlink()
    base = mib / median(local)
    up_rate, down_rate = mib / median(up), mib / median(down)

    def cpu_note(samples: list[tuple[float, float]]) -> str:
        client_cpu = median([c for c, _ in samples])
        server_cpu_s = median([s for _, s in samples])
        return f"CPU: client {client_cpu:.1f} s, server {server_cpu_s:.1f} s"

    report(f"{label}: cp + sync {mib:.0f} MiB (baseline)", base, "MiB/s")
    report(
        f"{label}: upload {mib:.0f} MiB",
        up_rate,
        "MiB/s",
        f"ratio {up_rate / base:.2f} (goal >= 0.5); {cpu_note(up_cpu)}",
    )
    report(
        f"{label}: download {mib:.0f} MiB (verified, fsynced)",
        down_rate,
        "MiB/s",
        f"ratio {down_rate / base:.2f} (goal >= 0.8); {cpu_note(down_cpu)}",
    )


@contextlib.contextmanager
def production_server() -> Iterator[Server]:
    """A server on Postgres (fsync on) + SeaweedFS, both started by the server tests' kit."""
    sys.path.insert(0, str(HERE.parents[1] / "packages" / "meshfs-server" / "tests"))
    from backends import production_env
    from meshfs_server_backends import TEST_BUCKET, Postgres, Production, Seaweed

    postgres = Postgres.start(fsync=True)
    seaweed = Seaweed.start()
    try:
        seaweed.create_bucket(TEST_BUCKET)
        prod = Production(postgres, seaweed)
        env = production_env(prod, postgres.database_dsn("postgres")) | {"MESHFS_WORKERS": "1"}
        with running_server(env) as server:
            yield server
    finally:
        seaweed.stop()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="also Postgres + SeaweedFS")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-large-", dir=os.environ.get("BENCH_DIR")))
    cold = Cold()
    print(f"Large files: {args.size_mib} MiB, medians of {args.runs} runs; {cold.method}")
    print(f"  {os.cpu_count()} cores; load average at start {os.getloadavg()[0]:.2f}")
    try:
        with running_server({"MESHFS_WORKERS": "1"}) as server:
            asyncio.run(run(server, work, args.size_mib * MIB, args.runs, cold, "embedded"))
        if args.postgres:
            with production_server() as server:
                size = args.size_mib * MIB
                asyncio.run(run(server, work, size, args.runs, cold, "postgres+s3"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"  load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
