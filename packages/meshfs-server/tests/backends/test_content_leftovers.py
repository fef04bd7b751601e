"""The local content store, shared by worker processes: one starting removes the partial writes
of processes that are gone, never those of a worker still writing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from meshfs_server.adapters.local_content import LocalContentStore


async def _open_and_close(root: Path) -> None:
    store = await LocalContentStore.create(root)
    await store.close()


def test_a_store_opening_keeps_live_writers_partial_files(tmp_path: Path) -> None:
    root = tmp_path / "content"
    asyncio.run(_open_and_close(root))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)  # fmt: skip
    try:
        live = root / "tmp" / f"in-{writer.pid}-abc123"
        dead = root / "tmp" / f"in-{int(gone.stdout)}-def456"
        old_style = root / "tmp" / "in-xyz789"
        mine = root / "tmp" / f"in-{os.getpid()}-ghi000"
        for path in (live, dead, old_style, mine):
            path.write_bytes(b"partial")
        asyncio.run(_open_and_close(root))
        assert live.exists()  # another worker is still writing it
        assert not dead.exists()
        assert not old_style.exists()
        assert not mine.exists()  # this process's earlier run of the store left it
    finally:
        writer.communicate(b"")
