"""Bulk transfers of many small files: ``meshfs put -r`` / ``get -r`` against a real server.

Measures, in one run:
  * ``cp -r`` of a tree of N small files (100-2,000 bytes, 100 directories) as the baseline
  * ``meshfs put -r`` and ``meshfs get -r`` of that tree through bulk requests (tar batches),
    on a server with the DEFAULT rate limit (1,200 requests/minute for the free plan):
    targets >= 1,000 and >= 2,000 files/s
  * ``meshfs put -r --no-clobber`` (bulk requests that create only) of a fresh tree, beside
    the per-file path it replaced
  * a mirror's first pass (``meshfs sync --once`` in-process) over the same kind of tree of
    local files, new to the server: uploaded in bulk writes, under the default rate limit
  * the per-file path beside them: ``upload(if_none_match=True)`` and ``download_to`` file by
    file (4 at a time), and the mirror's first pass with one upload per file (the path before
    its bulk writes) alternated with its bulk pass, on a server with the rate limit lifted
    (under the default limit it would be held to 20 files/s), over --per-file files

Figures are medians of --runs runs; not a pass/fail test. Client, server and disk share the
machine's cores: compare ratios, not absolute numbers.

Usage: python scripts/bench/bulk_files.py [--files 10000] [--per-file 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, median, report, running_server
from workers import tree_cpu

from meshfs_client import MeshFSClient
from meshfs_client.mirror import MirrorSync, SyncOptions, _bulk_uploads

DEFAULT_RATE = "1200"


def make_tree(root: Path, count: int, seed: int) -> None:
    """*count* small files (100-2,000 bytes) spread over 100 directories."""
    for index in range(count):
        directory = root / f"d{index % 100:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        body = f"{seed}:{index}:".encode() + os.urandom(100 + (index * 37) % 1900)
        (directory / f"f{index:05d}.txt").write_bytes(body)


def meshfs_env(server: Server, work: Path) -> tuple[str, dict[str, str]]:
    meshfs = str(Path(sys.executable).with_name("meshfs"))
    if not Path(meshfs).exists():
        meshfs = shutil.which("meshfs") or "meshfs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_SERVER": server.url, "MESHFS_TOKEN": server.token}
    env["MESHFS_CONFIG_DIR"] = str(work / "config")
    return meshfs, env


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far (the CLI runs)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed_cpu(
    command: list[str], env: dict[str, str], server: Server
) -> tuple[float, float, float]:
    """Wall seconds, client CPU seconds and server CPU seconds of one CLI run."""
    client, served = children_cpu(), tree_cpu(server.process.pid)
    took = timed(command, env)
    return took, children_cpu() - client, tree_cpu(server.process.pid) - served


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


@dataclass
class Bulk:
    """Rates (files/s) and CPU per file (us: the CLI's, the server's) of one bulk run."""

    cp: float
    put: float
    get: float
    put_cpu: tuple[float, float]
    get_cpu: tuple[float, float]
    put_n: float
    put_n_cpu: tuple[float, float]


def bulk(server: Server, work: Path, count: int, runs: int) -> Bulk:
    """cp -r, put -r and get -r rates (files/s) through bulk requests, and their CPU."""
    meshfs, env = meshfs_env(server, work)
    cp, put, get = [], [], []
    put_cpu: list[tuple[float, float]] = []
    get_cpu: list[tuple[float, float]] = []
    put_n: list[float] = []
    put_n_cpu: list[tuple[float, float]] = []
    for run in range(runs):
        tree = work / "tree"
        make_tree(tree, count, seed=run)
        cp.append(timed(["cp", "-r", str(tree), str(work / "tree-copy")]))
        shutil.rmtree(work / "tree-copy")
        took, client, served = timed_cpu(
            [meshfs, "-q", "put", "-r", str(tree), f"/bulk-{run}"], env, server
        )
        put.append(took)
        put_cpu.append((client, served))
        took, client, served = timed_cpu(
            [meshfs, "-q", "put", "-r", "-n", str(tree), f"/bulk-n-{run}"], env, server
        )
        put_n.append(took)
        put_n_cpu.append((client, served))
        took, client, served = timed_cpu(
            [meshfs, "-q", "get", "-r", f"/bulk-{run}", str(work / "back")], env, server
        )
        get.append(took)
        get_cpu.append((client, served))
        if (got := count_files(work / "back")) != count:
            raise RuntimeError(f"get -r brought back {got} files, expected {count}")
        shutil.rmtree(work / "back")
        shutil.rmtree(tree)

    def per_file_us(cpu: list[tuple[float, float]]) -> tuple[float, float]:
        return (median([c for c, _ in cpu]) / count * 1e6,
                median([s for _, s in cpu]) / count * 1e6)  # fmt: skip

    return Bulk(count / median(cp), count / median(put), count / median(get),
                per_file_us(put_cpu), per_file_us(get_cpu), count / median(put_n),
                per_file_us(put_n_cpu))  # fmt: skip


def mirror_bulk(server: Server, work: Path, count: int, runs: int) -> float:
    """The mirror's first-pass upload rate (files/s) of a tree of *count* new small files (on
    a server of its own: the other commands' requests do not spend its rate limit)."""
    took = []
    for run in range(runs):
        tree = work / "tree"
        make_tree(tree, count, seed=200 + run)
        took.append(mirror_first_pass(server, tree, work / "state", f"/mirror-{run}"))
        shutil.rmtree(tree)
    return count / median(took)


def mirror_first_pass(
    server: Server, tree: Path, state: Path, root: str, *, bulk: bool = True
) -> float:
    """Seconds of a mirror's first pass (``sync --once``) uploading *tree* to *root* (new on the
    server); without *bulk*, each file goes in a request of its own (the path before)."""

    async def run() -> None:
        async with MeshFSClient(server.url, token=server.token) as client:
            await client.mkdir(root)
            options = SyncOptions(target=tree, remote_root=root, state_dir=state, once=True)
            await MirrorSync(client, options).run()

    small = _bulk_uploads.SMALL
    _bulk_uploads.SMALL = small if bulk else -1
    try:
        start = time.perf_counter()
        asyncio.run(run())
        return time.perf_counter() - start
    finally:
        _bulk_uploads.SMALL = small
        shutil.rmtree(state, ignore_errors=True)


async def upload_each(server: Server, tree: Path, root: str) -> None:
    """The per-file upload path: upload(if_none_match=True) for each file, 4 at a time (what
    ``put -r -n`` did before it sent bulk requests)."""
    files = await asyncio.to_thread(lambda: [p for p in tree.rglob("*") if p.is_file()])
    async with MeshFSClient(server.url, token=server.token) as client:
        limit = asyncio.Semaphore(4)

        async def one(local: Path) -> None:
            async with limit:
                remote = f"{root}/{local.relative_to(tree).as_posix()}"
                await client.upload(remote, local, if_none_match=True)

        async with asyncio.TaskGroup() as group:
            for local in files:
                group.create_task(one(local))


async def download_each(server: Server, root: str, local: Path) -> None:
    """The per-file download path: a listing, then download_to for each file, 4 at a time."""
    async with MeshFSClient(server.url, token=server.token) as client:
        files = [e async for e in client.walk(root) if e.kind == "file"]
        limit = asyncio.Semaphore(4)

        async def one(path: str) -> None:
            async with limit:
                target = local / path.lstrip("/")
                await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
                await client.download_to(path, target)

        async with asyncio.TaskGroup() as group:
            for entry in files:
                group.create_task(one(entry.path))


def per_file(
    server: Server, work: Path, count: int, runs: int
) -> tuple[float, float, float, float, float]:
    """Upload and download rates (files/s), one request per file, the server's CPU per
    uploaded file (us), and the mirror's first pass per file and in bulk (files/s)."""
    put, get, cpu, mirror_each, in_bulk = [], [], [], [], []
    for run in range(runs):
        tree = work / "tree"
        make_tree(tree, count, seed=100 + run)
        served = tree_cpu(server.process.pid)
        start = time.perf_counter()
        asyncio.run(upload_each(server, tree, f"/each-{run}"))
        put.append(time.perf_counter() - start)
        cpu.append((tree_cpu(server.process.pid) - served) / count * 1e6)
        start = time.perf_counter()
        asyncio.run(download_each(server, f"/each-{run}", work / "back"))
        get.append(time.perf_counter() - start)
        if (got := count_files(work / "back")) != count:
            raise RuntimeError(f"per-file get brought back {got} files, expected {count}")
        shutil.rmtree(work / "back")
        # The mirror's first pass, per file and in bulk, alternated (each to a new root).
        for bulk in (False, True) if run % 2 == 0 else (True, False):
            took = mirror_first_pass(server, tree, work / "state", f"/mirror-each-{run}-{bulk}",
                                     bulk=bulk)  # fmt: skip
            (in_bulk if bulk else mirror_each).append(took)
        shutil.rmtree(tree)
    rates = (count / median(put), count / median(get), median(cpu))
    return (*rates, count / median(mirror_each), count / median(in_bulk))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--per-file", type=int, default=2000,
                        help="files for the per-file comparison (0: skip it)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-bulk-", dir=os.environ.get("BENCH_DIR")))
    load = os.getloadavg()
    print("MeshFS bulk transfers of small files (embedded server: SQLite + local content dir)")
    print(f"  {os.cpu_count()} cores; load average at start {load[0]:.2f} {load[1]:.2f}")
    print(f"  medians of {args.runs} runs")
    try:
        with running_server({"MESHFS_RATE_LIMIT_PER_MINUTE": DEFAULT_RATE}) as server:
            got = bulk(server, work, args.files, args.runs)
        with running_server({"MESHFS_RATE_LIMIT_PER_MINUTE": DEFAULT_RATE}) as server:
            mirror = mirror_bulk(server, work, args.files, args.runs)
        cp, put, get = got.cp, got.put, got.get
        put_each = get_each = each_cpu = mirror_each = mirror_in_bulk = 0.0
        if args.per_file:
            with running_server() as server:
                put_each, get_each, each_cpu, mirror_each, mirror_in_bulk = per_file(
                    server, work, args.per_file, args.runs
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(f"cp -r {args.files} small files (baseline)", cp, "files/s")
    report(f"put -r, bulk, {DEFAULT_RATE} req/min limit", put, "files/s",
           f"target >= 1000; ratio to cp -r {put / cp:.3f}")  # fmt: skip
    report(f"get -r, bulk, {DEFAULT_RATE} req/min limit", get, "files/s",
           f"target >= 2000; ratio to cp -r {get / cp:.3f}")  # fmt: skip
    report("put -r CPU per file: meshfs (client)", got.put_cpu[0], "us")
    report("put -r CPU per file: server", got.put_cpu[1], "us")
    report("get -r CPU per file: meshfs (client)", got.get_cpu[0], "us")
    report("get -r CPU per file: server", got.get_cpu[1], "us")
    report(f"put -r -n, bulk, {DEFAULT_RATE} req/min limit", got.put_n, "files/s")
    report("put -r -n CPU per file: meshfs (client)", got.put_n_cpu[0], "us")
    report("put -r -n CPU per file: server", got.put_n_cpu[1], "us")
    report(f"mirror first pass (sync --once), uploads, bulk, {DEFAULT_RATE} req/min limit",
           mirror, "files/s", f"ratio to cp -r {mirror / cp:.3f}")  # fmt: skip
    if args.per_file:
        report(f"upload(if_none_match) per file, {args.per_file} files, no limit", put_each,
               "files/s", f"put -r bulk is {put / put_each:.1f}x,"
               f" put -r -n bulk {got.put_n / put_each:.1f}x")  # fmt: skip
        report("upload per file CPU per file: server", each_cpu, "us")
        report(f"mirror first pass, one upload per file, {args.per_file} files, no limit",
               mirror_each, "files/s")  # fmt: skip
        report(f"mirror first pass, bulk writes, {args.per_file} files, no limit", mirror_in_bulk,
               "files/s", f"{mirror_in_bulk / mirror_each:.1f}x per file")  # fmt: skip
        report(f"download_to per file, {args.per_file} files, no limit", get_each, "files/s",
               f"bulk is {get / get_each:.1f}x")  # fmt: skip
    load = os.getloadavg()
    print(f"  load average at end {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    main()
