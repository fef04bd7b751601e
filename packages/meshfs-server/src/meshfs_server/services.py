"""Everything a running server holds, created in one place and closed in reverse order.

:func:`open_services` is the composition root: it opens storage, builds the domain services
and the tenant policy they are given (the storage quota as their ``QuotaPolicy``), and yields
one frozen, typed :class:`Services`; the app's lifespan runs its background loops in a task group
that it cancels before the services close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from meshfs_common.ids import new_id
from meshfs_server.adapters.local_content import LocalContentStore
from meshfs_server.adapters.private_files import prepare_data_dir
from meshfs_server.adapters.socket_doorbell import SocketDoorbell
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.adapters.sqlite_metadata import SqliteMetadataStore
from meshfs_server.auth.service import Identity
from meshfs_server.auth.stream_counts import SharedStreamCounts
from meshfs_server.domain.collector import Collector
from meshfs_server.domain.content import ContentService
from meshfs_server.domain.direct import DirectTransfers, PresigningStore
from meshfs_server.domain.feed import ChangeFeed, LocalBus
from meshfs_server.domain.history import History
from meshfs_server.domain.namespace import Namespace
from meshfs_server.domain.ports import ContentStore, MetadataStore
from meshfs_server.domain.snapshots import Snapshots
from meshfs_server.domain.xattrs import ExtendedAttributes
from meshfs_server.http.authn import Authenticate, authenticator
from meshfs_server.http.streams import StreamSlots
from meshfs_server.settings import Settings

if TYPE_CHECKING:
    from meshfs_server.adapters.postgres_notify import PostgresDoorbell

__all__ = ["Authenticate", "Services", "migrate_metadata", "open_services", "prepare_data_dir"]


@dataclass(frozen=True)
class Services:
    """What a running server holds (built by :func:`open_services`, read by routes through
    :func:`meshfs_server.http.state.services`)."""

    settings: Settings
    db: SqliteDatabase | None
    """The embedded database file (None on Postgres, where nothing lives in SQLite)."""
    store: MetadataStore
    content_store: ContentStore
    bus: LocalBus
    feed: ChangeFeed
    namespace: Namespace
    content: ContentService
    collector: Collector
    authenticate: Authenticate
    history: History
    snapshots: Snapshots
    xattrs: ExtendedAttributes
    identity: Identity | None = None
    """Accounts, sessions and tokens (None in an app built with a custom authenticate)."""
    settings_heartbeat: float = 15.0
    streams: StreamSlots = field(default_factory=lambda: StreamSlots(8, 64))
    """Open SSE and WebSocket change streams, per token and per tenant (this process)."""
    direct: DirectTransfers | None = None  # presigned URLs (S3 with direct transfers on)
    doorbell: PostgresDoorbell | SocketDoorbell | None = None
    """Rings this process's subscribers for other server processes' commits: LISTEN/NOTIFY on
    Postgres, a unix datagram socket per process on the embedded database."""


def doorbell_dir(settings: Settings) -> Path:
    """Where the embedded database's worker processes keep their doorbell sockets."""
    return settings.sqlite_path.parent / "doorbell"


async def open_metadata(
    settings: Settings, stack: AsyncExitStack, db: SqliteDatabase | None, *, instance: str = ""
) -> MetadataStore:
    """The namespace metadata store *settings* select (closed by *stack*).

    Postgres when MESHFS_DATABASE_URL is set; else the SQLite database *db* (which identity
    shares). *instance* names this process in the change notifications it sends to the others.
    """
    if settings.database_url is None:
        assert db is not None, "the embedded database is opened first"
        return await SqliteMetadataStore.open(db)
    from meshfs_server.adapters.postgres_db import PostgresDatabase
    from meshfs_server.adapters.postgres_metadata import PostgresMetadataStore

    pg = await PostgresDatabase.open(
        settings.database_url,
        pool_size=settings.database_pool_size,
        deadline=settings.database_timeout_seconds,
    )
    stack.push_async_callback(pg.close)
    return await PostgresMetadataStore.open(
        pg, migrate=settings.database_migrate_on_start, instance=instance
    )


async def migrate_metadata(settings: Settings, *, dry_run: bool = False) -> list[str]:
    """Apply the metadata migrations *settings* select (``meshfs-server migrate``); returns the
    ``component:version`` applied (or, with *dry_run*, pending). Identity migrates its own
    SQLite tables when the server starts."""
    if settings.database_url is None:
        prepare_data_dir(settings)
        db = await SqliteDatabase.open(settings.sqlite_path)
        try:
            pending = await _sqlite_pending(db)
            if not dry_run:
                await SqliteMetadataStore.open(db)
            return pending
        finally:
            await db.close()
    from meshfs_server.adapters.postgres_db import PostgresDatabase
    from meshfs_server.adapters.postgres_metadata import NAMESPACE_MIGRATIONS
    from meshfs_server.auth.schema import POSTGRES_IDENTITY_MIGRATIONS

    pg = await PostgresDatabase.open(
        settings.database_url,
        pool_size=2,
        deadline=settings.database_timeout_seconds,
    )
    try:
        # Identity's tables live in the same database (see auth/storage.py).
        migrations = {"namespace": NAMESPACE_MIGRATIONS, "identity": POSTGRES_IDENTITY_MIGRATIONS}
        if dry_run:
            return await pg.pending_migrations(migrations)
        return await pg.migrate(migrations)
    finally:
        await pg.close()


async def _sqlite_pending(db: SqliteDatabase) -> list[str]:
    from meshfs_server.adapters.sqlite_metadata import NAMESPACE_MIGRATIONS

    async with db.read() as conn:
        known = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        done = (
            {(c, v) for c, v in conn.execute("SELECT component, version FROM schema_migrations")}
            if known
            else set()
        )
    return [
        f"namespace:{v}"
        for v in range(1, len(NAMESPACE_MIGRATIONS) + 1)
        if ("namespace", v) not in done
    ]


async def open_content(settings: Settings, stack: AsyncExitStack) -> ContentStore:
    """The content store *settings* select (closed by *stack*)."""
    if settings.object_store_backend == "s3":
        from meshfs_server.adapters.s3_content import S3ContentStore

        s3 = await S3ContentStore.create(settings)
        stack.push_async_callback(s3.close)
        return s3
    local = await LocalContentStore.create(settings.content_path)
    stack.push_async_callback(local.close)
    return local


@asynccontextmanager
async def open_services(
    settings: Settings, *, authenticate: Authenticate | None = None
) -> AsyncIterator[Services]:
    """Open storage and build the domain services for *settings*. Their background loops (the
    doorbell) are run by the owner's task group (see :func:`meshfs_server.app.create_app`)."""
    async with AsyncExitStack() as stack:
        prepare_data_dir(settings)
        db = None
        if settings.database_url is None:
            db = await SqliteDatabase.open(settings.sqlite_path)
            stack.push_async_callback(db.close)
        instance = new_id()
        store = await open_metadata(settings, stack, db, instance=instance)
        content_store = await open_content(settings, stack)
        bus = LocalBus()
        feed = ChangeFeed(store, bus)
        doorbell: PostgresDoorbell | SocketDoorbell | None = None
        if settings.database_url is None:
            # Other worker processes on this machine share the file: ring them on commit.
            doorbell = SocketDoorbell(doorbell_dir(settings), instance, feed.ring)
            feed.announce = doorbell.announce
        identity = None
        if authenticate is None:
            from meshfs_server.auth.storage import open_identity_db

            identity = await Identity.open(await open_identity_db(settings, stack, db), settings)
            stack.push_async_callback(identity.close)
            authenticate = authenticator(identity)
        content = ContentService(
            store, content_store, feed, quota=identity.quota if identity is not None else None
        )
        direct = None
        # Settings allow direct transfers only on S3, the store that presigns.
        if settings.object_store_direct_transfers and isinstance(content_store, PresigningStore):
            direct = DirectTransfers(content, content_store)
        history = History(store, content)
        if settings.database_url is not None:
            from meshfs_server.adapters.postgres_notify import PostgresDoorbell

            # Other server processes' commits ring this process's subscribers.
            doorbell = PostgresDoorbell(
                settings.database_url, instance, feed.ring, bus.ring_all,
                timeout=settings.database_timeout_seconds,
            )  # fmt: skip
        yield Services(
            settings=settings,
            db=db,
            store=store,
            content_store=content_store,
            bus=bus,
            feed=feed,
            namespace=Namespace(store, feed),
            content=content,
            collector=Collector(store, content_store, grace=float(settings.gc_grace_seconds)),
            authenticate=authenticate,
            history=history,
            snapshots=Snapshots(store, feed, history),
            xattrs=ExtendedAttributes(store, feed),
            identity=identity,
            direct=direct,
            doorbell=doorbell,
            streams=StreamSlots(
                settings.max_streams_per_token,
                settings.max_streams_per_tenant,
                SharedStreamCounts(identity.db, instance) if identity is not None else None,
            ),
        )
