"""The MeshFS mount against the local disk, in one run (not pass/fail).

* sequential write of BENCH_MOUNT_MIB MiB (default 256) in 1 MiB writes, fsync, close (the
  close returns once the version is committed), and a cold read of it (the mount remounted,
  so neither the kernel nor the daemon has it cached; the local file's pages dropped);
* BENCH_MOUNT_FILES small files (default 1,000 x 4 KiB): create+write+close, stat, unlink;
* visibility: a file closed at one mount, read at a second mount of the same tenant until the
  new content shows (BENCH_MOUNT_SAMPLES samples, default 100): p50 and p99.

Figures are printed with ratios to the local disk measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Server, median, percentile, report, running_server

MIB = 1024 * 1024
BIN = Path(sys.executable).parent


def _env(server: Server, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_SERVER": server.url, "MESHFS_TOKEN": server.token}
    env["MESHFS_CONFIG_DIR"] = str(config)
    return env


@contextlib.contextmanager
def mounted(server: Server, work: Path, name: str) -> Iterator[Path]:
    target, cache = work / name, work / f"{name}-cache"
    target.mkdir(exist_ok=True)
    command = [str(BIN / "meshfs-mount"), str(target), "--cache-dir", str(cache)]
    done = subprocess.run(command, env=_env(server, work / "config"), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode())
    try:
        yield target
    finally:
        subprocess.run(["fusermount3", "-u", str(target)], check=False)
        deadline = time.monotonic() + 30
        while (cache / "lock").exists() and not _unlocked(cache / "lock"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)


def _unlocked(lock: Path) -> bool:
    import fcntl

    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> float:
    start = time.perf_counter()
    with open(path, "wb") as out:
        view = memoryview(data)
        for offset in range(0, len(data), MIB):
            out.write(view[offset : offset + MIB])
        out.flush()
        os.fsync(out.fileno())
    return time.perf_counter() - start


def read_file(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as source:
        while source.read(MIB):
            pass
    return time.perf_counter() - start


def drop_local_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def small_files(directory: Path, count: int) -> tuple[float, float, float]:
    """Per second: create+write+close, stat (warm), unlink."""
    directory.mkdir()
    payload = os.urandom(4096)
    names = [directory / f"f{i:05d}" for i in range(count)]
    start = time.perf_counter()
    for index, name in enumerate(names):
        with open(name, "wb") as out:
            out.write(index.to_bytes(8, "big") + payload[8:])
    created = time.perf_counter() - start
    for name in names:
        os.stat(name)
    start = time.perf_counter()
    for name in names:
        os.stat(name)
    stated = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        os.unlink(name)
    unlinked = time.perf_counter() - start
    return count / created, count / stated, count / unlinked


def visibility(first: Path, second: Path, samples: int) -> list[float]:
    (first / "seen.txt").write_text("start")
    latencies: list[float] = []
    there = second / "seen.txt"
    deadline = time.monotonic() + 30
    while not there.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the second mount never saw the file")
        time.sleep(0.001)
    for sample in range(samples):
        content = f"sample {sample}".encode()
        (first / "seen.txt").write_bytes(content)  # returns once committed
        start = time.perf_counter()
        while True:
            try:
                if there.read_bytes() == content:
                    break
            except FileNotFoundError:
                pass
            if time.perf_counter() - start > 10:
                raise RuntimeError(f"sample {sample} not visible after 10 s")
            time.sleep(0.0005)
        latencies.append(time.perf_counter() - start)
    return latencies


def main() -> int:
    size = int(os.environ.get("BENCH_MOUNT_MIB", "256")) * MIB
    files = int(os.environ.get("BENCH_MOUNT_FILES", "1000"))
    samples = int(os.environ.get("BENCH_MOUNT_SAMPLES", "100"))
    data = os.urandom(size)
    with (
        tempfile.TemporaryDirectory(
            prefix="meshfs-bench-mount-", dir=os.environ.get("BENCH_DIR")
        ) as tmp,
        running_server() as server,
    ):
        work = Path(tmp)
        local = work / "local"
        local.mkdir()

        print(f"sequential {size // MIB} MiB (1 MiB writes, fsync, close; cold read)")
        local_write = write_file(local / "big.bin", data)
        drop_local_cache(local / "big.bin")
        local_read = read_file(local / "big.bin")
        with mounted(server, work, "a") as mount:
            mount_write = write_file(mount / "big.bin", data)
        with mounted(server, work, "a") as mount:  # a fresh daemon: nothing cached
            mount_read = read_file(mount / "big.bin")
        mib = size / MIB
        report("local disk write", mib / local_write, "MiB/s")
        report("mount write", mib / mount_write, "MiB/s", f"{local_write / mount_write:.2f}x local")
        report("local disk cold read", mib / local_read, "MiB/s")
        report(
            "mount cold read", mib / mount_read, "MiB/s", f"{local_read / mount_read:.2f}x local"
        )

        print(f"{files} small files of 4 KiB (create+write+close, warm stat, unlink)")
        local_rates = small_files(local / "small", files)
        with mounted(server, work, "a") as mount:
            mount_rates = small_files(mount / "small", files)
        for what, here, there in zip(
            ("create+write+close", "stat", "unlink"), local_rates, mount_rates, strict=True
        ):
            report(f"local disk {what}", here, "/s")
            report(f"mount {what}", there, "/s", f"{there / here:.3f}x local")

        print(f"visibility at a second mount ({samples} samples)")
        with mounted(server, work, "a") as first, mounted(server, work, "b") as second:
            latencies = visibility(first, second, samples)
        report("p50", median(latencies) * 1000, "ms")
        report("p99", percentile(latencies, 99) * 1000, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
