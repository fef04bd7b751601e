"""The Hypothesis namespace model (meshfs_server_model.py, as on SQLite and Postgres) on the
in-memory ports: random mkdir/write/rename/delete/restore sequences compared with the model
after every step, and the feed replayed from cursor 0 - proof that the in-memory store keeps
the contract the SQL stores keep, and a quick run of the domain's rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from meshfs_server_memory import MemoryDomain
from meshfs_server_model import NamespaceMachine


@asynccontextmanager
async def _memory_domain() -> AsyncIterator[MemoryDomain]:
    domain = MemoryDomain.create()
    try:
        yield domain
    finally:
        await domain.close()


class MemoryNamespaceMachine(NamespaceMachine):
    def open(self, data_dir: Path) -> AbstractAsyncContextManager[MemoryDomain]:  # type: ignore[override]
        return _memory_domain()


MemoryNamespaceMachine.TestCase.settings = NamespaceMachine.TestCase.settings
TestMemoryNamespaceModel = MemoryNamespaceMachine.TestCase
