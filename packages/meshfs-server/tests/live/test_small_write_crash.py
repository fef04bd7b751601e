"""Small writes are committed with their content in one transaction: a server killed right
after answering them (SIGKILL, nothing flushed or closed) has every one of them on restart."""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from meshfs_server_backends import sql_backends
from meshfs_server_workers import workers_server

on_sql = pytest.mark.parametrize("backend", sql_backends(), indirect=True)


@on_sql
async def test_every_acknowledged_small_write_survives_a_killed_server(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    written: dict[str, bytes] = {}
    async with workers_server(tmp_path, 1, backend) as server:
        async with httpx.AsyncClient(base_url=server.url, headers=server.bearer) as http:

            async def write(i: int) -> None:
                data = os.urandom(100 + i)
                path = f"/crash/{i}"
                r = await http.put("/files/content", params={"path": path}, content=data)
                assert r.status_code == 201, r.text
                written[path] = data

            await asyncio.gather(*(write(i) for i in range(40)))
        for pid in (*server.workers(), server.process.pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(server.process.wait)
    async with (
        workers_server(tmp_path, 1, backend) as again,
        httpx.AsyncClient(base_url=again.url, headers=again.bearer) as http,
    ):
        for path, data in written.items():
            r = await http.get("/files/download", params={"path": path})
            assert r.status_code == 200, r.text
            assert r.content == data
