"""Token-bucket rate limits: per tenant on every endpoint, per client address on auth.

Buckets live in the memory of each server process (several processes behind a load balancer
each enforce the full budget; put the limit at the balancer too if that matters). A bucket of
capacity C refilled at C per period allows bursts of C and a sustained C per period. Answers
over the limit are ``429 rate_limited`` with ``Retry-After`` (seconds until one token is back).

- Tenant budget: the plan's requests per minute (see :mod:`.plans`), counted on every
  authenticated HTTP request.
- Client-address budgets: :data:`AUTH_PER_MINUTE` requests per minute on ``/auth/*`` and the
  approval page; and :data:`GUESSES_PER_WINDOW` failed user-code or password attempts per
  :data:`GUESS_WINDOW` seconds (guessing a user code is slow: 19^8 codes, 10 guesses / 15 min).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from meshfs_common.errors import RateLimitedError

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

    def check(self, key: str, *, capacity: float | None = None, what: str = "attempts") -> None:
        """Raise like :meth:`take` when the bucket is empty, without spending."""
        cap = self.capacity if capacity is None else capacity
        now = self.clock()
        bucket = self._bucket(key, cap, now)
        if bucket.tokens < 1.0:
            wait = (1.0 - bucket.tokens) * self.period / cap
            raise RateLimitedError(f"too many failed {what}; retry later", retry_after=wait)


@dataclass
class Limits:
    """The limiters of one server process."""

    tenants: RateLimiter
    auth_addresses: RateLimiter
    guesses: RateLimiter

    @classmethod
    def default(cls, per_minute: int) -> Limits:
        return cls(
            tenants=RateLimiter(per_minute, 60.0),
            auth_addresses=RateLimiter(AUTH_PER_MINUTE, 60.0),
            guesses=RateLimiter(GUESSES_PER_WINDOW, GUESS_WINDOW),
        )
