"""The retry policy: what is retried, how often, and how long it waits."""

from __future__ import annotations

import pytest

from meshfs_client._retry import (
    RetryPolicy,
    ServerUnreachableError,
    backoff_delay,
    call_with_retry,
    should_retry,
)
from meshfs_common.errors import (
    HashMismatchError,
    InternalError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (UnavailableError("x"), True, True),
        (UnavailableError("x"), False, False),  # the server may have acted
        (ServerUnreachableError("x"), False, True),  # never sent
        (RateLimitedError("x"), False, True),  # refused before acting
        (HashMismatchError("x"), True, True),
        (NotFoundError("x"), True, False),
        (InternalError("x"), True, False),
        (ValueError("x"), True, False),
    ],
)
def test_should_retry(error: BaseException, idempotent: bool, expected: bool) -> None:
    assert should_retry(error, idempotent=idempotent) is expected


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_retries_until_success_with_jittered_waits() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky([UnavailableError("a"), UnavailableError("b")])
    policy = RetryPolicy(attempts=5, initial=1.0, maximum=4.0)
    assert await call_with_retry(flaky, policy, idempotent=True, sleep=sleep) == "ok"
    assert flaky.calls == 3
    assert len(waits) == 2
    assert all(0 <= w <= 4.0 for w in waits)


async def test_attempts_are_bounded_and_last_error_is_raised() -> None:
    async def sleep(seconds: float) -> None:
        pass

    flaky = Flaky([UnavailableError(str(i)) for i in range(10)])
    with pytest.raises(UnavailableError, match="2"):
        await call_with_retry(flaky, RetryPolicy(attempts=3), idempotent=True, sleep=sleep)
    assert flaky.calls == 3


async def test_non_retryable_error_is_raised_at_once() -> None:
    flaky = Flaky([NotFoundError("gone")])
    with pytest.raises(NotFoundError):
        await call_with_retry(flaky, RetryPolicy(), idempotent=True)
    assert flaky.calls == 1


async def test_rate_limit_waits_retry_after_capped() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky([RateLimitedError("x", retry_after=3), RateLimitedError("y", retry_after=500)])
    policy = RetryPolicy(max_retry_after=60)
    assert await call_with_retry(flaky, policy, idempotent=False, sleep=sleep) == "ok"
    assert waits == [3.0, 60.0]


def test_backoff_delay_grows_and_is_capped() -> None:
    policy = RetryPolicy(initial=0.5, maximum=30.0)
    assert backoff_delay(1, policy, 0.999) < 0.5
    assert backoff_delay(4, policy, 0.999) == pytest.approx(4 * 0.999)
    assert backoff_delay(50, policy, 0.999) <= 30.0
    assert backoff_delay(3, policy, 0.0) == 0.0


async def test_rate_limits_do_not_use_up_attempts_but_a_wait_budget() -> None:
    waits: list[float] = []
    heard: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky([RateLimitedError("busy", retry_after=2) for _ in range(8)])
    policy = RetryPolicy(attempts=3, max_rate_limited_wait=100)
    result = await call_with_retry(
        flaky, policy, idempotent=False, sleep=sleep, on_wait=lambda e, s: heard.append((e.code, s))
    )
    assert result == "ok"
    assert flaky.calls == 9
    assert heard == [("rate_limited", 2.0)] * 8  # every wait is told, before it starts

    endless = Flaky([RateLimitedError("busy", retry_after=2) for _ in range(100)])
    with pytest.raises(RateLimitedError):
        await call_with_retry(
            endless, RetryPolicy(max_rate_limited_wait=10), idempotent=False, sleep=sleep
        )
    assert endless.calls == 6  # gave up once 10 s of waiting was spent
