"""Where a mirror's propagation time goes: each stage of a new file's way from one mirror to
another, timed.

Two mirror engines (one process each, as ``meshfs sync`` runs them) mirror one remote
directory on a local server. For each sample a 1 KiB file is written into folder A and the
folder B is polled every millisecond until the bytes are there. Both engines write a
timestamp (``time.monotonic``, one clock for every process of the machine) at each stage:

  A watch           the watcher reported the path
  A round           the reconciler picked it up
  A upload-start    the upload step began (after the local stat)
  A upload-end      the server answered the upload
  B event           the write event reached B's follower
  B round           B's reconciler picked the path up
  B download-start  the download step began
  B write-start     the content had arrived; writing it began (in a worker thread)
  B placed          the file was in place (written, fsynced, linked)
  seen              the sampler read identical bytes in B

and the script prints, per stage, the p50 and max of the time since the write. The stages are
hooks wrapped around the engine's internals (``meshfs_client.mirror._engine`` and friends):
when those change, change the hooks with them. Not a pass/fail test.
Usage: ``python scripts/bench/mirror_stages.py [--n 50] [--workers 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import running_server  # noqa: E402


def _mirror(url: str, token: str, target: Path, name: str, trace: Path) -> None:
    """One engine with a timestamp written at every stage (runs in its own process)."""
    from meshfs_client import MeshFSClient
    from meshfs_client.mirror import (
        MirrorSync,
        SyncOptions,
        _engine,
        _follower,
        _reconciler,
        _steps,
    )
    from meshfs_client.mirror import _transfers as transfers

    out = open(trace, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def stamp(stage: str, path: str) -> None:
        out.write(f"{time.monotonic():.6f} {name} {stage} {path}\n")

    real_watch = _engine.watch_local

    async def watch(*args: Any, **kwargs: Any) -> AsyncIterator[set[str]]:
        async for batch in real_watch(*args, **kwargs):
            for rel in batch:
                stamp("watch", rel)
            yield batch

    _engine.watch_local = watch  # type: ignore[assignment]
    real_round = _reconciler.Reconciler._round

    async def round_(self: Any, due: list[str], group: asyncio.TaskGroup) -> None:
        for rel in due:
            stamp("round", rel)
        await real_round(self, due, group)

    _reconciler.Reconciler._round = round_  # type: ignore[method-assign]
    real_apply = _follower.RemoteFollower._apply

    def apply(self: Any, event: Any) -> None:
        stamp("event", event.path.removeprefix("/stages"))  # the mirror's own path
        real_apply(self, event)

    _follower.RemoteFollower._apply = apply  # type: ignore[method-assign]

    real_transfer = _steps.StepRunner._transfer

    @functools.wraps(real_transfer)
    async def transfer(self: Any, rel: str, action: Any, *args: Any) -> None:
        stamp(f"{action.kind}-start", rel)
        try:
            await real_transfer(self, rel, action, *args)
        finally:
            stamp(f"{action.kind}-end", rel)

    _steps.StepRunner._transfer = transfer  # type: ignore[method-assign]
    real_write = transfers._write_and_place

    def write_and_place(rel: str, *args: Any) -> Any:
        stamp("write-start", rel)  # the content is here, in the thread that writes it
        return real_write(rel, *args)

    transfers._write_and_place = write_and_place
    real_place = transfers._place

    def place(temp: Path, dest: Path, expected: Any, *args: Any) -> Any:
        placed = real_place(temp, dest, expected, *args)
        stamp("placed", "/" + dest.relative_to(target).as_posix())
        return placed

    transfers._place = place

    async def run() -> None:
        async with MeshFSClient(url, token=token) as client:
            options = SyncOptions(target=target, remote_root="/stages", state_dir=trace.parent)
            await MirrorSync(client, options).run()

    asyncio.run(run())


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except FileNotFoundError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="samples (50)")
    ap.add_argument("--workers", default="1", help="server processes (1)")
    ap.add_argument("--mirror", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mirror:
        url, token, target, name, trace = args.mirror
        _mirror(url, token, Path(target), name, Path(trace))
        return 0
    work = Path(tempfile.mkdtemp(prefix="meshfs-mirror-stages-", dir=os.environ.get("BENCH_DIR")))
    trace = work / "trace.txt"
    a, b = work / "A", work / "B"
    a.mkdir()
    b.mkdir()
    latencies: list[float] = []
    with running_server({"MESHFS_WORKERS": args.workers}) as server:
        engines = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--mirror",
                    server.url,
                    server.token,
                    str(d),
                    n,
                    str(trace),
                ],
                stderr=open(work / f"{n}.log", "wb"),  # noqa: SIM115 - closed with the process
            )
            for d, n in ((a, "A"), (b, "B"))
        ]
        try:
            (a / "ready").write_bytes(b"ready")
            _wait_for(lambda: (b / "ready").exists(), 60, "the mirrors to start")
            for i in range(args.n):
                data = os.urandom(1024)
                name = f"s{i:04d}.bin"
                start = time.monotonic()
                with open(trace, "a") as log:
                    log.write(f"{start:.6f} P write /{name}\n")
                (a / name).write_bytes(data)
                _wait_for(lambda: _same(b / name, data), 60, name)  # noqa: B023
                seen = time.monotonic()
                with open(trace, "a") as log:
                    log.write(f"{seen:.6f} P seen /{name}\n")
                latencies.append((seen - start) * 1000)
                time.sleep(0.3 + (i % 7) * 0.1)  # apart, as separate edits are
        finally:
            for engine in engines:
                engine.send_signal(signal.SIGINT)
            for engine in engines:
                engine.wait(15)
    started: dict[str, float] = {}
    first: dict[tuple[str, str], float] = {}  # (path, stage) -> ms since the write
    for line in trace.read_text().splitlines():
        stamp, who, stage, *rest = line.split()
        path = rest[0] if rest else ""
        if stage == "write":
            started[path] = float(stamp)
        elif path in started:
            key = stage if who == "P" else f"{who} {stage}"
            first.setdefault((path, key), (float(stamp) - started[path]) * 1000)
    shutil.rmtree(work, ignore_errors=True)
    rows: dict[str, list[float]] = {}
    for (_path, key), ms in first.items():
        rows.setdefault(key, []).append(ms)
    print(f"mirror stages: {args.n} samples, {args.workers} server worker(s), ms since the write")
    for key, values in sorted(rows.items(), key=lambda kv: statistics.median(kv[1])):
        print(f"  {key:<20} p50 {statistics.median(values):8.2f}   max {max(values):8.2f}")
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(f"  {'end to end':<20} p50 {q[49]:8.2f}   p99 {q[98]:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
