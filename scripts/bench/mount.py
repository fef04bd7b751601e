"""The MeshFS mount side by side with the local disk, rclone mount and s3fs, in one run.

MeshFS runs on Postgres (fsync on) + SeaweedFS; rclone mount and s3fs mount the same SeaweedFS
bucket (each under a prefix of its own). Not pass/fail: figures and ratios measured in the same
run. Workloads, each on a fresh mount of every file system:

* sequential write of BENCH_MOUNT_MIB MiB (default 1024) in 1 MiB writes, fsync, close, and a
  cold read of it (remounted, so nothing is cached; the local file's pages dropped);
* BENCH_MOUNT_FILES small files (default 5,000 x 4 KiB): create+write+close, stat, unlink;
* ``ls -l`` of BENCH_MOUNT_LS entries (default 10,000), on a fresh mount (cold);
* ``tar x`` (``--touch``: times are not restored, on any file system) of a source tree of
  BENCH_MOUNT_TREE files (default 5,000; generated
  deterministically) and ``git clone`` of a local repository made from part of it;
* visibility: a file closed at one mount, read at a second mount of the same data until the new
  content shows (BENCH_MOUNT_SAMPLES samples, default 100; 5 for the peers, which have no change
  feed and are given up on after BENCH_MOUNT_PEER_WAIT seconds, default 5).

rclone mount runs with ``--vfs-cache-mode writes`` (what editors, tar and git need); its close
returns before the upload, so every rclone write figure includes waiting until the bucket holds
what was written - durable, as MeshFS's close and s3fs's are. A peer that is not installed is
reported as absent (``scripts/bootstrap.sh`` installs both from apt); nothing is faked.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "packages" / "meshfs-server" / "tests"))

from _harness import Server, median, percentile, report, running_server  # noqa: E402
from backends import production_env  # noqa: E402
from meshfs_server_backends import TEST_BUCKET, Postgres, Production, Seaweed  # noqa: E402

MIB = 1024 * 1024
BIN = Path(sys.executable).parent
LOCAL, MESHFS, RCLONE, S3FS = "local disk", "meshfs", "rclone", "s3fs"
SETTLE_SECONDS = float(os.environ.get("BENCH_MOUNT_SETTLE", "300"))
"""How long to wait for rclone's uploads after a workload before noting what is missing."""
WORKLOADS = ("seq", "small", "ls", "tools", "visibility")
"""BENCH_MOUNT_WORKLOADS picks some of them (comma-separated); all by default."""
PEERS = os.environ.get("BENCH_MOUNT_PEERS", f"{RCLONE},{S3FS}").split(",")
"""BENCH_MOUNT_PEERS picks the peers run beside MeshFS and the local disk (comma-separated;
empty for none, e.g. while iterating on MeshFS alone)."""
TAR_OPTIONS = ["--touch", "--no-same-owner", "--no-same-permissions"]
"""The same on every file system: the mount does not set times or modes yet (the POSIX model
comes first), and rclone and s3fs keep neither."""


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.02)


def _unmount(target: Path) -> None:
    if os.path.ismount(target):
        done = subprocess.run(["fusermount3", "-u", str(target)], capture_output=True)
        if done.returncode != 0:
            subprocess.run(["fusermount3", "-uz", str(target)], capture_output=True)


# --- the file systems ------------------------------------------------------------------------


@dataclass
class FileSystem:
    """One file system under test: ``open(name)`` mounts the data set *name* afresh (nothing
    cached); ``settle`` waits until what was written under a directory is stored remotely."""

    kind: str
    work: Path
    opened: int = 0

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Path]:
        raise NotImplementedError

    def settle(self, relative: str, files: int, size: int = 0) -> None:
        """Return once *files* files (of *size* bytes in all) under *relative* are stored for
        good (no-op where a close already is)."""

    def drop_cache(self, path: Path) -> None:
        """Forget cached pages of *path* (only the local disk needs it: mounts are remounted)."""


class LocalDisk(FileSystem):
    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Path]:
        root = self.work / "local" / name
        root.mkdir(parents=True, exist_ok=True)
        yield root

    def drop_cache(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@dataclass
class MeshFSMount(FileSystem):
    server: Server | None = None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Path]:
        assert self.server is not None
        self.opened += 1
        target = self.work / f"meshfs-{self.opened}"
        cache = self.work / f"meshfs-{self.opened}-cache"
        target.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
        env |= {"MESHFS_SERVER": self.server.url, "MESHFS_TOKEN": self.server.token}
        env["MESHFS_CONFIG_DIR"] = str(self.work / "config")
        command = [str(BIN / "meshfs-mount"), str(target), "--cache-dir", str(cache)]
        done = subprocess.run(command, env=env, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode())
        try:
            root = target / name
            root.mkdir(exist_ok=True)
            yield root
        finally:
            _unmount(target)
            _wait(lambda: _unlocked(cache / "lock"), 60, "the MeshFS daemon to exit")


def _unlocked(lock: Path) -> bool:
    import fcntl

    if not lock.exists():
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@dataclass
class S3Peer(FileSystem):
    """rclone mount or s3fs on a prefix of the SeaweedFS bucket."""

    seaweed: Seaweed | None = None
    bucket: str = TEST_BUCKET
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _s3(self):  # type: ignore[no-untyped-def]
        import botocore.session
        from botocore.config import Config

        assert self.seaweed is not None
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.seaweed.endpoint, region_name="us-east-1",
            aws_access_key_id=self.seaweed.access_key,
            aws_secret_access_key=self.seaweed.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip

    def stored(self, prefix: str) -> tuple[int, int]:
        """Objects under *prefix* (directory markers aside) and their total size."""
        pages = self._s3().get_paginator("list_objects_v2")
        items = [
            item
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        return len(items), sum(int(item["Size"]) for item in items)

    def _command(self, target: Path, cache: Path) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return {}

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Path]:
        self.opened += 1
        target = self.work / f"{self.kind}-{self.opened}"
        cache = self.work / f"{self.kind}-{self.opened}-cache"
        target.mkdir()
        cache.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= self._environment()
        log = open(self.work / f"{self.kind}.log", "ab")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            self._command(target, cache), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        try:
            _wait(lambda: os.path.ismount(target) or process.poll() not in (None, 0), 60,
                  f"the {self.kind} mount")  # fmt: skip
            if not os.path.ismount(target):
                raise RuntimeError((self.work / f"{self.kind}.log").read_text(errors="replace"))
            root = target / name
            root.mkdir(exist_ok=True)
            yield root
        finally:
            _unmount(target)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


class RcloneMount(S3Peer):
    def _command(self, target: Path, cache: Path) -> list[str]:
        return ["rclone", "mount", f":s3:{self.bucket}/rclone", str(target),
                "--vfs-cache-mode", "writes", "--vfs-write-back", "0s",
                "--cache-dir", str(cache)]  # fmt: skip

    def _environment(self) -> dict[str, str]:
        assert self.seaweed is not None
        return {"RCLONE_S3_PROVIDER": "Other", "RCLONE_S3_ENDPOINT": self.seaweed.endpoint,
                "RCLONE_S3_ACCESS_KEY_ID": self.seaweed.access_key,
                "RCLONE_S3_SECRET_ACCESS_KEY": self.seaweed.secret_key,
                "RCLONE_S3_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null"}  # fmt: skip

    def settle(self, relative: str, files: int, size: int = 0) -> None:
        prefix = f"rclone/{relative.strip('/')}/"

        def uploaded() -> bool:
            count, total = self.stored(prefix)
            return count >= files and total >= size

        try:
            _wait(uploaded, SETTLE_SECONDS, f"rclone to upload {files} files")
        except RuntimeError:
            count, _ = self.stored(prefix)
            self.notes.append(
                f"{relative}: {files - count} of {files} files not in the bucket after "
                f"{SETTLE_SECONDS:g} s (see rclone's log); the figure counts that wait"
            )


class S3fsMount(S3Peer):
    def _command(self, target: Path, cache: Path) -> list[str]:
        assert self.seaweed is not None
        secrets = cache / "passwd"
        secrets.write_text(f"{self.seaweed.access_key}:{self.seaweed.secret_key}\n")
        secrets.chmod(0o600)
        return ["s3fs", f"{self.bucket}:/s3fs", str(target), "-f",
                "-o", f"url={self.seaweed.endpoint}", "-o", "use_path_request_style",
                "-o", f"passwd_file={secrets}"]  # fmt: skip

    def prepare(self) -> None:
        # s3fs mounts a prefix only if its directory object exists.
        self._s3().put_object(Bucket=self.bucket, Key="s3fs/", Body=b"")


# --- the workloads ---------------------------------------------------------------------------


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


def small_files(fs: FileSystem, root: Path, count: int) -> tuple[float, float, float]:
    """Per second: create+write+close (until stored), stat (warm), unlink."""
    directory = root / "small"
    directory.mkdir()
    payload = os.urandom(4096)
    names = [directory / f"f{i:05d}" for i in range(count)]
    start = time.perf_counter()
    for index, name in enumerate(names):
        with open(name, "wb") as out:
            out.write(index.to_bytes(8, "big") + payload[8:])
    fs.settle(f"{root.name}/small", count)
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


def populate(directory: Path, count: int) -> None:
    """*count* small files, written by 8 threads (setup, not measured)."""
    directory.mkdir()

    def write(index: int) -> None:
        (directory / f"entry-{index:06d}.txt").write_bytes(b"%d\n" % index)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(count)))


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_tree(root: Path, files: int) -> int:
    """A deterministic source tree of *files* files (text, 100 B - 64 KiB, nested dirs)."""
    rng = random.Random(20261202)
    words = [f"symbol_{i}" for i in range(500)]
    made = 0
    while made < files:
        depth = rng.randint(1, 3)
        directory = root.joinpath(*(f"pkg{rng.randint(0, 12)}" for _ in range(depth)))
        directory.mkdir(parents=True, exist_ok=True)
        size = int(100 * (640 ** rng.random()))
        text = " ".join(rng.choice(words) for _ in range(size // 9 + 1))[:size]
        path = directory / f"module_{made:05d}.{rng.choice(['c', 'h', 'py', 'txt'])}"
        path.write_text(text + "\n")
        made += 1
    return made


def make_repository(tree: Path, repo: Path, files: int) -> int:
    """A git repository of the first *files* files of *tree* in three commits."""
    env = dict(os.environ)
    for role in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{role}_NAME"] = "bench"
        env[f"GIT_{role}_EMAIL"] = "bench@example.invalid"
        env[f"GIT_{role}_DATE"] = "2026-01-01T00:00:00Z"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    chosen = sorted(p for p in tree.rglob("*") if p.is_file())[:files]
    for part in range(3):
        for source in chosen[part::3]:
            target = repo / source.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", f"part {part}"], cwd=repo, check=True,
                       env=env)  # fmt: skip
    return len(chosen)


def visibility(first: Path, second: Path, samples: int, give_up: float) -> list[float | None]:
    """Seconds until a closed file's new content shows at *second* (None: not within
    *give_up* seconds)."""
    (first / "seen.txt").write_text("start")
    there = second / "seen.txt"
    with contextlib.suppress(RuntimeError):
        _wait(there.exists, max(give_up, 30), "the first file at the second mount")
    latencies: list[float | None] = []
    for sample in range(samples):
        content = f"sample {sample}".encode()
        (first / "seen.txt").write_bytes(content)
        start = time.perf_counter()
        seen: float | None = None
        while time.perf_counter() - start < give_up:
            try:
                if there.read_bytes() == content:
                    seen = time.perf_counter() - start
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.0005)
        latencies.append(seen)
    return latencies


# --- the run ---------------------------------------------------------------------------------


class Table:
    """Figures of one workload on each file system, printed with ratios."""

    def __init__(self, what: str, unit: str, higher_is_better: bool) -> None:
        self.what, self.unit, self.higher = what, unit, higher_is_better
        self.values: dict[str, float] = {}

    def add(self, kind: str, value: float) -> None:
        self.values[kind] = value

    def print(self) -> None:
        for kind, value in self.values.items():
            notes = []
            # MeshFS against every other; the peers against the local disk.
            others = (LOCAL, RCLONE, S3FS) if kind == MESHFS else (LOCAL,)
            for other in others:
                if other == kind or other not in self.values:
                    continue
                theirs = self.values[other]
                ratio = value / theirs if self.higher else theirs / value
                notes.append(f"{ratio:.2f}x {other}")
            report(f"{kind} {self.what}", value, self.unit, ", ".join(notes))


def run(systems: list[FileSystem], work: Path) -> None:
    size = _env_int("BENCH_MOUNT_MIB", 1024) * MIB
    files = _env_int("BENCH_MOUNT_FILES", 5000)
    entries = _env_int("BENCH_MOUNT_LS", 10000)
    tree_files = _env_int("BENCH_MOUNT_TREE", 5000)
    samples = _env_int("BENCH_MOUNT_SAMPLES", 100)
    peer_wait = float(os.environ.get("BENCH_MOUNT_PEER_WAIT", "5"))
    chosen = os.environ.get("BENCH_MOUNT_WORKLOADS", ",".join(WORKLOADS)).split(",")
    if "seq" in chosen:
        sequential(systems, size)
    if "small" in chosen:
        small(systems, files)
    if "ls" in chosen:
        listing(systems, entries)
    if "tools" in chosen:
        tools(systems, work, tree_files)
    if "visibility" in chosen:
        seen_elsewhere(systems, samples, peer_wait)
    for fs in systems:
        for note in getattr(fs, "notes", []):
            print(f"  {fs.kind}: {note}", flush=True)


def sequential(systems: list[FileSystem], size: int) -> None:

    print(f"sequential {size // MIB} MiB (1 MiB writes, fsync, close; cold read)", flush=True)
    data = os.urandom(size)
    write, read = Table("write", "MiB/s", True), Table("cold read", "MiB/s", True)
    for fs in systems:
        with fs.open("seq") as root:
            seconds = write_file(root / "big.bin", data)
            fs.settle("seq", 1, size)
            fs.drop_cache(root / "big.bin")
            write.add(fs.kind, size / MIB / (seconds or 1e-9))
        with fs.open("seq") as root:
            read.add(fs.kind, size / MIB / read_file(root / "big.bin"))
    del data
    write.print()
    read.print()


def small(systems: list[FileSystem], files: int) -> None:
    print(f"{files} small files of 4 KiB (create+write+close, warm stat, unlink)", flush=True)
    tables = [Table(w, "/s", True) for w in ("create+write+close", "stat", "unlink")]
    for fs in systems:
        with fs.open("small") as root:
            for table, rate in zip(tables, small_files(fs, root, files), strict=True):
                table.add(fs.kind, rate)
    for table in tables:
        table.print()


def listing(systems: list[FileSystem], entries: int) -> None:
    print(f"ls -l of {entries} entries (a fresh mount)", flush=True)
    cold = Table("ls -l", "s", False)
    for fs in systems:
        with fs.open("ls") as root:
            populate(root / "many", entries)
            fs.settle("ls/many", entries)
        with fs.open("ls") as root:
            cold.add(fs.kind, timed(["ls", "-l", str(root / "many")]))
    cold.print()


def tools(systems: list[FileSystem], work: Path, tree_files: int) -> None:
    tree = work / "tree"
    count = make_tree(tree, tree_files)
    archive = work / "tree.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname="tree")
    repo = work / "repo"
    cloned = make_repository(tree, repo, min(count, 1000))
    print(f"tar x of {count} files; git clone of a {cloned}-file repository", flush=True)
    untar, clone = Table("tar x", "s", False), Table("git clone", "s", False)
    for fs in systems:
        with fs.open("tools") as root:
            start = time.perf_counter()
            subprocess.run(["tar", "-x", *TAR_OPTIONS, "-f", str(archive), "-C", str(root)],
                           check=True)  # fmt: skip
            fs.settle("tools/tree", count)
            untar.add(fs.kind, time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(["git", "clone", "-q", f"file://{repo}", str(root / "clone")],
                           check=True)  # fmt: skip
            stored = sum(1 for p in (root / "clone").rglob("*") if p.is_file())
            fs.settle("tools/clone", stored)
            clone.add(fs.kind, time.perf_counter() - start)
    untar.print()
    clone.print()


def seen_elsewhere(systems: list[FileSystem], samples: int, peer_wait: float) -> None:
    print("visibility of a closed file at a second mount of the same data", flush=True)
    for fs in systems:
        if fs.kind == LOCAL:
            continue
        count_here = samples if fs.kind == MESHFS else min(samples, 5)
        give_up = 10.0 if fs.kind == MESHFS else peer_wait
        with fs.open("seen") as first, fs.open("seen") as second:
            latencies = visibility(first, second, count_here, give_up)
        seen = [s for s in latencies if s is not None]
        if len(seen) < len(latencies):
            print(f"  {fs.kind}: {len(latencies) - len(seen)} of {len(latencies)} samples not "
                  f"visible within {give_up:g} s", flush=True)  # fmt: skip
        if seen:
            report(f"{fs.kind} p50 ({len(seen)} seen)", median(seen) * 1000, "ms")
            report(f"{fs.kind} p99", percentile(seen, 99) * 1000, "ms")


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(f"signal {signum}")  # unwinds through the clean-up below


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    work = Path(tempfile.mkdtemp(prefix="meshfs-bench-mount-", dir=os.environ.get("BENCH_DIR")))
    postgres = Postgres.start(fsync=True)
    seaweed: Seaweed | None = None
    peers: list[S3Peer] = []
    try:
        seaweed = Seaweed.start()
        seaweed.create_bucket(TEST_BUCKET)
        production = Production(postgres, seaweed)
        dsn = production.create_database()
        print("MeshFS on Postgres (fsync on) + SeaweedFS; rclone mount and s3fs on the same "
              "bucket", flush=True)  # fmt: skip
        with running_server(production_env(production, dsn)) as server:
            (work / "config").mkdir()
            systems: list[FileSystem] = [
                LocalDisk(LOCAL, work),
                MeshFSMount(MESHFS, work, 0, server),
            ]
            for kind, peer_type in ((RCLONE, RcloneMount), (S3FS, S3fsMount)):
                if kind not in PEERS:
                    continue
                if shutil.which(kind) is None:
                    print(f"  {kind}: not installed - absent from this run "
                          "(scripts/bootstrap.sh installs it)", flush=True)  # fmt: skip
                    continue
                peer = peer_type(kind, work, 0, seaweed)
                if isinstance(peer, S3fsMount):
                    peer.prepare()
                peers.append(peer)
                systems.append(peer)
            run(systems, work)
    finally:
        for peer in peers:
            for process in peer.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        for mount in work.iterdir():
            _unmount(mount)
        if seaweed is not None:
            seaweed.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
