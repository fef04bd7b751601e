"""The one retry helper: bounded attempts, jittered exponential backoff.

What may be retried is decided by two facts: the error (its row in
:data:`meshfs_common.errors.ERROR_TABLE` says whether the same request may simply be sent again)
and the request (whether sending it twice can do harm). See :func:`should_retry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.wait import wait_random_exponential

from meshfs_common.errors import MeshFSError, RateLimitedError, UnavailableError

T = TypeVar("T")

RetryListener = Callable[[MeshFSError, float], None]
"""Told before each wait between attempts: the error that caused it and the seconds to wait
(a rate-limited transfer can say "rate limited, waiting 3s" instead of looking stalled)."""


class ServerUnreachableError(UnavailableError):
    """No connection to the server could be made, so the request was certainly not sent."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    ``attempts`` counts the first try. Waits are "full jitter" exponential: a random time
    between 0 and ``initial * 2**n`` seconds, capped at ``maximum``; a 429's ``Retry-After`` is
    honoured up to ``max_retry_after``. Rate-limited answers do not use up ``attempts``: the
    server says when to come back, so a request keeps waiting its turn until it has waited
    ``max_rate_limited_wait`` seconds in all (a long transfer slows down instead of failing).
    """

    attempts: int = 5
    initial: float = 0.25
    maximum: float = 10.0
    max_retry_after: float = 60.0
    max_rate_limited_wait: float = 300.0

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(attempts=1)


def should_retry(exc: BaseException, *, idempotent: bool) -> bool:
    """True when *exc* may be answered by sending the same request again.

    * ``rate_limited`` (429): the server refused before doing anything, so any request is safe.
    * The connection could not be made: the request never left, so any request is safe.
    * Other retryable codes (``unavailable``, ``timeout``, ``hash_mismatch``) and lost
      connections: the server may or may not have acted, so only requests for which a repeat
      is harmless (``idempotent``) are retried.
    """
    if isinstance(exc, RateLimitedError | ServerUnreachableError):
        return True
    return idempotent and isinstance(exc, MeshFSError) and exc.retryable


class _Wait:
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._jitter = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError):
            return min(max(exc.retry_after, 0.0), self._policy.max_retry_after)
        delay: float = self._jitter(state)
        return delay


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_wait: RetryListener | None = None,
) -> T:
    """Run *attempt* until it succeeds, fails for good, or the policy's attempts run out.

    The last error is raised unchanged. *on_wait* hears about every wait before it starts.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_wait is not None and isinstance(exc, MeshFSError) and state.next_action:
            on_wait(exc, state.next_action.sleep)

    other_failures = 0

    def stop(state: RetryCallState) -> bool:
        nonlocal other_failures
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimitedError) and policy.attempts > 1:
            return state.idle_for >= policy.max_rate_limited_wait
        other_failures += 1
        return other_failures >= max(1, policy.attempts)

    retrying = AsyncRetrying(
        stop=stop,
        wait=_Wait(policy),
        retry=retry_if_exception(lambda exc: should_retry(exc, idempotent=idempotent)),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(attempt)


def backoff_delay(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Full-jitter delay before reconnect number *attempt* (1-based), for long-lived loops.

    *rand* is a number in [0, 1) (``random.random()``), passed in so tests are deterministic.
    """
    ceiling = min(policy.maximum, policy.initial * (2.0 ** max(0, attempt - 1)))
    return ceiling * rand
