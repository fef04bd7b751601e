"""The mirror carries executable bits and mtimes both ways, against a REAL meshfs-server; an
attribute-only change (chmod, touch) moves no content (see mirror_testkit.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from meshfs_client_testkit import Account
from mirror_testkit import running_mirrors, sync_once, wait_for

from meshfs_client import MeshFSClient
from meshfs_client.mirror._state import StateDB
from meshfs_common.models import ChangeEvent, Entry

pytestmark = pytest.mark.live

MTIME = 1_600_000_000_123_456_789


async def _version_count(client: MeshFSClient, path: str) -> int:
    return len([v async for v in client.versions(path)])


async def test_exec_bits_and_mtimes_travel_both_ways_without_new_versions(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    script = a / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    os.utime(script, ns=(MTIME, MTIME))
    async with running_mirrors(account, [a, b], tmp_path / "state") as mirrors:
        # An uploaded file's mtime reaches the server; the other mirror's download gets it.
        async def uploaded() -> bool:
            return await client.exists("/run.sh") and (
                (await client.meta("/run.sh")).mtime_ns == MTIME
            )

        await wait_for(uploaded, what="upload with its mtime")

        async def b_has_it() -> bool:
            p = b / "run.sh"
            return p.exists() and p.stat().st_mtime_ns == MTIME

        await wait_for(b_has_it, what="download with the server mtime")
        assert not os.access(b / "run.sh", os.X_OK)
        assert await _version_count(client, "/run.sh") == 1

        # A local chmod +x is an attribute change on the server (its other permission bits
        # kept), then on the other mirror.
        await client.chmod("/run.sh", 0o640)
        script.chmod(0o755)

        async def server_executable() -> bool:
            return (await client.meta("/run.sh")).mode == 0o751

        await wait_for(server_executable, what="local chmod -> server")
        await wait_for(
            lambda: _async(os.access(b / "run.sh", os.X_OK)), what="server chmod -> mirror b"
        )
        assert await _version_count(client, "/run.sh") == 1

        # A server chmod reaches both local files.
        await client.chmod("/run.sh", 0o644)
        for side in (a, b):
            await wait_for(
                lambda side=side: _async(not os.access(side / "run.sh", os.X_OK)),
                what=f"server chmod -x -> {side.name}",
            )

        # A local touch alone sends the mtime, not content.
        later = MTIME + 86_400 * 10**9
        os.utime(b / "run.sh", ns=(later, later))

        async def touched() -> bool:
            return (await client.meta("/run.sh")).mtime_ns == later and (
                a / "run.sh"
            ).stat().st_mtime_ns == later

        await wait_for(touched, what="local touch -> server -> other mirror")
        # A server utimens reaches the files too.
        await client.utime("/run.sh", mtime_ns=MTIME)
        for side in (a, b):
            await wait_for(
                lambda side=side: _async((side / "run.sh").stat().st_mtime_ns == MTIME),
                what=f"server utime -> {side.name}",
            )
        assert await _version_count(client, "/run.sh") == 1
        assert all(m.engine.status.uploads == (1 if m.target == a else 0) for m in mirrors)
        assert sum(m.engine.status.attributes for m in mirrors) >= 4


async def test_a_state_database_from_before_attributes_is_migrated(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    a, state = tmp_path / "a", tmp_path / "state"
    a.mkdir()
    (a / "f.txt").write_bytes(b"x")
    engine = await sync_once(account, a, state)
    path = engine.state_path
    assert path is not None
    # Make it look like the database an older release left: without the new columns.
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE r AS SELECT path, kind, node_id, version_id, content_hash, size FROM remote;"
        " DROP TABLE remote; ALTER TABLE r RENAME TO remote;"
        " ALTER TABLE synced DROP COLUMN exec_bits;"
    )
    db.close()
    reopened = StateDB(path)
    assert reopened.synced["/f.txt"].exec_bits is None
    assert reopened.remote["/f.txt"].mode is None
    reopened.close()
    # The mirror runs on it, and a chmod after the next transfer travels again.
    (a / "f.txt").write_bytes(b"y")
    await sync_once(account, a, state)
    (a / "f.txt").chmod(0o755)
    await sync_once(account, a, state)
    assert (await client.meta("/f.txt")).mode & 0o111 == 0o111
    assert await _version_count(client, "/f.txt") == 2


async def _async(value: bool) -> bool:
    return value


async def test_a_live_download_takes_mode_and_mtime_from_the_write_event(
    account: Account, tmp_path: Path
) -> None:
    # The write event carries the new head's mode and mtime: the receiving mirror fetches the
    # content and nothing else (no metadata request beside it, on the way of every new file).
    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    for folder in (a, b, outside):
        folder.mkdir()
    (a / "ready").write_bytes(b"")
    async with running_mirrors(account, [a, b], tmp_path / "state") as mirrors:
        await wait_for(lambda: _async((b / "ready").exists()), what="the mirrors to start")
        receiver = mirrors[1].engine.client
        asked: list[object] = []
        real_meta = receiver.meta

        async def meta(*args: Any, **kwargs: Any) -> Entry:
            asked.append(args or kwargs)
            return await real_meta(*args, **kwargs)

        receiver.meta = meta  # type: ignore[method-assign]
        made = outside / "note.txt"
        made.write_bytes(b"hello")
        os.utime(made, ns=(MTIME, MTIME))
        made.rename(a / "note.txt")  # appears whole, with its mtime

        async def arrived() -> bool:
            p = b / "note.txt"
            return p.exists() and p.stat().st_mtime_ns == MTIME

        await wait_for(arrived, what="the file in b with its mtime")
        assert (b / "note.txt").read_bytes() == b"hello"
        assert asked == []


async def test_an_uploaded_executable_stays_executable_while_its_events_come_back(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    # A new executable is a write (the server's default mode) then an attributes change. The
    # uploading mirror waits for the second event before it looks at the file again, so the
    # first one's mode is never put on the local file.
    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    for folder in (a, b, outside):
        folder.mkdir()
    async with running_mirrors(account, [a, b], tmp_path / "state") as mirrors:
        uploader = mirrors[0].engine
        # A path held for an echo that went by would wait this long: the edit below shows none.
        uploader.options = dataclasses.replace(uploader.options, echo_timeout=3600)
        real_apply = uploader._apply

        def late_attributes(event: ChangeEvent) -> None:
            # The second event takes its time to come back (a busy server, another worker).
            if event.type == "attributes":
                asyncio.get_running_loop().call_later(0.3, real_apply, event)
            else:
                real_apply(event)

        uploader._apply = late_attributes  # type: ignore[method-assign]
        for i in range(5):
            made = outside / f"run{i}.sh"
            made.write_bytes(b"#!/bin/sh\necho hi\n")
            made.chmod(0o755)
            os.utime(made, ns=(MTIME, MTIME))
            made.rename(a / made.name)
        for i in range(5):
            name = f"run{i}.sh"

            async def both_executable(name: str = name) -> bool:
                p = b / name
                return (
                    p.exists()
                    and os.access(p, os.X_OK)
                    and p.stat().st_mtime_ns == MTIME
                    and (await client.meta(f"/{name}")).mode & 0o111 == 0o111
                )

            await wait_for(both_executable, what=f"{name} executable everywhere")
        assert uploader.status.uploads == 5
        assert uploader.status.attributes == 0  # nothing applied back to a
        assert all(os.access(a / f"run{i}.sh", os.X_OK) for i in range(5))
        # An edit right after is sent as soon as it is seen.
        (a / "run0.sh").write_bytes(b"#!/bin/sh\necho edited\n")

        async def edited() -> bool:
            return await client.read_bytes("/run0.sh") == b"#!/bin/sh\necho edited\n"

        await wait_for(edited, what="the edit on the server")


async def test_a_small_file_is_uploaded_with_its_mtime_in_one_change(
    account: Account, client: MeshFSClient, tmp_path: Path
) -> None:
    # The mtime travels with the content: the other mirrors see one write event, not a write
    # followed by an attributes change they would have to fetch and apply as well.
    a = tmp_path / "a"
    a.mkdir()
    note = a / "note.txt"
    note.write_bytes(b"hello")
    os.utime(note, ns=(MTIME, MTIME))
    cursor = await client.current_cursor()
    await sync_once(account, a, tmp_path / "state")
    entry = await client.meta("/note.txt")
    assert entry.mtime_ns == MTIME
    events = [e for e in (await client.pull(cursor)).events if e.path == "/note.txt"]
    assert [e.type for e in events] == ["write"]
    assert events[0].version_id == entry.version_id
