"""Token-bucket rate limits: per tenant on every endpoint, per client address on auth.

A bucket of capacity C refilled at C per period allows bursts of C and a sustained C per period.
Answers over the limit are ``429 rate_limited`` with ``Retry-After`` (seconds until one token
is back).

Where the tenant buckets live:

- SQLite (one server process): in memory (:class:`RateLimiter`).
- Postgres (any number of processes): one shared bucket per tenant in the ``rate_buckets``
  table, leased in slices (:class:`LeasedBuckets`). A process takes a slice of S tokens with
  one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (the refill is computed there, on the
  database's clock) and spends it locally, so a request costs a database round trip only once
  per S requests (S = C/20, at least 1). A slice is spendable for at most T = S/R seconds (R =
  C per period; T at least 1 s, at most 10 s); what is left after that is given back with the
  next lease, never spent. Bounds, for N processes serving a tenant: the shared bucket never
  grants more than one bucket would, and tokens in the hands of processes are at most N*S, so
  in any time window the tenant is admitted at most N*S (N/20 of the burst) more than a single
  bucket would admit, and a process that cannot get a slice refuses at once. The other way,
  tokens idle in one process's slice (at most S each) are unavailable to the others until
  the slice is returned or refilled.

Client-address budgets stay per process (several processes multiply them by N; they guard
guessing, and 19^8 user codes at 10 guesses per 15 minutes per process stays hopeless).

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

    def take(self, key: str, *, capacity: float | None = None, what: str = "requests") -> None:
        """Spend one token or raise :class:`RateLimitedError` with the wait in seconds."""
        cap = self.capacity if capacity is None else capacity
        now = self.clock()
        bucket = self._bucket(key, cap, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = (1.0 - bucket.tokens) * self.period / cap
        raise RateLimitedError(
            f"too many {what}; retry in {wait:.0f}s" if wait >= 1 else f"too many {what}",
            retry_after=wait,
        )

    async def spend(self, key: str, *, capacity: float, what: str = "requests") -> None:
        """:meth:`take`, as a :class:`TenantBudget`."""
        self.take(key, capacity=capacity, what=what)

    def check(self, key: str, *, capacity: float | None = None, what: str = "attempts") -> None:
        """Raise like :meth:`take` when the bucket is empty, without spending."""
        cap = self.capacity if capacity is None else capacity
        now = self.clock()
        bucket = self._bucket(key, cap, now)
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) * self.period / cap
            raise RateLimitedError(f"too many failed {what}; retry later", retry_after=wait)


class TenantBudget(Protocol):
    """Per-tenant request budgets."""

    async def spend(self, key: str, *, capacity: float, what: str = "requests") -> None:
        """Spend one token of *key*'s bucket (of *capacity* per period) or raise
        :class:`RateLimitedError` with the wait in seconds."""
        ...


LEASE_FRACTION = 20
MIN_LEASE_SECONDS = 1.0
MAX_LEASE_SECONDS = 10.0

# One statement, one round trip: create the bucket full, or refill it (database clock) and add
# back what the caller returns, cap it, and grant up to the asked slice of whole tokens.
# Parameters: key, capacity, wanted, returned, period.
_LEASE_SQL = """
INSERT INTO rate_buckets AS b (bucket_key, tokens, updated_at, granted)
VALUES (?, ?::float8 - LEAST(?::float8, floor(?::float8)),
        extract(epoch FROM statement_timestamp()), LEAST(?::float8, floor(?::float8)))
ON CONFLICT (bucket_key) DO UPDATE SET
    granted = LEAST(?::float8, floor(LEAST(EXCLUDED.tokens + EXCLUDED.granted,
        b.tokens + ?::float8 + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * ?::float8))),
    tokens = LEAST(EXCLUDED.tokens + EXCLUDED.granted,
        b.tokens + ?::float8 + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * ?::float8)
        - LEAST(?::float8, floor(LEAST(EXCLUDED.tokens + EXCLUDED.granted,
        b.tokens + ?::float8 + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * ?::float8))),
    updated_at = EXCLUDED.updated_at
RETURNING granted, tokens
"""


@dataclass(slots=True)
class _Lease:
    tokens: float = 0.0  # whole tokens granted and not yet spent
    expires: float = 0.0  # monotonic; after it, the rest goes back with the next lease
    empty_until: float = 0.0  # the shared bucket was empty: refuse locally until then
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LeasedBuckets:
    """Tenant buckets shared by every server process through the ``rate_buckets`` table
    (Postgres), spent locally in leased slices; the bounds are in the module docstring."""

    def __init__(
        self, db: AuthStore, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.period = period
        self.clock = clock
        self._leases: dict[str, _Lease] = {}

    @staticmethod
    def slice_of(capacity: float) -> float:
        """How many tokens one lease asks for."""
        return float(max(1, math.ceil(capacity / LEASE_FRACTION)))

    def lease_seconds(self, capacity: float) -> float:
        """How long a slice may be spent: about the time the bucket takes to refill it."""
        refill = self.slice_of(capacity) * self.period / capacity
        return min(MAX_LEASE_SECONDS, max(MIN_LEASE_SECONDS, refill))

    async def spend(self, key: str, *, capacity: float, what: str = "requests") -> None:
        """Spend one token, leasing a new slice from the shared bucket when needed."""
        lease = self._leases.get(key)
        if lease is None:
            if len(self._leases) >= MAX_BUCKETS:
                self._forget_idle()
            lease = self._leases[key] = _Lease()
        if self._spend_local(lease, what):
            return
        async with lease.lock:  # one lease at a time per key; the others wait and share it
            if self._spend_local(lease, what):
                return
            now = self.clock()
            returned = lease.tokens  # unspent and expired (spendable ones were used above)
            wanted = self.slice_of(capacity)
            rate = capacity / self.period
            async with self.db.autocommit() as conn:
                row = await conn.fetchone(
                    _LEASE_SQL,
                    (key, capacity, wanted, capacity, wanted, capacity,
                     wanted, returned, rate, returned, rate, wanted, returned, rate),
                )  # fmt: skip
            assert row is not None
            granted, left = float(row[0]), float(row[1])
            lease.tokens = granted
            lease.expires = now + self.lease_seconds(capacity)
            if granted >= 1.0:
                lease.tokens -= 1.0
                return
            wait = (1.0 - left) / rate
            lease.empty_until = now + wait
            raise _limited(what, wait)

    def _spend_local(self, lease: _Lease, what: str) -> bool:
        now = self.clock()
        if lease.tokens >= 1.0 and lease.expires > now:
            lease.tokens -= 1.0
            return True
        if lease.empty_until > now:
            raise _limited(what, lease.empty_until - now)
        return False

    def _forget_idle(self) -> None:
        # Leases past their time and nothing to return carry no information.
        now = self.clock()
        for key in [k for k, v in self._leases.items() if v.expires < now and v.tokens < 1]:
            del self._leases[key]
        if len(self._leases) >= MAX_BUCKETS:
            self._leases.clear()


def _limited(what: str, wait: float) -> RateLimitedError:
    return RateLimitedError(
        f"too many {what}; retry in {wait:.0f}s" if wait >= 1 else f"too many {what}",
        retry_after=wait,
    )


@dataclass
class Limits:
    """The limiters of one server process."""

    tenants: TenantBudget
    auth_addresses: RateLimiter
    guesses: RateLimiter

    @classmethod
    def default(cls, per_minute: int, db: AuthStore | None = None) -> Limits:
        """In-memory buckets; with a Postgres *db*, tenant buckets shared through it."""
        shared = db is not None and db.dialect == "postgres"
        return cls(
            tenants=LeasedBuckets(db)
            if shared and db is not None
            else RateLimiter(per_minute, 60.0),
            auth_addresses=RateLimiter(AUTH_PER_MINUTE, 60.0),
            guesses=RateLimiter(GUESSES_PER_WINDOW, GUESS_WINDOW),
        )
