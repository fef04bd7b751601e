"""Audit rows of answered requests, written several to one transaction.

Every mutating request adds an audit row after its answer. Written one transaction each, the
rows cost every write a second transaction (its lock and its commit); here the rows of requests
answered while one batch is being written wait and go together in the next. Each caller returns
once the transaction holding its row has committed. A failed transaction (its caller sees the
error) is retried by the next caller whose row it held; a row is never written twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from meshfs_server.auth.store import AuthStore
from meshfs_server.policy import audit
from meshfs_server.policy.audit import AuditedRequest


@dataclass(slots=True)
class _Batch:
    rows: list[tuple[AuditedRequest, int]] = field(default_factory=list)
    written: bool = False


class AuditBatches:
    """Writes the audit rows of requests (see the module docstring)."""

    def __init__(self, db: AuthStore) -> None:
        self._db = db
        self._open = _Batch()
        self._writing = asyncio.Lock()  # one batch at a time; FIFO, so batches keep order

    async def record(self, request: AuditedRequest, status: int) -> None:
        """Append the audit row of a request whose answer had *status*; returns once it is
        committed (not fsynced: the next durable commit covers it, as the WAL is sequential)."""
        batch = self._open
        batch.rows.append((request, status))
        async with self._writing:
            if batch.written:
                return
            if self._open is batch:  # later rows start the next batch
                self._open = _Batch()
            async with self._db.write(durable=False) as db:
                for row, answered in batch.rows:
                    await audit.record_request(db, row, answered)
            batch.written = True
