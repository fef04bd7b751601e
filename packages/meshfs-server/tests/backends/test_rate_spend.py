"""Spending several tokens at once (a bulk transfer's charge): all or nothing, on the buckets
shared through SQLite and through Postgres, and on the in-process buckets.

Two :class:`LeasedBuckets` on one database stand for two server processes. The buckets refill
at 60 per hour, so during a test they give out only their burst.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from meshfs_server_backends import Production, sql_backends

from meshfs_common.errors import RateLimitedError
from meshfs_server.adapters.postgres_db import PostgresDatabase
from meshfs_server.adapters.postgres_sql import PostgresSql
from meshfs_server.adapters.sqlite_db import SqliteDatabase
from meshfs_server.adapters.sqlite_sql import SqliteSql
from meshfs_server.auth.ratelimit import LeasedBuckets, RateLimiter
from meshfs_server.auth.schema import identity_migrations
from meshfs_server.auth.store import AuthStore

CAPACITY = 60.0
HOUR = 3600.0
RATE = CAPACITY / HOUR
KEY = "tenant:t"


@pytest.fixture(params=sql_backends())
def dsn(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """A fresh Postgres database, or None for SQLite."""
    if request.param == "sqlite":
        yield None
        return
    production: Production = request.getfixturevalue("production")
    created = production.create_database()
    yield created
    production.drop_database(created)


@pytest.fixture
async def db(dsn: str | None, tmp_path: Path) -> AsyncIterator[AuthStore]:
    if dsn is None:
        database = await SqliteDatabase.open(tmp_path / "auth.db")
        try:
            store = SqliteSql(database)
            await store.migrate({"identity": identity_migrations("sqlite")})
            yield store
        finally:
            await database.close()
        return
    sql = PostgresSql(await PostgresDatabase.open(dsn, pool_size=2), owned=True)
    try:
        await sql.migrate({"identity": identity_migrations("postgres")})
        yield sql
    finally:
        await sql.close()


async def left_in(db: AuthStore) -> float:
    async with db.read() as conn:
        row = await conn.fetchone("SELECT tokens FROM rate_buckets WHERE bucket_key = ?", (KEY,))
    assert row is not None
    return float(row[0])


async def test_a_refused_spend_of_several_tokens_spends_none(db: AuthStore) -> None:
    a = LeasedBuckets(db, period=HOUR)
    await a.spend(KEY, capacity=CAPACITY, tokens=55)
    before = await left_in(db)
    with pytest.raises(RateLimitedError) as refused:
        await a.spend(KEY, capacity=CAPACITY, tokens=10)
    # Told to wait until all ten are there: the five missing ones at a minute each.
    assert refused.value.retry_after == pytest.approx(5 / RATE, rel=0.01)
    assert await left_in(db) == pytest.approx(before, abs=0.01)
    # The five that are there were not lost with the refusal.
    await a.spend(KEY, capacity=CAPACITY, tokens=5)
    with pytest.raises(RateLimitedError):
        await a.spend(KEY, capacity=CAPACITY)


async def test_another_process_is_refused_nothing_a_refusal_kept_back(db: AuthStore) -> None:
    a, b = LeasedBuckets(db, period=HOUR), LeasedBuckets(db, period=HOUR)
    await a.spend(KEY, capacity=CAPACITY, tokens=50)
    with pytest.raises(RateLimitedError):
        await a.spend(KEY, capacity=CAPACITY, tokens=20)
    # The other process gets every token that is there, one by one.
    for _ in range(10):
        await b.spend(KEY, capacity=CAPACITY)
    with pytest.raises(RateLimitedError):
        await b.spend(KEY, capacity=CAPACITY)


async def test_a_spend_counts_the_slice_this_process_holds(db: AuthStore) -> None:
    a = LeasedBuckets(db, period=HOUR)
    await a.spend(KEY, capacity=CAPACITY)  # A holds the rest of its slice
    assert await left_in(db) == pytest.approx(CAPACITY - LeasedBuckets.slice_of(CAPACITY))
    # Its slice goes back for a spend it cannot pay alone: all the other 59 can be spent at once.
    await a.spend(KEY, capacity=CAPACITY, tokens=int(CAPACITY) - 1)
    with pytest.raises(RateLimitedError):
        await a.spend(KEY, capacity=CAPACITY)


async def test_more_than_a_bucket_holds_is_never_there(db: AuthStore) -> None:
    a = LeasedBuckets(db, period=HOUR)
    with pytest.raises(ValueError, match="61 tokens"):
        await a.spend(KEY, capacity=CAPACITY, tokens=61)


async def test_in_process_buckets_spend_all_or_nothing() -> None:
    now = [0.0]
    limiter = RateLimiter(CAPACITY, HOUR, clock=lambda: now[0])
    await limiter.spend(KEY, tokens=58)
    with pytest.raises(RateLimitedError) as refused:
        await limiter.spend(KEY, tokens=3)
    assert refused.value.retry_after == pytest.approx(1 / RATE)
    await limiter.spend(KEY, tokens=2)
    with pytest.raises(ValueError):
        await limiter.spend(KEY, tokens=61)


async def test_a_bucket_clock_never_goes_back(db: AuthStore) -> None:
    """Two processes read the clock, then wait for the bucket's row in turn: the one that read
    it first must not set the row's time back (the seconds between would refill twice)."""
    a = LeasedBuckets(db, period=HOUR)
    await a.spend(KEY, capacity=CAPACITY, tokens=int(CAPACITY))
    async with db.write() as conn:  # another process's later reading came first
        await conn.execute(
            "UPDATE rate_buckets SET updated_at = updated_at + 600 WHERE bucket_key = ?", (KEY,)
        )
    async with db.read() as conn:
        row = await conn.fetchone(
            "SELECT updated_at FROM rate_buckets WHERE bucket_key = ?", (KEY,)
        )
    assert row is not None
    later = float(row[0])
    with pytest.raises(RateLimitedError):
        await a.spend(KEY, capacity=CAPACITY)
    async with db.read() as conn:
        row = await conn.fetchone(
            "SELECT updated_at, tokens FROM rate_buckets WHERE bucket_key = ?", (KEY,)
        )
    assert row is not None
    assert float(row[0]) >= later
    assert float(row[1]) < 1.0
