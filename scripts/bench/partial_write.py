"""Partial write benchmark against a real ``meshfs-server`` process (embedded default).

A 4 KiB write into the middle of a large file (1 GiB by default), committed three ways in the
same run, each after its own fresh 4 KiB change:

  * partial: ``MeshFSClient.upload_ranges`` - the base version's chunk list, the one touched
    chunk read, hashed and sent, the new version committed on the base;
  * full re-upload: every byte of the file streamed again in one ``PUT /files/content``, what
    a client without partial writes or deduplication sends (the baseline of the targets);
  * deduplicated upload: ``MeshFSClient.upload`` of the whole file - it hashes all of it
    locally, announces every chunk and sends the ones the server lacks.

Bytes sent are counted at the client (request bodies and header lines, from aiohttp's
tracing), times are wall-clock medians of --runs runs. Targets (issue 11): the partial write
sends <= 4 MiB + metadata and is >= 50x faster than the full re-upload. Not a pass/fail test.

Usage: python scripts/bench/partial_write.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import Server, median, report, running_server

from meshfs_client import MeshFSClient
from meshfs_common.hashing import CHUNK_SIZE

MIB = 1024 * 1024
CHANGE = 4096
REMOTE = "/big.bin"


@dataclass
class SentBytes:
    """Bytes this client put on the wire: request bodies and request header lines."""

    total: int = 0

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def chunk_sent(
            session: aiohttp.ClientSession, context: SimpleNamespace,
            params: aiohttp.TraceRequestChunkSentParams,
        ) -> None:  # fmt: skip
            self.total += len(params.chunk)

        async def headers_sent(
            session: aiohttp.ClientSession, context: SimpleNamespace,
            params: aiohttp.TraceRequestHeadersSentParams,
        ) -> None:  # fmt: skip
            line = f"{params.method} {params.url.raw_path_qs} HTTP/1.1\r\n"
            self.total += len(line) + sum(len(k) + len(v) + 4 for k, v in params.headers.items())
            self.total += 2

        config.on_request_chunk_sent.append(chunk_sent)
        config.on_request_headers_sent.append(headers_sent)
        return config


def make_file(path: Path, size: int) -> None:
    """*size* bytes whose every 4 MiB chunk is distinct."""
    block = bytearray(os.urandom(CHUNK_SIZE))
    with path.open("wb") as out:
        written = 0
        while written < size:
            block[:8] = written.to_bytes(8, "big")
            piece = block[: min(CHUNK_SIZE, size - written)]
            out.write(piece)
            written += len(piece)


def change_middle(path: Path, size: int) -> int:
    """Overwrite 4 KiB in the middle of *path* with fresh bytes; returns the offset."""
    offset = size // 2 + 1000
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(os.urandom(CHANGE))
    return offset


async def stream_file(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while block := await asyncio.to_thread(handle.read, 1024 * 1024):
            yield block


async def put_whole(session: aiohttp.ClientSession, server: Server, local: Path) -> object:
    """Every byte of *local* sent again in one streamed ``PUT /files/content``."""
    async with session.put(
        f"{server.url}/files/content", params={"path": REMOTE}, data=stream_file(local),
        headers={"Authorization": f"Bearer {server.token}"},
    ) as reply:  # fmt: skip
        reply.raise_for_status()
        return await reply.json()


async def measure(
    sent: SentBytes, action: Callable[[], Awaitable[object]]
) -> tuple[float, int, object]:
    before = sent.total
    start = time.perf_counter()
    result = await action()
    return time.perf_counter() - start, sent.total - before, result


async def bench(server: Server, work: Path, size: int, runs: int) -> None:
    local = work / "big.bin"
    make_file(local, size)
    sent = SentBytes()
    session = aiohttp.ClientSession(trace_configs=[sent.trace()])
    figures: dict[str, list[tuple[float, int]]] = {"partial": [], "full": [], "dedup": []}
    async with session, MeshFSClient(server.url, token=server.token, session=session) as client:
        head = (await client.upload(REMOTE, local)).version.version_id
        for _ in range(runs):
            offset = change_middle(local, size)
            seconds, nbytes, result = await measure(
                sent,
                lambda base=head, at=offset: client.upload_ranges(
                    REMOTE, local, base_version=base, ranges=[(at, CHANGE)]
                ),
            )
            figures["partial"].append((seconds, nbytes))
            change_middle(local, size)
            seconds, nbytes, result = await measure(sent, lambda: put_whole(session, server, local))
            figures["full"].append((seconds, nbytes))
            change_middle(local, size)
            seconds, nbytes, result = await measure(sent, lambda: client.upload(REMOTE, local))
            figures["dedup"].append((seconds, nbytes))
            head = result.version.version_id  # type: ignore[attr-defined]
        check = await client.read_bytes(REMOTE, offset=size // 2, length=2 * CHANGE)
        assert check == local.read_bytes()[size // 2 : size // 2 + 2 * CHANGE]
    partial_s = median([s for s, _ in figures["partial"]])
    partial_b = median([b for _, b in figures["partial"]])
    mib = size / MIB
    print(f"  a 4 KiB change in the middle of a {mib:.0f} MiB file, median of {runs} runs")
    report("partial write: time", partial_s * 1000, "ms")
    report("partial write: bytes sent", partial_b / MIB, "MiB",
           f"({partial_b:.0f} bytes; target <= 4 MiB + metadata)")  # fmt: skip
    for name, label in (("full", "full re-upload"), ("dedup", "deduplicated upload")):
        secs = median([s for s, _ in figures[name]])
        nbytes = median([b for _, b in figures[name]])
        report(f"{label}: time", secs * 1000, "ms",
               f"partial is {secs / partial_s:.0f}x faster")  # fmt: skip
        report(f"{label}: bytes sent", nbytes / MIB, "MiB",
               f"partial sends {nbytes / max(partial_b, 1):.0f}x less")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="meshfs-bench-", dir=os.environ.get("BENCH_DIR")) as tmp,
        running_server() as server,
    ):
        asyncio.run(bench(server, Path(tmp), args.size_mib * MIB, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
