"""Token-bucket rate limits: per tenant on every endpoint, per client address on auth.

A bucket of capacity C refilled at C per period allows bursts of C and a sustained C per period.
Answers over the limit are ``429 rate_limited`` with ``Retry-After`` (seconds until one token
is back).

Where the buckets live: in the ``rate_buckets`` table of the server's database, one per key,
shared by every server process (the workers of ``serve --workers N`` on one SQLite file, or
any number of processes on one Postgres), leased in slices (:class:`LeasedBuckets`). A process
takes a slice of S tokens in one statement (Postgres: ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``, the refill computed on the database's clock) or one short write transaction
(SQLite: the machine's clock) and spends it locally, so a request costs a database round trip
only once per S requests (S = C/20, at least 1). A slice is spendable for at most T = S/R
seconds (R = C per period; T at least 1 s, at most 10 s); what is left after that is given back
with the next lease, never spent. Bounds, for N processes serving a tenant: the shared bucket
never grants more than one bucket would, and tokens in the hands of processes are at most N*S,
so in any time window the tenant is admitted at most N*S (N/20 of the burst) more than a single
bucket would admit, and a process that cannot get a slice refuses at once. The other way,
tokens idle in one process's slice (at most S each) are unavailable to the others until the
slice is returned or refilled.

A spend of several tokens at once (a bulk transfer's charge) is all or nothing: the process
gives back what it holds and the shared bucket grants all of them or none, so a refusal spends
nothing and leaves no tokens idle in the refused process.

The client-address budgets are shared the same way (their slices are small: 6 sign-in
requests, and 1 failed guess, so N processes together admit what one would).
:class:`RateLimiter` keeps buckets in one process's memory (tests, and servers built without
a database).

- Tenant budget: the plan's requests per minute (see :mod:`.plans`), counted on every
  authenticated HTTP request.
- Client-address budgets: :data:`AUTH_PER_MINUTE` requests per minute on ``/auth/*`` and the
  approval page; and :data:`GUESSES_PER_WINDOW` failed user-code or password attempts per
  :data:`GUESS_WINDOW` seconds (guessing a user code is slow: 19^8 codes, 10 guesses / 15 min).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from meshfs_common.errors import RateLimitedError
from meshfs_server.auth.store import AuthStore

AUTH_PER_MINUTE = 120
GUESSES_PER_WINDOW = 10
GUESS_WINDOW = 900.0
MAX_BUCKETS = 100_000


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A family of token buckets keyed by a string (a tenant id, an address...)."""

    def __init__(
        self, capacity: float, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.period = period
        self.clock = clock
        self._buckets: dict[str, Bucket] = {}

    def _bucket(self, key: str, capacity: float, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[key] = Bucket(capacity, now)
        else:
            rate = capacity / self.period
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely carries no information.
        for key in [k for k, b in self._buckets.items() if now - b.updated >= self.period]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()

    def take(
        self, key: str, *, capacity: float | None = None, what: str = "requests", tokens: int = 1
    ) -> None:
        """Spend *tokens* tokens, all or none, or raise :class:`RateLimitedError` with the wait
        in seconds until they are there."""
        cap = self.capacity if capacity is None else capacity
        _check_fits(tokens, cap)
        now = self.clock()
        bucket = self._bucket(key, cap, now)
        if bucket.tokens >= tokens:
            bucket.tokens -= tokens
            return
        wait = (tokens - bucket.tokens) * self.period / cap
        raise RateLimitedError(
            f"too many {what}; retry in {wait:.0f}s" if wait >= 1 else f"too many {what}",
            retry_after=wait,
        )

    async def spend(
        self, key: str, *, capacity: float | None = None, what: str = "requests", tokens: int = 1
    ) -> None:
        """:meth:`take`, as a :class:`TenantBudget`."""
        self.take(key, capacity=capacity, what=what, tokens=tokens)

    async def check_empty(self, key: str, *, what: str = "attempts") -> None:
        """:meth:`check`, as a :class:`Budget`."""
        self.check(key, what=what)

    def check(self, key: str, *, capacity: float | None = None, what: str = "attempts") -> None:
        """Raise like :meth:`take` when the bucket is empty, without spending."""
        cap = self.capacity if capacity is None else capacity
        now = self.clock()
        bucket = self._bucket(key, cap, now)
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) * self.period / cap
            raise RateLimitedError(f"too many failed {what}; retry later", retry_after=wait)


class TenantBudget(Protocol):
    """Request budgets by key (a tenant, an address)."""

    async def spend(
        self, key: str, *, capacity: float | None = None, what: str = "requests", tokens: int = 1
    ) -> None:
        """Spend *tokens* tokens of *key*'s bucket (of *capacity* per period, or the budget's
        own), all or none: over the budget nothing is spent and :class:`RateLimitedError` says
        how many seconds until all of them are there. More than *capacity* are never there
        (:class:`ValueError`)."""
        ...


class Budget(TenantBudget, Protocol):
    """A budget that can also be checked without spending (failed sign-in attempts)."""

    async def check_empty(self, key: str, *, what: str = "attempts") -> None:
        """Raise :class:`RateLimitedError` while *key*'s bucket is empty, spending nothing."""
        ...


LEASE_FRACTION = 20
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 10.0

# One statement, one round trip: create the bucket full, or refill it (database clock) and add
# back what the caller returns, cap it, and grant up to the asked slice of whole tokens - or
# none when fewer than the minimum are there (an all-or-nothing spend of several tokens).
# Parameters: $1 key, $2 capacity, $3 wanted, $4 minimum, $5 returned, $6 rate.
_HELD = (
    "LEAST($2::float8, b.tokens + $5::float8"
    " + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * $6::float8)"
)


def _grant(tokens: str) -> str:
    """The whole tokens granted of *tokens* held: up to the wanted slice, none below the
    minimum."""
    return (
        f"(CASE WHEN floor({tokens}) >= $4::float8"
        f" THEN LEAST($3::float8, floor({tokens})) ELSE 0 END)"
    )


_LEASE_SQL = f"""
INSERT INTO rate_buckets AS b (bucket_key, tokens, updated_at, granted)
VALUES ($1, $2::float8 - {_grant("$2::float8")},
        extract(epoch FROM statement_timestamp()), {_grant("$2::float8")})
ON CONFLICT (bucket_key) DO UPDATE SET
    granted = {_grant(_HELD)},
    tokens = {_HELD} - {_grant(_HELD)},
    updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
RETURNING granted, tokens
"""


@dataclass(slots=True)
class _Lease:
    tokens: float = 0.0  # whole tokens granted and not yet spent
    expires: float = 0.0  # monotonic; after it, the rest goes back with the next lease
    empty_until: float = 0.0  # the shared bucket was empty: refuse locally until then
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedBuckets:
    """Buckets shared by every server process through the ``rate_buckets`` table, spent
    locally in leased slices; the bounds are in the module docstring."""

    def __init__(
        self,
        db: AuthStore,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        capacity: float = 1.0,
        prefix: str = "",
    ) -> None:
        self.db = db
        self.prefix = prefix
        """Prepended to keys in the table (budgets of different kinds share it)."""
        self.period = period
        self.clock = clock
        self.capacity = capacity
        """The capacity of a bucket whose spender names none."""
        self._leases: dict[str, _Lease] = {}

    @staticmethod
    def slice_of(capacity: float) -> float:
        """How many tokens one lease asks for."""
        return float(max(1, math.ceil(capacity / LEASE_FRACTION)))

    def lease_seconds(self, capacity: float) -> float:
        """How long a slice may be spent: about the time the bucket takes to refill it."""
        refill = self.slice_of(capacity) * self.period / capacity
        return min(MAX_LEASE_SECONDS, max(MIN_LEASE_SECONDS, refill))

    async def spend(
        self, key: str, *, capacity: float | None = None, what: str = "requests", tokens: int = 1
    ) -> None:
        """Spend *tokens* tokens, all or none, leasing from the shared bucket when this
        process's slice does not hold them (see :meth:`TenantBudget.spend`)."""
        capacity = self.capacity if capacity is None else capacity
        _check_fits(tokens, capacity)
        rate = capacity / self.period
        lease = self._leases.get(key)
        if lease is None:
            if len(self._leases) >= MAX_BUCKETS:
                self._forget_idle()
            lease = self._leases[key] = _Lease()
        if self._spend_local(lease, what, tokens, rate):
            return
        async with lease.lock:  # one lease at a time per key; the others wait and share it
            if self._spend_local(lease, what, tokens, rate):
                return
            now = self.clock()
            # Whatever this process still holds goes back (expired, or too few for this spend):
            # the shared bucket decides on all of it, so a refused spend loses nothing and
            # nothing idles here while the others are refused.
            returned, lease.tokens = lease.tokens, 0.0
            wanted = max(self.slice_of(capacity), float(tokens))
            granted, left = await self._lease(key, capacity, wanted, tokens, returned, rate)
            lease.tokens = granted
            lease.expires = now + self.lease_seconds(capacity)
            if granted >= tokens:
                lease.tokens -= tokens
                return
            if left < 1.0:
                lease.empty_until = now + (1.0 - left) / rate
            raise _limited(what, (tokens - left) / rate)

    async def _lease(
        self, key: str, capacity: float, wanted: float, minimum: int, returned: float,
        rate: float,
    ) -> tuple[float, float]:  # fmt: skip
        """Take up to *wanted* whole tokens from the shared bucket (none unless *minimum* are
        there), giving back *returned*: (granted, tokens left in it)."""
        key = self.prefix + key
        if self.db.dialect == "postgres":
            async with self.db.autocommit() as conn:
                row = await conn.fetchone(
                    _LEASE_SQL, (key, capacity, wanted, float(minimum), returned, rate)
                )
            assert row is not None
            return float(row[0]), float(row[1])
        # SQLite: one short write transaction; every process reads the same machine clock, once
        # it holds the write lock (a time read before waiting for it could be older than the
        # row's and refill the same seconds twice).
        async with self.db.write(durable=False) as conn:
            now = time.time()
            row = await conn.fetchone(
                "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = ?", (key,)
            )
            tokens = capacity
            if row is not None:
                now = max(now, float(row[1]))
                refill = max(0.0, now - float(row[1])) * rate
                tokens = min(capacity, float(row[0]) + returned + refill)
            whole = math.floor(tokens)
            granted = float(min(wanted, whole)) if whole >= minimum else 0.0
            await conn.execute(
                "INSERT INTO rate_buckets (bucket_key, tokens, updated_at, granted)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (bucket_key) DO UPDATE SET"
                " tokens = excluded.tokens, updated_at = excluded.updated_at,"
                " granted = excluded.granted",
                (key, tokens - granted, now, granted),
            )
        return granted, tokens - granted

    async def check_empty(self, key: str, *, what: str = "attempts") -> None:
        """Raise :class:`RateLimitedError` while *key*'s shared bucket (and this process's
        slice of it) is empty, spending nothing."""
        lease = self._leases.get(key)
        now = self.clock()
        if lease is not None:
            if lease.tokens >= 1.0 and lease.expires > now:
                return
            if lease.empty_until > now:
                raise _guessed(what, lease.empty_until - now)
        async with self.db.read() as conn:
            row = await conn.fetchone(
                "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = ?",
                (self.prefix + key,),
            )
        if row is None:
            return
        rate = self.capacity / self.period
        # The database's clock on Postgres, the machine's on SQLite: both are epoch seconds.
        tokens = float(row[0]) + max(0.0, time.time() - float(row[1])) * rate
        if tokens < 1.0:
            raise _guessed(what, (1.0 - tokens) / rate)

    def _spend_local(self, lease: _Lease, what: str, tokens: int, rate: float) -> bool:
        now = self.clock()
        if lease.tokens >= tokens and lease.expires > now:
            lease.tokens -= tokens
            return True
        if lease.empty_until > now:
            # Not even one token is there yet; the rest come at the bucket's rate after it.
            raise _limited(what, lease.empty_until - now + (tokens - 1) / rate)
        return False

    def _forget_idle(self) -> None:
        # Leases past their time and nothing to return carry no information.
        now = self.clock()
        for key in [k for k, v in self._leases.items() if v.expires < now and v.tokens < 1]:
            del self._leases[key]
        if len(self._leases) >= MAX_BUCKETS:
            self._leases.clear()


def _check_fits(tokens: int, capacity: float) -> None:
    if tokens < 1 or tokens > capacity:
        raise ValueError(f"cannot spend {tokens} tokens of a bucket of {capacity:g}")


def _guessed(what: str, wait: float) -> RateLimitedError:
    return RateLimitedError(f"too many failed {what}; retry later", retry_after=wait)


def _limited(what: str, wait: float) -> RateLimitedError:
    return RateLimitedError(
        f"too many {what}; retry in {wait:.0f}s" if wait >= 1 else f"too many {what}",
        retry_after=wait,
    )


@dataclass
class Limits:
    """The limiters of a server process."""

    tenants: TenantBudget
    auth_addresses: TenantBudget
    guesses: Budget

    @classmethod
    def default(cls, per_minute: int, db: AuthStore | None = None) -> Limits:
        """Buckets shared through *db* by every process using it; in memory without one."""
        if db is None:
            return cls(
                tenants=RateLimiter(per_minute, 60.0),
                auth_addresses=RateLimiter(AUTH_PER_MINUTE, 60.0),
                guesses=RateLimiter(GUESSES_PER_WINDOW, GUESS_WINDOW),
            )
        return cls(
            tenants=LeasedBuckets(db, capacity=per_minute),
            auth_addresses=LeasedBuckets(db, capacity=AUTH_PER_MINUTE),
            guesses=LeasedBuckets(db, GUESS_WINDOW, capacity=GUESSES_PER_WINDOW, prefix="guess:"),
        )
