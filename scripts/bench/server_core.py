"""Server core benchmark on the embedded default (SQLite + local content directory).

Measures, in one run against a real ``meshfs-server`` process:
  * 1 GiB upload and download (MB/s) and their ratio to ``cp`` of the same file on the same disk
  * small-file writes/s at client concurrency 8
  * stats/s (GET /files/meta) at client concurrency 8
  * listing a 10,000-entry directory (ms, all pages)
  * commit -> WebSocket event at a second connection, p50/p99 (ms)

Usage: python scripts/bench/server_core.py [--size-mib 1024] [--runs 3] [--small 2000]
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

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, median, percentile, report, running_server

from meshfs_common.hashing import CHUNK_SIZE, hash_file, iter_chunks

PART_CONCURRENCY = 4


def make_file(path: Path, size: int) -> None:
    block = os.urandom(CHUNK_SIZE)
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: min(CHUNK_SIZE, size - written)]
            # vary every block so chunks are distinct (no accidental dedup)
            out.write(written.to_bytes(8, "big") + piece[8:])
            written += len(piece)


def time_cp(source: Path, dest: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(dest)], check=True)
    elapsed = time.perf_counter() - start
    dest.unlink()
    return elapsed


async def upload(session: aiohttp.ClientSession, server: Server, source: Path, path: str) -> None:
    digest = await asyncio.to_thread(hash_file, source)
    init = await (
        await session.post(
            f"{server.url}/files/upload/init",
            json={"path": path, "size": digest.size, "content_hash": digest.content_hash,
                  "chunks": list(digest.chunks)},
        )
    ).json()  # fmt: skip
    missing = set(init["missing"])
    gate = asyncio.Semaphore(PART_CONCURRENCY)

    async def send(index: int, data: bytes) -> None:
        async with gate:
            r = await session.put(
                f"{server.url}/files/upload/part",
                params={"upload_id": init["upload_id"], "index": str(index)},
                data=data,
            )
            r.raise_for_status()
            r.release()

    tasks = []
    with source.open("rb") as stream:
        for index, block in enumerate(iter_chunks(stream)):
            if index in missing:
                await gate.acquire()  # bound memory: at most PART_CONCURRENCY chunks in flight
                gate.release()
                tasks.append(asyncio.create_task(send(index, block)))
        await asyncio.gather(*tasks)
    r = await session.post(
        f"{server.url}/files/upload/commit", json={"upload_id": init["upload_id"]}
    )
    assert r.status in (200, 201), await r.text()


async def download(session: aiohttp.ClientSession, server: Server, path: str, dest: Path) -> None:
    async with session.get(f"{server.url}/files/download", params={"path": path}) as r:
        r.raise_for_status()
        with dest.open("wb") as out:
            async for block in r.content.iter_chunked(1024 * 1024):
                out.write(block)


async def big_transfer(server: Server, work: Path, size: int, runs: int) -> None:
    source = work / "big.bin"
    make_file(source, size)
    mib = size / 1024 / 1024
    cp_times, up_times, down_times = [], [], []
    headers = {"Authorization": f"Bearer {server.token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        for run in range(runs):
            cp_times.append(time_cp(source, work / "copy.bin"))
            start = time.perf_counter()
            await upload(session, server, source, f"/big-{run}.bin")
            up_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            await download(session, server, f"/big-{run}.bin", work / "down.bin")
            down_times.append(time.perf_counter() - start)
            (work / "down.bin").unlink()
            # each run uploads the same bytes to a new path: the 2nd+ would dedup, so vary them
            make_file(source, size)
    cp_rate = mib / median(cp_times)
    up_rate = mib / median(up_times)
    down_rate = mib / median(down_times)
    report(f"cp {mib:.0f} MiB (baseline)", cp_rate, "MiB/s")
    report(
        "upload (hash + init + parts x4 + commit)",
        up_rate,
        "MiB/s",
        f"ratio to cp {up_rate / cp_rate:.2f} (target >= 0.5)",
    )
    report(
        "download (streamed to disk)",
        down_rate,
        "MiB/s",
        f"ratio to cp {down_rate / cp_rate:.2f} (target >= 0.5)",
    )
    source.unlink()


async def small_writes(server: Server, count: int, concurrency: int = 8) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    body = os.urandom(1024)
    rates = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for run in range(3):
            queue = list(range(count))

            async def worker(queue: list[int] = queue, run: int = run) -> None:
                while queue:
                    i = queue.pop()
                    r = await session.put(
                        f"{server.url}/files/content",
                        params={"path": f"/small{run}/f{i:05d}"},
                        data=i.to_bytes(4, "big") + body,
                    )
                    assert r.status in (200, 201), await r.text()
                    r.release()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            rates.append(count / (time.perf_counter() - start))
    report(
        f"small-file writes (1 KiB, concurrency {concurrency})",
        median(rates),
        "files/s",
        "(target >= 500)",
    )


async def stats(server: Server, count: int, concurrency: int = 8) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    rates = []
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(3):
            queue = list(range(count))

            async def worker(queue: list[int] = queue) -> None:
                while queue:
                    i = queue.pop() % 500
                    r = await session.get(
                        f"{server.url}/files/meta", params={"path": f"/small0/f{i:05d}"}
                    )
                    assert r.status == 200
                    await r.read()

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            rates.append(count / (time.perf_counter() - start))
    report(
        f"stats (GET /files/meta, concurrency {concurrency})",
        median(rates),
        "stats/s",
        "(target >= 3000)",
    )


async def listing(server: Server, entries: int) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        queue = list(range(entries))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                r = await session.put(
                    f"{server.url}/files/content", params={"path": f"/wide/e{i:05d}"}, data=b"x"
                )
                r.release()

        await asyncio.gather(*(worker() for _ in range(8)))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            after, seen = None, 0
            while True:
                params = {"path": "/wide", "limit": "1000"} | ({"after": after} if after else {})
                page = await (await session.get(f"{server.url}/files/list", params=params)).json()
                seen += len(page["entries"])
                if not page["has_more"]:
                    break
                after = page["next_after"]
            times.append((time.perf_counter() - start) * 1000)
            assert seen == entries
    report(f"list a {entries}-entry directory (10 pages)", median(times), "ms")


async def ws_latency(server: Server, samples: int) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=headers) as writer, aiohttp.ClientSession() as reader:
        head = await (
            await writer.get(f"{server.url}/sync/pull", params={"cursor": 0, "limit": 1})
        ).json()
        url = f"{server.url.replace('http', 'ws')}/sync/ws?access_token={server.token}"
        async with reader.ws_connect(url) as ws:
            await ws.receive_json()  # hello
            while (await ws.receive_json())["type"] != "caught_up":
                pass
            latencies = []
            for i in range(samples):
                start = time.perf_counter()
                r = await writer.put(
                    f"{server.url}/files/content", params={"path": f"/lat/{i}"}, data=b"ping"
                )
                r.release()
                while True:
                    message = await ws.receive_json()
                    if message["type"] == "event" and message["event"]["path"] == f"/lat/{i}":
                        break
                latencies.append((time.perf_counter() - start) * 1000)
    del head
    report("write -> WebSocket event at 2nd connection p50", percentile(latencies, 50), "ms")
    report(
        "write -> WebSocket event at 2nd connection p99",
        percentile(latencies, 99),
        "ms",
        "(target p99 <= 20)",
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-work-"))
    print("MeshFS server core benchmark (embedded default: SQLite + local content dir)")
    try:
        with running_server() as server:
            await big_transfer(server, work, args.size_mib * 1024 * 1024, args.runs)
            await small_writes(server, args.small)
            await stats(server, args.small * 2)
            await listing(server, args.entries)
            await ws_latency(server, args.latency_samples)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
