"""Resolved tokens, remembered between requests while nothing they depend on changed.

Resolving a token reads its session, user and membership. A client sends the same token with
every request, so a server remembers what it resolved to for at most :data:`MAX_AGE` seconds
(never past the token's or the session's expiry) and only while the store's
:meth:`~meshfs_server.auth.store.AuthStore.access_revision` is the value it was at the read:
any committed change to sessions, users, memberships or tenants, made by any process sharing
the database (a worker, ``meshfs-server admin``), changes it, so a revoked session, a disabled
account or a changed role applies on the next request in every process. A store that does not
track a revision (Postgres, whose processes may run on other hosts) is read on every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from meshfs_server.auth.principal import Principal

#: Seconds a resolved token is used without reading its session again, at most.
MAX_AGE = 1.0
MAX_ENTRIES = 10_000


@dataclass(slots=True, frozen=True)
class _Entry:
    principal: Principal
    revision: int
    until: float  # monotonic


class PrincipalCache:
    """Token -> :class:`Principal`, checked against *revision* (see the module docstring)."""

    def __init__(
        self,
        revision: Callable[[], int | None],
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.revision = revision
        self.max_age = max_age
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def lookup(self, token: str) -> tuple[Principal | None, int | None]:
        """The remembered principal of *token* (or None), and the revision now (pass it to
        :meth:`remember` after reading the store: a change meanwhile then reads again)."""
        revision = self.revision()
        if revision is None:
            return None, None
        entry = self._entries.get(token)
        if entry is None:
            return None, revision
        if entry.revision != revision or entry.until <= self.clock():
            del self._entries[token]
            return None, revision
        return entry.principal, revision

    def remember(
        self, token: str, principal: Principal, revision: int | None, expires_at: float | None
    ) -> None:
        """Remember *principal* as read at *revision*, until *expires_at* (epoch seconds, the
        token's or session's end) or :attr:`max_age` from now, whichever is first."""
        if revision is None:
            return
        now = self.clock()
        until = now + self.max_age
        if expires_at is not None:
            until = min(until, now + (expires_at - time.time()))
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[token] = _Entry(principal, revision, until)
