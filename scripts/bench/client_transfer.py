"""Client library and CLI benchmark against a real ``meshfs-server`` process (embedded default).

Measures, in one run:
  * 1 GiB upload (``MeshFSClient.upload`` of a local file: hash, init, 4 parallel parts,
    commit) and download (``download_to``: streamed, hash-verified, atomic) in MiB/s, and their
    ratio to ``cp`` of the same file on the same disk in the same run
  * ``meshfs put -r`` and ``meshfs get -r`` of a tree of 10,000 small files (files/s), with
    ``cp -r`` of the same tree as the baseline
  * the blocking facade's overhead: N sequential stats through ``MeshFS`` (blocking, private
    loop thread) versus ``MeshFSClient`` (async), and their ratio

Figures are medians of --runs runs; not a pass/fail test. Client, server and disk share the
machine's cores: compare ratios, not absolute numbers.

Usage: python scripts/bench/client_transfer.py [--size-mib 1024] [--files 10000] [--runs 3]
                                                [--stats 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, median, report, running_server

from meshfs_client import MeshFS, MeshFSClient
from meshfs_common.hashing import CHUNK_SIZE

MIB = 1024 * 1024


def make_file(path: Path, size: int, seed: int) -> None:
    """*size* bytes whose every 4 MiB chunk is distinct (and distinct across seeds)."""
    block = bytearray(os.urandom(CHUNK_SIZE))
    with path.open("wb") as out:
        written = 0
        while written < size:
            block[:16] = seed.to_bytes(8, "big") + written.to_bytes(8, "big")
            piece = block[: min(CHUNK_SIZE, size - written)]
            out.write(piece)
            written += len(piece)


def make_tree(root: Path, count: int, seed: int) -> None:
    """*count* small files (100-2,000 bytes) spread over 100 directories."""
    for index in range(count):
        directory = root / f"d{index % 100:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        body = f"{seed}:{index}:".encode() + os.urandom(100 + (index * 37) % 1900)
        (directory / f"f{index:05d}.txt").write_bytes(body)


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def drop_path(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


async def big_transfer(server: Server, work: Path, size: int, runs: int) -> None:
    source = work / "big.bin"
    mib = size / MIB
    cp_times: list[float] = []
    up_times: list[float] = []
    down_times: list[float] = []
    async with MeshFSClient(server.url, token=server.token) as client:
        for run in range(runs):
            make_file(source, size, seed=run)  # new content each run: no dedup between runs
            cp_times.append(timed(["cp", str(source), str(work / "copy.bin")]))
            drop_path(work / "copy.bin")
            start = time.perf_counter()
            await client.upload(f"/big-{run}.bin", source)
            up_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            await client.download_to(f"/big-{run}.bin", work / "down.bin")
            down_times.append(time.perf_counter() - start)
            drop_path(work / "down.bin")
    drop_path(source)
    cp_rate = mib / median(cp_times)
    up_rate = mib / median(up_times)
    down_rate = mib / median(down_times)
    report(f"cp {mib:.0f} MiB (baseline)", cp_rate, "MiB/s")
    report("MeshFSClient.upload (file)", up_rate, "MiB/s", f"ratio to cp {up_rate / cp_rate:.2f}")
    report(
        "MeshFSClient.download_to (verified)",
        down_rate,
        "MiB/s",
        f"ratio to cp {down_rate / cp_rate:.2f}",
    )


def tree_transfer(server: Server, work: Path, count: int, runs: int) -> None:
    meshfs = str(Path(sys.executable).with_name("meshfs"))
    if not Path(meshfs).exists():
        meshfs = shutil.which("meshfs") or "meshfs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_SERVER": server.url, "MESHFS_TOKEN": server.token}
    env["MESHFS_CONFIG_DIR"] = str(work / "config")
    cp_times: list[float] = []
    put_times: list[float] = []
    get_times: list[float] = []
    for run in range(runs):
        tree = work / "tree"
        make_tree(tree, count, seed=run)
        cp_times.append(timed(["cp", "-r", str(tree), str(work / "tree-copy")]))
        drop_path(work / "tree-copy")
        put_times.append(timed([meshfs, "-q", "put", "-r", str(tree), f"/tree-{run}"], env))
        get_times.append(
            timed([meshfs, "-q", "get", "-r", f"/tree-{run}", str(work / "back")], env)
        )
        got = sum(1 for p in (work / "back").rglob("*") if p.is_file())
        if got != count:
            raise RuntimeError(f"get -r brought back {got} files, expected {count}")
        drop_path(work / "back")
        drop_path(tree)
    cp_rate = count / median(cp_times)
    put_rate = count / median(put_times)
    get_rate = count / median(get_times)
    report(f"cp -r {count} small files (baseline)", cp_rate, "files/s")
    report("meshfs put -r", put_rate, "files/s", f"ratio to cp -r {put_rate / cp_rate:.3f}")
    report("meshfs get -r", get_rate, "files/s", f"ratio to cp -r {get_rate / cp_rate:.3f}")


async def async_stats(server: Server, count: int) -> float:
    async with MeshFSClient(server.url, token=server.token) as client:
        await client.meta("/stat-target.txt")  # warm the connection
        start = time.perf_counter()
        for _ in range(count):
            await client.meta("/stat-target.txt")
        return time.perf_counter() - start


def blocking_stats(server: Server, count: int) -> float:
    with MeshFS(server.url, token=server.token) as fs:
        fs.meta("/stat-target.txt")
        start = time.perf_counter()
        for _ in range(count):
            fs.meta("/stat-target.txt")
        return time.perf_counter() - start


async def facade_overhead(server: Server, count: int, runs: int) -> None:
    async with MeshFSClient(server.url, token=server.token) as client:
        await client.upload("/stat-target.txt", b"stat me")
    async_times: list[float] = []
    blocking_times: list[float] = []
    for _ in range(runs):
        async_times.append(await async_stats(server, count))
        blocking_times.append(await asyncio.to_thread(blocking_stats, server, count))
    a, b = median(async_times), median(blocking_times)
    report(
        f"{count} stats, async MeshFSClient", count / a, "stats/s", f"{a / count * 1e6:.0f} us each"
    )
    report(
        f"{count} stats, blocking MeshFS",
        count / b,
        "stats/s",
        f"{b / count * 1e6:.0f} us each; blocking/async time {b / a:.2f} "
        f"(+{(b - a) / count * 1e6:.0f} us per call)",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stats", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-client-", dir=os.environ.get("BENCH_DIR")))
    load = os.getloadavg()
    print("MeshFS client benchmark (embedded server: SQLite + local content dir)")
    print(f"  {os.cpu_count()} cores; load average at start {load[0]:.2f} {load[1]:.2f}")
    print(f"  medians of {args.runs} runs")
    try:
        with running_server() as server:
            await big_transfer(server, work, args.size_mib * MIB, args.runs)
            await asyncio.to_thread(tree_transfer, server, work, args.files, args.runs)
            await facade_overhead(server, args.stats, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"  load average at end {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
