"""Backends benchmark: the embedded default vs Postgres + SeaweedFS vs raw aioboto3, one run.

Measures, against real ``meshfs-server`` processes and a real S3 server (SeaweedFS; Postgres
runs with fsync on, as durability demands):
  * a large transfer through the server's direct-transfer protocol (init, presigned PUTs,
    commit; presigned GETs) vs raw aioboto3 PUT/GET of the same 4 MiB objects at the same
    concurrency (target: >= 0.8x raw)
  * small-file writes/s and stats/s on the embedded default and on Postgres + S3 (ratio)
  * cross-process event latency: a write through server B, the WebSocket event at server A
    (p50/p99)

Usage: python scripts/bench/backends.py [--size-mib 1024] [--runs 3] [--small 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aioboto3
import aiohttp
from botocore.config import Config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "packages" / "meshfs-server" / "tests"))

from _harness import Server, median, percentile, report, running_server  # noqa: E402
from meshfs_server_backends import TEST_BUCKET, Postgres, Production, Seaweed  # noqa: E402
from server_core import small_writes, stats  # noqa: E402

from meshfs_common.hashing import CHUNK_SIZE, chunk_hash, content_hash_of  # noqa: E402

CONCURRENCY = 8


def production_env(prod: Production, dsn: str, public_url: str | None = None) -> dict[str, str]:
    env = {
        "MESHFS_DATABASE_URL": dsn,
        "MESHFS_OBJECT_STORE_BACKEND": "s3",
        "MESHFS_OBJECT_STORE_BUCKET": prod.bucket,
        "MESHFS_OBJECT_STORE_ENDPOINT": prod.seaweed.endpoint,
        "MESHFS_OBJECT_STORE_ACCESS_KEY_ID": prod.seaweed.access_key,
        "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY": prod.seaweed.secret_key,
        "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE": "true",
        "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS": "true",
    }
    if public_url:
        env["MESHFS_PUBLIC_URL"] = public_url
    return env


def make_chunks(size: int) -> list[bytes]:
    """Distinct random chunks (so no deduplication flatters either side)."""
    return [os.urandom(min(CHUNK_SIZE, size - i)) for i in range(0, size, CHUNK_SIZE)]


async def _bounded(jobs: list, limit: int = CONCURRENCY) -> None:  # type: ignore[type-arg]
    gate = asyncio.Semaphore(limit)

    async def run(job) -> None:  # type: ignore[no-untyped-def]
        async with gate:
            await job()

    await asyncio.gather(*(run(j) for j in jobs))


async def direct_transfer(server: Server, chunks: list[bytes], name: str) -> tuple[float, float]:
    """Seconds to upload and to download *chunks* through the direct-transfer protocol."""
    headers = {"Authorization": f"Bearer {server.token}"}
    names = [chunk_hash(c) for c in chunks]
    body = {"path": f"/big/{name}", "size": sum(map(len, chunks)),
            "content_hash": content_hash_of(names), "chunks": names}  # fmt: skip
    async with aiohttp.ClientSession(headers=headers) as api, aiohttp.ClientSession() as s3:
        start = time.perf_counter()
        init = await (await api.post(f"{server.url}/files/upload/init", json=body)).json()

        def put(index: int):  # type: ignore[no-untyped-def]
            async def job() -> None:
                key = str(index)
                async with s3.put(init["part_urls"][key], data=chunks[index],
                                  headers=init["part_headers"][key]) as r:  # fmt: skip
                    assert r.status == 200, await r.text()

            return job

        await _bounded([put(i) for i in init["missing"]])
        r = await api.post(
            f"{server.url}/files/upload/commit", json={"upload_id": init["upload_id"]}
        )
        assert r.status in (200, 201), await r.text()
        up = time.perf_counter() - start

        start = time.perf_counter()
        plan = await (
            await api.get(f"{server.url}/files/download/direct", params={"path": f"/big/{name}"})
        ).json()

        def get(url: str):  # type: ignore[no-untyped-def]
            async def job() -> None:
                async with s3.get(url) as r:
                    assert r.status == 200
                    async for _ in r.content.iter_chunked(1 << 20):
                        pass

            return job

        await _bounded([get(u) for u in plan["urls"]])
        down = time.perf_counter() - start
    return up, down


async def raw_transfer(prod: Production, chunks: list[bytes], name: str) -> tuple[float, float]:
    """Seconds to PUT and GET the same objects straight to the bucket with aioboto3."""
    session = aioboto3.Session()
    config = Config(s3={"addressing_style": "path"}, max_pool_connections=CONCURRENCY * 2,
                    request_checksum_calculation="when_required")  # fmt: skip
    async with session.client(
        "s3", endpoint_url=prod.seaweed.endpoint, region_name="us-east-1",
        aws_access_key_id=prod.seaweed.access_key, aws_secret_access_key=prod.seaweed.secret_key,
        config=config,
    ) as client:  # fmt: skip
        keys = [f"raw/{name}/{i}" for i in range(len(chunks))]
        start = time.perf_counter()

        def put(i: int):  # type: ignore[no-untyped-def]
            async def job() -> None:
                await client.put_object(Bucket=prod.bucket, Key=keys[i], Body=chunks[i])

            return job

        await _bounded([put(i) for i in range(len(chunks))])
        up = time.perf_counter() - start
        start = time.perf_counter()

        def get(key: str):  # type: ignore[no-untyped-def]
            async def job() -> None:
                answer = await client.get_object(Bucket=prod.bucket, Key=key)
                async for _ in answer["Body"].iter_chunks(1 << 20):
                    pass

            return job

        await _bounded([get(k) for k in keys])
        down = time.perf_counter() - start
    return up, down


async def big(server: Server, prod: Production, size: int, runs: int) -> None:
    mib = size / (1 << 20)
    rates: dict[str, list[float]] = {"up": [], "down": [], "raw_up": [], "raw_down": []}
    for run in range(runs):
        chunks = make_chunks(size)
        raw_up, raw_down = await raw_transfer(prod, chunks, f"r{run}")
        chunks = make_chunks(size)  # fresh content: nothing is already stored
        up, down = await direct_transfer(server, chunks, f"d{run}")
        rates["up"].append(mib / up)
        rates["down"].append(mib / down)
        rates["raw_up"].append(mib / raw_up)
        rates["raw_down"].append(mib / raw_down)
    m = {k: median(v) for k, v in rates.items()}
    report(f"raw aioboto3 PUT ({mib:.0f} MiB, {CONCURRENCY} streams)", m["raw_up"], "MiB/s")
    report("direct-transfer upload (init, presigned PUTs, commit)", m["up"], "MiB/s",
           f"ratio to raw {m['up'] / m['raw_up']:.2f} (target >= 0.8)")  # fmt: skip
    report(f"raw aioboto3 GET ({mib:.0f} MiB)", m["raw_down"], "MiB/s")
    report("direct-transfer download (presigned GETs)", m["down"], "MiB/s",
           f"ratio to raw {m['down'] / m['raw_down']:.2f} (target >= 0.8)")  # fmt: skip


async def cross_process_latency(a: Server, b: Server, samples: int) -> None:
    """A write through B (with A's token), the event at a WebSocket on A."""
    headers = {"Authorization": f"Bearer {a.token}"}
    async with aiohttp.ClientSession(headers=headers) as writer, aiohttp.ClientSession() as reader:
        url = f"{a.url.replace('http', 'ws')}/sync/ws?access_token={a.token}"
        async with reader.ws_connect(url) as ws:
            while (await ws.receive_json())["type"] != "caught_up":
                pass
            latencies = []
            for i in range(samples):
                start = time.perf_counter()
                r = await writer.put(f"{b.url}/files/content", params={"path": f"/x/{i}"},
                                     data=b"ping")  # fmt: skip
                assert r.status in (200, 201), await r.text()
                r.release()
                while True:
                    message = await ws.receive_json()
                    if message["type"] == "event" and message["event"]["path"] == f"/x/{i}":
                        break
                latencies.append((time.perf_counter() - start) * 1000)
    report("write via B -> WebSocket event at A, p50", percentile(latencies, 50), "ms")
    report("write via B -> WebSocket event at A, p99", percentile(latencies, 99), "ms",
           "(target <= 100)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    args.small = max(args.small, 500)  # stats() reads back the first 500 files
    print("MeshFS backends benchmark: embedded (SQLite + dir) vs Postgres (fsync on) + SeaweedFS")
    postgres = Postgres.start(fsync=True)
    seaweed = Seaweed.start()
    seaweed.create_bucket(TEST_BUCKET)
    prod = Production(postgres, seaweed)
    try:
        print("embedded default:")
        with running_server() as server:
            await small_writes(server, args.small, CONCURRENCY)
            await stats(server, args.small * 2, CONCURRENCY)
        print("Postgres + SeaweedFS:")
        dsn = postgres.database_dsn("postgres")
        with running_server(production_env(prod, dsn)) as server:
            await small_writes(server, args.small, CONCURRENCY)
            await stats(server, args.small * 2, CONCURRENCY)
            await big(server, prod, args.size_mib << 20, args.runs)
        print("two server processes on one Postgres + bucket:")
        public = "http://meshfs.bench"
        with (
            running_server(production_env(prod, dsn, public)) as a,
            running_server(production_env(prod, dsn, public)) as b,
        ):
            await cross_process_latency(a, b, args.latency_samples)
    finally:
        seaweed.stop()
        postgres.stop()


if __name__ == "__main__":
    asyncio.run(main())
