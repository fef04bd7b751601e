"""What bulk transfers cost the tenant's request budget: per file and per byte.

A bulk request spends the one token every request spends, and then, as its files go through,
:data:`FILES_PER_TOKEN` files cost one more token and :data:`BYTES_PER_TOKEN` bytes (one chunk:
what one upload part costs) cost one more, from the same bucket as every other request of the
tenant. So a batch is never a way around the rate limit - ten thousand files cost a hundred
requests' worth, plus their bytes - and yet the official tools do not crawl: at the default
1,200 requests per minute the sustained bulk rate is 2,000 small files per second, with a burst
of 120,000.

A charge is spent all or nothing: refused, it spends no token, so what is there stays for the
retry (and for the other processes), never lost with the refused request. When the bucket
cannot pay a charge yet, a short wait (at most :data:`PACE_SECONDS` until the whole charge is
there, :data:`PACE_TOTAL` in all per request) is waited out, which paces a bulk transfer at the
tenant's rate; a longer one raises :class:`~meshfs_common.errors.RateLimitedError`, which stops
a bulk write there (what landed stays, the answer names the rest) or refuses a bulk read. Its
``retry_after`` is the time until the whole charge (and the next request's own token) is back,
so a client that waits as told is not refused again at once.
"""

from __future__ import annotations

import asyncio
import math

from meshfs_common.errors import RateLimitedError
from meshfs_common.hashing import CHUNK_SIZE
from meshfs_server.auth.service import Identity
from meshfs_server.domain.actor import Actor
from meshfs_server.policy import plans

FILES_PER_TOKEN = 100
BYTES_PER_TOKEN = CHUNK_SIZE
PACE_SECONDS = 1.0
PACE_TOTAL = 30.0


def tokens_for(files: int, nbytes: int) -> float:
    """Request tokens that *files* files of *nbytes* bytes in all cost in a bulk transfer."""
    return files / FILES_PER_TOKEN + nbytes / BYTES_PER_TOKEN


class TenantBulkBudget:
    """The :class:`~meshfs_server.domain.bulk.BulkBudget` of one bulk request: charges the
    tenant's request bucket as the request's files go through."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self._owed = 0.0
        self._spent = 0
        self._paced = 0.0

    async def charge(self, actor: Actor, *, files: int, nbytes: int) -> None:
        """Spend the tokens *files* more files of *nbytes* bytes bring the request to (a started
        token is spent), pacing short waits (see the module notes)."""
        self._owed += tokens_for(files, nbytes)
        due = math.ceil(self._owed - 1e-9) - self._spent
        if due <= 0:
            return
        tenant = actor.tenant_id
        capacity = plans.rate_per_minute(
            await self.identity.plans.plan(tenant), self.identity.settings
        )
        key = f"tenant:{tenant}"
        whole = max(1, math.floor(capacity))
        while due > 0:
            # All or nothing (a bucket never holds more than its capacity: a larger charge is
            # paid a full bucket at a time). A refusal spends nothing, so the tokens that are
            # there stay for the retry instead of being lost with this request.
            part = min(due, whole)
            try:
                await self.identity.limits.tenants.spend(
                    key, capacity=capacity, what="requests for this tenant", tokens=part
                )
            except RateLimitedError as exc:
                wait = exc.retry_after or 0.0
                if wait > PACE_SECONDS or self._paced + wait > PACE_TOTAL:
                    # Said to wait until the rest of this charge and the next request's own
                    # token are there: sent again sooner, it would be refused again.
                    enough = wait + (due - part + 1) * 60.0 / capacity
                    raise RateLimitedError(
                        f"too many requests for this tenant; retry in {enough:.0f}s",
                        retry_after=enough,
                    ) from None
                self._paced += wait
                await asyncio.sleep(wait)  # pacing to the tenant's rate, not synchronisation
                continue
            self._spent += part
            due -= part
