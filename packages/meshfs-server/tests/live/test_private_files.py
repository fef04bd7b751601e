"""The data directory, metadata database and content store are private to the server's user:
they hold password hashes, every file name and client addresses."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from meshfs_server_backends import STARTUP_SECONDS

from meshfs_common.ids import new_id
from meshfs_server.app import create_app
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.placement import INLINE_MAX
from meshfs_server.settings import Settings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask (022): without explicit modes, files would be 0644 and dirs 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def serve_once(settings: Settings) -> None:
    """Start the server on *settings*, write a file, stop."""
    actor = Actor(tenant_id=new_id(), user_id=new_id())

    async def authenticate(_conn: object) -> Actor:
        return actor

    app = create_app(settings, authenticate=authenticate, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            # Larger than what the database keeps (64 KiB): a chunk file in the content store.
            secret = b"secret" * (INLINE_MAX // 6 + 1)
            r = await client.put("/files/content", params={"path": "/a/b"}, content=secret)
            assert r.status_code == 201, r.text


def everything_under(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


@pytest.mark.usefixtures("loose_umask")
async def test_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "home" / "meshfs"
    await serve_once(Settings(data_dir=data))
    assert mode(data) == 0o700
    assert mode(tmp_path / "home") == 0o700  # a missing parent is created private too
    db = data / "control-plane" / "metadata.db"
    assert db.exists()
    chunks = [p for p in (data / "content" / "chunks").rglob("*") if p.is_file()]
    assert chunks, "the write stored a chunk"
    for path in everything_under(data):
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path}: {mode(path):04o}"


@pytest.mark.usefixtures("loose_umask")
async def test_an_existing_readable_data_dir_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    await serve_once(Settings(data_dir=data))
    db = data / "control-plane" / "metadata.db"
    # As an older server left them.
    for path in (data, data / "control-plane", data / "content", data / "content" / "chunks"):
        path.chmod(0o755)
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="meshfs_server"):
        await serve_once(Settings(data_dir=data))
    assert mode(data) == mode(data / "control-plane") == mode(data / "content") == 0o700
    assert mode(data / "content" / "chunks") == 0o700
    assert mode(db) == 0o600
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for path in (data, db, data / "content"):
        assert f"{path} was readable by other users" in warned
    assert "(mode 0644)" in warned
    assert "(mode 0755)" in warned


@pytest.mark.usefixtures("loose_umask")
async def test_a_chosen_database_directory_is_left_alone_but_the_file_is_private(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    await serve_once(Settings(data_dir=tmp_path / "data", metadata_sqlite_path=shared / "m.db"))
    assert mode(shared) == 0o755  # not ours to change: other things may live there
    assert mode(shared / "m.db") == 0o600


def test_commands_create_private_files_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    done = subprocess.run(
        [sys.executable, "-m", "meshfs_server", "admin", "create-tenant", "acme",
         "--data-dir", str(data)],
        env=env, capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for path in everything_under(data):
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path}: {mode(path):04o}"
