"""Tenant rate limits shared by several server processes through Postgres (leased buckets).

Two :class:`LeasedBuckets` on one database stand for two server processes. The bucket here
refills at 60 per hour, so during a test it gives out only its burst: exactly what a single
bucket would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from meshfs_server_backends import Production

from meshfs_common.errors import RateLimitedError
from meshfs_server.adapters.postgres_db import PostgresDatabase
from meshfs_server.adapters.postgres_sql import PostgresSql
from meshfs_server.auth.ratelimit import LeasedBuckets
from meshfs_server.auth.schema import identity_migrations

CAPACITY = 60.0
HOUR = 3600.0


class Clock:
    """A monotonic clock a test moves by hand (lease expiry is local time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dsn(production: Production) -> Iterator[str]:
    created = production.create_database()
    yield created
    production.drop_database(created)


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[PostgresSql]:
    sql = PostgresSql(await PostgresDatabase.open(dsn, pool_size=4), owned=True)
    try:
        await sql.migrate({"identity": identity_migrations("postgres")})
        yield sql
    finally:
        await sql.close()


async def admitted(buckets: LeasedBuckets, key: str, attempts: int) -> int:
    """How many of *attempts* requests are admitted (each refusal says how long to wait)."""
    ok = 0
    waits: list[float | None] = []
    for _ in range(attempts):
        try:
            await buckets.spend(key, capacity=CAPACITY)
            ok += 1
        except RateLimitedError as exc:
            waits.append(exc.retry_after)
    assert all(w is not None and w > 0 for w in waits)
    return ok


async def test_two_processes_together_admit_one_bucket(db: PostgresSql) -> None:
    a, b = LeasedBuckets(db, period=HOUR), LeasedBuckets(db, period=HOUR)
    total = 0
    for _ in range(50):  # interleaved, as a load balancer would spread them
        total += await admitted(a, "tenant:t1", 2)
        total += await admitted(b, "tenant:t1", 2)
    assert total == CAPACITY
    # Another tenant has a bucket of its own.
    assert await admitted(a, "tenant:t2", 5) == 5


async def test_a_leased_slice_is_spent_locally(db: PostgresSql) -> None:
    a = LeasedBuckets(db, period=HOUR)
    await a.spend("tenant:t", capacity=CAPACITY)
    async with db.read() as conn:
        row = await conn.fetchone("SELECT tokens FROM rate_buckets WHERE bucket_key = 'tenant:t'")
    assert row is not None
    slice_ = LeasedBuckets.slice_of(CAPACITY)
    assert row[0] == pytest.approx(CAPACITY - slice_, abs=0.1)
    # The rest of the slice costs no round trip: the row does not move.
    for _ in range(int(slice_) - 1):
        await a.spend("tenant:t", capacity=CAPACITY)
    async with db.read() as conn:
        again = await conn.fetchone("SELECT tokens FROM rate_buckets WHERE bucket_key = 'tenant:t'")
    assert again == row


async def test_an_expired_slice_is_given_back_not_spent(db: PostgresSql) -> None:
    clock_a = Clock()
    a = LeasedBuckets(db, period=HOUR, clock=clock_a)
    b = LeasedBuckets(db, period=HOUR)
    assert await admitted(a, "tenant:t", 1) == 1  # A now holds the rest of its slice
    clock_a.now += a.lease_seconds(CAPACITY) + 1  # ...past its time
    got_b = await admitted(b, "tenant:t", 100)
    assert got_b == CAPACITY - LeasedBuckets.slice_of(CAPACITY)
    # A's expired tokens go back to the bucket with its next lease and are granted again.
    got_a = await admitted(a, "tenant:t", 100)
    assert 1 + got_a + got_b == CAPACITY


async def test_refusals_do_not_hit_the_database_until_the_wait_is_over(db: PostgresSql) -> None:
    a = LeasedBuckets(db, period=HOUR)
    assert await admitted(a, "tenant:t", 100) == CAPACITY
    await db.close()  # any further round trip would fail with a closed pool
    with pytest.raises(RateLimitedError) as refused:
        await a.spend("tenant:t", capacity=CAPACITY)
    assert refused.value.retry_after is not None
    assert refused.value.retry_after > 1
