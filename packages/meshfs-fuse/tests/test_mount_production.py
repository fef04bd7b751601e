"""The mount on the production backends: a server on Postgres + SeaweedFS (direct transfers
on), with a representative part of the mount's tests run against it - files, coherence,
durability - and a file larger than one chunk, whose bytes travel straight to the object store.

Postgres and SeaweedFS are started here with the server tests' helpers
(``meshfs-server/tests/meshfs_server_backends.py``); ``MESHFS_TEST_POSTGRES_DSN`` points at an
existing Postgres instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import botocore.session
import pytest
from botocore.config import Config
from mount_testkit import Account, Server, login, running_server

from meshfs_client import MeshFS

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "meshfs-server" / "tests"))

from meshfs_server_backends import Production, start_production

# The tests below run again here, on this module's server (the fixtures are overridden).
from test_mount_coherence import (  # noqa: F401
    test_a_second_mount_sees_writes,
    test_api_changes_show_in_the_mount,
)
from test_mount_durability import (  # noqa: F401
    test_kill_9_after_close_loses_nothing,
    test_write_not_closed_is_committed_at_the_next_start,
)
from test_mount_files import (  # noqa: F401
    test_a_file_read_twice_is_fetched_once,
    test_create_write_read_append_truncate,
    test_each_close_is_exactly_one_version,
    test_editor_save_replaces_the_file_atomically,
    test_unlinked_open_file_stays_readable,
)
from test_mount_posix import (  # noqa: F401
    test_a_stale_base_sends_the_whole_file,
    test_chmod_chown_and_times_are_stored_on_the_server,
    test_extended_attributes,
    test_hard_links,
    test_rename_exchange_swaps_two_names,
    test_symbolic_links,
)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def production() -> Iterator[Production]:
    started = start_production()
    try:
        yield started
    finally:
        started.seaweed.stop()
        started.postgres.stop()


@pytest.fixture(scope="module")
def database(production: Production) -> Iterator[str]:
    dsn = production.create_database()
    try:
        yield dsn
    finally:
        production.drop_database(dsn)


@pytest.fixture(scope="module")
def server(
    production: Production, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    settings = {
        "MESHFS_DATABASE_URL": database,
        "MESHFS_OBJECT_STORE_BACKEND": "s3",
        "MESHFS_OBJECT_STORE_BUCKET": production.bucket,
        "MESHFS_OBJECT_STORE_ENDPOINT": production.seaweed.endpoint,
        "MESHFS_OBJECT_STORE_ACCESS_KEY_ID": production.seaweed.access_key,
        "MESHFS_OBJECT_STORE_SECRET_ACCESS_KEY": production.seaweed.secret_key,
        "MESHFS_OBJECT_STORE_FORCE_PATH_STYLE": "true",
        "MESHFS_OBJECT_STORE_DIRECT_TRANSFERS": "true",
    }
    with running_server(tmp_path_factory.mktemp("production-server"), settings) as running:
        yield running


@pytest.fixture(scope="module")
def account(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Account:
    return login(server, tmp_path_factory.mktemp("production-config"), "mounter", "mounter")


def _tables(dsn: str) -> int:
    async def count() -> int:
        connection = await asyncpg.connect(dsn)
        try:
            found: int = await connection.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )
            return found
        finally:
            await connection.close()

    return asyncio.run(count())


def _objects(production: Production) -> int:
    seaweed = production.seaweed
    s3 = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=seaweed.endpoint,
        region_name="us-east-1",
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    listed = s3.list_objects_v2(Bucket=production.bucket)
    return int(listed.get("KeyCount", 0))


def test_the_server_keeps_the_mounts_files_in_postgres_and_seaweedfs(
    home: tuple[Path, str], production: Production, database: str
) -> None:
    # What the tests here prove holds only if the server really is on those backends.
    local, _ = home
    before = _objects(production)
    # Over 64 KiB: smaller chunks are kept in the database, beside the version's row.
    (local / "stored.bin").write_bytes(os.urandom(100_000))
    assert _objects(production) > before
    assert _tables(database) > 0


def test_a_file_of_several_chunks_goes_to_the_object_store_and_back(
    home: tuple[Path, str], api: MeshFS
) -> None:
    local, remote = home
    data = os.urandom(9 * MIB + 12345)  # three 4 MiB chunks, the last one partial
    with open(local / "big.bin", "wb") as out:
        for offset in range(0, len(data), MIB):
            out.write(data[offset : offset + MIB])
    assert hashlib.sha256(api.read_bytes(f"{remote}/big.bin")).digest() == (
        hashlib.sha256(data).digest()
    )
    assert len(api.versions(f"{remote}/big.bin")) == 1
    # Read back through the mount from the object store (the spool is gone after close).
    assert hashlib.sha256((local / "big.bin").read_bytes()).digest() == (
        hashlib.sha256(data).digest()
    )
