"""Which database identity's tables live in, opened for the server and for the CLI commands.

The Postgres database when ``MESHFS_DATABASE_URL`` is set - then every server process (and
``meshfs-server approve / admin / keys``) shares users, tenants, sessions, plans, the signing
keys and the rate-limit buckets - else the embedded SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from meshfs_server.adapters.private_files import prepare_data_dir
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.auth.store import AuthStore
from meshfs_server.settings import Settings


async def open_identity_db(
    settings: Settings, stack: AsyncExitStack, db: SqliteDatabase | None
) -> AuthStore:
    """Identity's database for a server (closed by *stack*).

    On Postgres it gets a pool of its own, so that an identity read made inside a metadata
    transaction (the quota's plan lookup) never waits for a connection metadata holds. On
    SQLite it is the server's database file *db* (opened here when None).
    """
    if settings.database_url is not None:
        from meshfs_server.adapters.postgres_db import PostgresDatabase
        from meshfs_server.adapters.postgres_sql import PostgresSql

        pg = await PostgresDatabase.open(
            settings.database_url,
            pool_size=settings.database_pool_size,
            deadline=settings.database_timeout_seconds,
        )
        stack.push_async_callback(pg.close)
        return PostgresSql(pg)
    from meshfs_server.adapters.sqlite_sql import SqliteSql

    if db is None:
        prepare_data_dir(settings)
        db = await SqliteDatabase.open(settings.sqlite_path, readers=1)
        stack.push_async_callback(db.close)
    return SqliteSql(db)


@asynccontextmanager
async def identity_database(settings: Settings) -> AsyncIterator[AuthStore]:
    """Identity's database for one command (``meshfs-server approve``, ``admin``, ``keys``)."""
    async with AsyncExitStack() as stack:
        yield await open_identity_db(settings, stack, None)
