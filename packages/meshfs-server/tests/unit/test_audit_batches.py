"""Audit rows of requests answered together share one transaction, and none is lost or doubled
when a transaction fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from meshfs_common.errors import UnavailableError
from meshfs_common.ids import new_id
from meshfs_server.domain.actor import Actor
from meshfs_server.policy.audit import AuditedRequest
from meshfs_server.policy.audit_batch import AuditBatches


class Session:
    dialect = "sqlite"

    def __init__(self) -> None:
        self.targets: list[Any] = []

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        self.targets.append(list(params)[9])  # the audit row's target
        return 1

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            await self.execute(sql, row)


class Store:
    """Records committed transactions; the first one waits for *release*, and the transaction
    numbered *fail_at* raises."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.committed: list[list[Any]] = []
        self.release = asyncio.Event()
        self.started = 0
        self.fail_at = fail_at

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[Session]:
        self.started += 1
        number = self.started
        if number == 1:
            await self.release.wait()
        session = Session()
        yield session
        if number == self.fail_at:
            raise UnavailableError("the database went away")
        self.committed.append(session.targets)


def request(target: str) -> AuditedRequest:
    actor = Actor(tenant_id=new_id(), user_id=new_id())
    return AuditedRequest(actor=actor, action="PUT /files/content", target=target, detail={})


async def test_rows_answered_while_one_is_written_share_the_next_transaction() -> None:
    store = Store()
    batches = AuditBatches(store)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batches.record(request("/0"), 201))
    await asyncio.sleep(0)  # the first row's transaction has started and waits
    rest = [asyncio.ensure_future(batches.record(request(f"/{i}"), 201)) for i in range(1, 10)]
    await asyncio.sleep(0)
    store.release.set()
    await asyncio.gather(first, *rest)
    assert store.committed == [["/0"], [f"/{i}" for i in range(1, 10)]]


async def test_a_failed_transaction_is_retried_by_the_rows_it_held() -> None:
    store = Store(fail_at=2)
    batches = AuditBatches(store)  # type: ignore[arg-type]
    first = asyncio.ensure_future(batches.record(request("/0"), 201))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batches.record(request(f"/{i}"), 201)) for i in range(1, 5)]
    await asyncio.sleep(0)
    store.release.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, UnavailableError)]
    assert len(failed) == 1  # the caller whose transaction failed hears of it
    assert store.committed == [["/0"], ["/1", "/2", "/3", "/4"]]  # each row once
