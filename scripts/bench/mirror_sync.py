"""Mirror-sync benchmark: propagation latency between two `meshfs sync` folders, with Syncthing
measured in the same run as the peer, and the initial sync of many small files.

* Latency: two `meshfs sync` processes mirror one remote directory into folders A and B; the
  shared kit's loop (``../shared/bench/mirror_latency.py`` from the repository root: write 1 KiB
  of random bytes under a new name in one folder, poll the other every 2 ms for identical
  bytes) measures A->B and B->A, n samples each (100). Targets: p50 <= 10 ms, p99 <= 25 ms.
* Floor: what any mirror has to spend, measured in the same run through the client library:
  upload 1 KiB, download it, write it to a local file and fsync it (n samples), printed
  with the p50 of each of the three parts. The file watcher adds well under a millisecond;
  about 6 ms in all on a quiet machine. Most of it is the upload: the server answers once
  the commit's WAL fsync is done (group commit, run in a thread), so the disk's fsync time
  and two thread hand-offs are in every sample.
* Peer: ``../shared/bench/syncthing_latency.py --skip-default`` (two Syncthing instances on
  loopback, watcher delay 1 s, the least it accepts); reported as the ratio of its p50/p99 to
  ours. When syncthing is missing it is installed from the distribution's packages the way
  scripts/bootstrap.sh installs its own (``apt-get install syncthing``, as root); skipped
  with a note when that is not possible, or with ``--skip-syncthing``; about 2 s a sample.
* Initial sync: N files of 1 KiB (default 10,000) in 100 directories; ``meshfs sync --once``
  uploads them into an empty remote directory, then a second ``--once`` into an empty folder
  downloads them; files/s for each, with ``meshfs put -r`` / ``meshfs get -r`` of the same
  tree in the same run as the baseline.

Figures, not pass/fail. Usage: ``python scripts/bench/mirror_sync.py [--n 100] [--files 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import Server, running_server  # noqa: E402

REPO = HERE.parent.parent
KIT = REPO.parent / "shared" / "bench"
FLOOR_MS = 6
"""File watcher, an upload and a download on loopback, one fsync (issue 14, section 5)."""


def _meshfs() -> list[str]:
    exe = Path(sys.executable).with_name("meshfs")
    return (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from meshfs_client.cli import main; main()"]
    )


def _env(server: Server, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_SERVER": server.url, "MESHFS_TOKEN": server.token}
    env |= {"MESHFS_CONFIG_DIR": str(work / "config")}
    return env


def _start_sync(
    server: Server, work: Path, target: Path, remote: str, name: str
) -> subprocess.Popen[bytes]:
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        [*_meshfs(), "-q", "sync", "--target", str(target), "--path", remote,
         "--state-dir", str(work / f"state-{name}")],
        env=_env(server, work), stdout=log, stderr=log,
    )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(condition: object, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():  # type: ignore[operator]
        if time.monotonic() > end:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def latency(server: Server, work: Path, n: int) -> dict[str, object]:
    a, b = work / "A", work / "B"
    a.mkdir()
    b.mkdir()
    sa = _start_sync(server, work, a, "/lat", "a")
    sb = _start_sync(server, work, b, "/lat", "b")
    try:
        # Both mirrors are up when a probe file written in A shows up in B.
        (a / "ready").write_bytes(b"ready")
        _wait_for(lambda: (b / "ready").exists(), 60, "the mirrors to start")
        (a / "samples").mkdir()
        _wait_for(lambda: (b / "samples").is_dir(), 30, "the sample directory")
        out = subprocess.run(
            [sys.executable, str(KIT / "mirror_latency.py"), str(a / "samples"), str(b / "samples"),
             "--both", "--n", str(n), "--pause", "0.1", "--jitter", "1.0", "--seed", "1",
             "--label", "meshfs"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        _stop(sa)
        _stop(sb)
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def floor(server: Server, work: Path, n: int) -> dict[str, object]:
    """Upload 1 KiB, download it, write and fsync it locally: n samples, in ms."""
    from meshfs_client import MeshFSClient

    parts: dict[str, list[float]] = {"upload": [], "download": [], "write+fsync": []}

    async def run() -> list[float]:
        samples: list[float] = []
        async with MeshFSClient(server.url, token=server.token) as client:
            for i in range(n + 1):  # the first one warms the connection up, unrecorded
                data = os.urandom(1024)
                start = time.perf_counter()
                result = await client.upload(f"/floor/f{i:04d}.bin", data)
                uploaded = time.perf_counter()
                got = await client.read_bytes(
                    node_id=result.entry.node_id, version_id=result.entry.version_id
                )
                downloaded = time.perf_counter()
                fd = os.open(work / f"floor-{i}.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                try:
                    os.write(fd, got)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                end = time.perf_counter()
                if i:
                    samples.append((end - start) * 1000)
                    parts["upload"].append((uploaded - start) * 1000)
                    parts["download"].append((downloaded - uploaded) * 1000)
                    parts["write+fsync"].append((end - downloaded) * 1000)
                await asyncio.sleep(0.05)
        return samples

    samples = asyncio.run(run())
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "n": n, "ok": len(samples), "p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1),
        # What the floor is made of (p50 of each part, ms): the upload is most of it.
        "parts_p50_ms": {k: round(statistics.median(v), 2) for k, v in parts.items()},
    }  # fmt: skip


def _install_syncthing() -> bool:
    """Install syncthing from the distribution's packages, as scripts/bootstrap.sh does."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        print("  syncthing not installed and cannot be (needs apt-get as root): peer skipped")
        return False
    print("  syncthing not installed: apt-get install -y syncthing", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}

    def apt_get(*args: str) -> int:
        quiet = subprocess.DEVNULL
        return subprocess.call([apt, *args], stdout=quiet, stderr=quiet, env=env)

    install = ("install", "-y", "-qq", "--no-install-recommends", "syncthing")
    if apt_get(*install) != 0:
        apt_get("update", "-qq")  # the package lists may be missing or stale
        apt_get(*install)
    if shutil.which("syncthing") is None:
        print("  could not install syncthing: peer skipped", flush=True)
        return False
    return True


def syncthing(n: int) -> dict[str, object] | None:
    if shutil.which("syncthing") is None and not _install_syncthing():
        return None
    out = subprocess.run(
        [sys.executable, str(KIT / "syncthing_latency.py"), "--skip-default", "--n", str(n)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not out.stdout.strip():
        print(f"  syncthing run failed: {out.stderr[-500:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _tree(root: Path, files: int) -> None:
    for i in range(files):
        directory = root / f"d{i % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:05d}.txt").write_bytes(os.urandom(1024))


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def initial_sync(server: Server, work: Path, files: int) -> dict[str, float]:
    source = work / "initial-src"
    _tree(source, files)
    env = _env(server, work)
    up = _timed(
        [*_meshfs(), "-q", "sync", "--once", "--target", str(source), "--path", "/initial",
         "--state-dir", str(work / "state-init-up")], env,
    )  # fmt: skip
    down_dir = work / "initial-dst"
    down = _timed(
        [*_meshfs(), "-q", "sync", "--once", "--target", str(down_dir), "--path", "/initial",
         "--state-dir", str(work / "state-init-down")], env,
    )  # fmt: skip
    copied = sum(1 for _ in down_dir.rglob("*.txt"))
    put = _timed([*_meshfs(), "-q", "put", "-r", str(source), "/baseline"], env)
    get = _timed([*_meshfs(), "-q", "get", "-r", "/baseline", str(work / "baseline-dst")], env)
    return {
        "files": files,
        "downloaded_files": copied,
        "sync_up_s": up,
        "sync_down_s": down,
        "put_r_s": put,
        "get_r_s": get,
        "sync_up_files_per_s": files / up,
        "sync_down_files_per_s": files / down,
        "put_r_files_per_s": files / put,
        "get_r_files_per_s": files / get,
    }


def _row(label: str, run: dict[str, object]) -> str:
    return (
        f"  {label:<28} p50 {run.get('p50_ms', float('nan')):>8} ms   "
        f"p99 {run.get('p99_ms', float('nan')):>8} ms   ok {run.get('ok')}/{run.get('n')}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="latency samples per direction (100)")
    ap.add_argument("--files", type=int, default=10_000, help="files for the initial sync")
    ap.add_argument("--skip-syncthing", action="store_true")
    ap.add_argument("--skip-initial", action="store_true")
    args = ap.parse_args()
    if not (KIT / "mirror_latency.py").exists():
        print(f"the shared latency kit is missing: {KIT}", file=sys.stderr)
        return 2
    results: dict[str, object] = {}
    work = Path(tempfile.mkdtemp(prefix="meshfs-mirror-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        with running_server() as server:
            print("mirror latency (meshfs sync, two processes, one server)", flush=True)
            ours = latency(server, work, args.n)
            results["meshfs"] = ours
            for run in ours["runs"]:  # type: ignore[attr-defined]
                print(_row(f"meshfs {run['direction']}", run), flush=True)
            base = floor(server, work, args.n)
            results["floor"] = base
            print(_row("floor: up+down+fsync", base), flush=True)
            parts = base["parts_p50_ms"]
            assert isinstance(parts, dict)
            line = "   ".join(f"{k} {v} ms" for k, v in parts.items())
            print(f"  {'floor parts, p50':<28} {line}", flush=True)
            print(f"  {'floor on a quiet machine':<28} p50 ~{FLOOR_MS:>6} ms", flush=True)
            for run in ours["runs"]:  # type: ignore[attr-defined]
                for q in ("p50_ms", "p99_ms"):
                    ratio = run[q] / base[q] if base.get(q) else float("nan")  # type: ignore[operator]
                    print(f"  meshfs {run['direction']}/floor {q:<10} {ratio:>8.1f}x", flush=True)
            if not args.skip_initial:
                print(f"initial sync of {args.files} files of 1 KiB", flush=True)
                init = initial_sync(server, work, args.files)
                results["initial"] = init
                for key in ("sync_up", "sync_down", "put_r", "get_r"):
                    print(f"  {key:<28} {init[key + '_files_per_s']:>8.0f} files/s "
                          f"({init[key + '_s']:.1f} s)", flush=True)  # fmt: skip
                up_ratio = init["sync_up_files_per_s"] / init["put_r_files_per_s"]
                down_ratio = init["sync_down_files_per_s"] / init["get_r_files_per_s"]
                print(f"  sync up / put -r             {up_ratio:.2f}x", flush=True)
                print(f"  sync down / get -r           {down_ratio:.2f}x", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.skip_syncthing:
        print("syncthing peer (shared kit, watcher delay 1 s)", flush=True)
        peer = syncthing(args.n)
        if peer is not None:
            results["syncthing"] = peer
            ab = next(r for r in ours["runs"] if r["direction"] == "A->B")  # type: ignore[attr-defined]
            for run in peer.get("runs", []):  # type: ignore[attr-defined]
                print(_row(f"syncthing {run.get('label')}", run), flush=True)
                if run.get("label") == "low1":
                    for q in ("p50_ms", "p99_ms"):
                        ratio = run[q] / ab[q] if ab.get(q) else float("nan")
                        print(f"  syncthing/meshfs {q:<12} {ratio:>8.1f}x", flush=True)
            print(_row("meshfs A->B (again)", ab), flush=True)
    print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
