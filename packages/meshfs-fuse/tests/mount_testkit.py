"""Test helpers: a real meshfs-server process, a real login, real mounts in subprocesses."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshfs_client import MeshFS, Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    """Poll *condition* until it holds; fail the test after *deadline_s* seconds."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.01)  # a poll interval, not a synchronisation sleep


@dataclass
class Server:
    """A running meshfs-server process."""

    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    settings: dict[str, str] = field(default_factory=dict)
    """``MESHFS_*`` settings of the server (its backends); the embedded default when empty."""

    def environment(self) -> dict[str, str]:
        """The environment the server and its command line run with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
        return env | self.settings

    def command(self) -> list[str]:
        exe = BIN / "meshfs-server"
        if not exe.exists():
            found = shutil.which("meshfs-server")
            if found is None:
                pytest.fail("meshfs-server is not installed beside meshfs-fuse")
            return [found]
        return [str(exe)]

    def restart(self) -> None:
        """Start the stopped server again, on the same port with the same data."""
        self.process = _launch(self.url, self.data_dir, self.log_path, self.environment())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _launch(
    url: str, data_dir: Path, log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    exe = BIN / "meshfs-server"
    command = [str(exe)] if exe.exists() else [shutil.which("meshfs-server") or "meshfs-server"]
    bind = url.removeprefix("http://")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, "serve", "--bind", bind, "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(lambda: process.poll() is not None or _healthy(url), 90, "meshfs-server")
    except BaseException:
        process.kill()  # a server that never answered is not left running
        process.wait()
        raise
    if process.poll() is not None:
        pytest.fail(f"meshfs-server exited:\n{log_path.read_text()}")
    return process


@contextlib.contextmanager
def running_server(root: Path, settings: dict[str, str] | None = None) -> Iterator[Server]:
    """A server on a free port; *settings* (``MESHFS_*``) choose its backends."""
    url = f"http://127.0.0.1:{free_port()}"
    root.mkdir(parents=True, exist_ok=True)
    data_dir, log_path = root / "server-data", root / "server.log"
    chosen = dict(settings or {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")} | chosen
    server = Server(url, data_dir, log_path, _launch(url, data_dir, log_path, env), chosen)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Account:
    """A signed-in user: its config dir holds the stored login."""

    server: Server
    config_dir: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
        env["MESHFS_SERVER"] = self.server.url
        env["MESHFS_CONFIG_DIR"] = str(self.config_dir)
        return env

    def client(self) -> MeshFS:
        """A blocking client of this account (close it)."""
        return MeshFS(
            self.server.url, settings=Settings(server=self.server.url, config_dir=self.config_dir)
        )


def login(server: Server, config_dir: Path, user: str, tenant: str) -> Account:
    """The real device flow: start, approve from the server's command line, poll, store."""
    with MeshFS(server.url, settings=Settings(server=server.url, config_dir=config_dir)) as fs:
        start = fs.start_device_login("meshfs-fuse-tests")
        subprocess.run(
            [
                *server.command(),
                "approve",
                start.user_code,
                "--data-dir",
                str(server.data_dir),
                "--user",
                user,
                "--tenant",
                tenant,
            ],
            check=True,
            capture_output=True,
            timeout=60,
            env=server.environment(),
        )
        fs.wait_for_device_login(start)
    return Account(server, config_dir)


def is_mounted(target: Path) -> bool:
    """A live mount, or a dead one ("Transport endpoint is not connected")."""
    try:
        return os.path.ismount(target) or (os.listdir(target) is None)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN


def unmount(target: Path) -> None:
    """Unmount *target* if it is mounted (lazily if busy), never leaving a mount behind."""
    if not is_mounted(target):
        return
    done = subprocess.run(["fusermount3", "-u", str(target)], capture_output=True, timeout=30)
    if done.returncode != 0 and os.path.ismount(target):
        subprocess.run(["fusermount3", "-uz", str(target)], capture_output=True, timeout=30)


@dataclass
class Mount:
    """A mount made by a test; ``process`` is set for a foreground daemon."""

    target: Path
    cache_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        path = self.cache_dir / "mount.log"
        return path.read_text(errors="replace") if path.exists() else ""


def mount_command(account: Account, target: Path, cache_dir: Path, *extra: str) -> list[str]:
    return [str(BIN / "meshfs-mount"), str(target), "--cache-dir", str(cache_dir), *extra]


@contextlib.contextmanager
def mounted(
    account: Account, target: Path, cache_dir: Path, *extra: str, foreground: bool = False
) -> Iterator[Mount]:
    """Mount as a user does (background by default), unmount and stop the daemon after."""
    target.mkdir(parents=True, exist_ok=True)
    command = mount_command(account, target, cache_dir, *extra)
    mount = Mount(target, cache_dir)
    try:
        if foreground:
            log = open(cache_dir.parent / f"{cache_dir.name}.foreground.log", "ab")  # noqa: SIM115
            with log:
                mount.process = subprocess.Popen(
                    [*command, "--foreground"],
                    env=account.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            wait_for(
                lambda: os.path.ismount(target) or mount.process.poll() is not None,  # type: ignore[union-attr]
                30,
                "the foreground mount",
            )
            assert os.path.ismount(target), f"mount failed: {mount.process.returncode}"
        else:
            done = subprocess.run(command, env=account.env(), capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr.decode()
            # The command returns once the mount is ready.
            assert os.path.ismount(target)
        yield mount
    finally:
        unmount(target)
        if mount.process is not None and mount.process.poll() is None:
            mount.process.send_signal(signal.SIGTERM)
            try:
                mount.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                mount.process.kill()
                mount.process.wait()
        wait_for(lambda: daemon_gone(cache_dir), 20, "the mount daemon to exit")


def daemon_gone(cache_dir: Path) -> bool:
    """True when no process holds the cache dir's lock (the daemon has exited)."""
    import fcntl

    lock = cache_dir / "lock"
    if not lock.exists():
        return True
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
