"""Helpers for the mirror-sync tests: engines in-process or as `meshfs sync` processes, tree
snapshots of a folder and of the server, and waiting on a condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshfs_client_testkit import Account

from meshfs_client import MeshFSClient
from meshfs_client.mirror import ConflictPolicy, MirrorSync, SyncOptions
from meshfs_client.mirror._ignore import IgnoreRules

Tree = dict[str, bytes | None]
"""Mirror path -> content (``None`` for a directory)."""


def local_tree(root: Path, *, ignore: IgnoreRules | None = None) -> Tree:
    """Every file and directory below *root* (ignored and temporary names left out)."""
    rules = ignore or IgnoreRules.load(root)
    found: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = "/" + os.path.relpath(dirpath, root).replace(os.sep, "/")
        base = "" if base == "/." else base
        for name in list(dirnames):
            rel = f"{base}/{name}"
            if rules.ignored(rel, is_dir=True):
                dirnames.remove(name)
                continue
            found[rel] = None
        for name in filenames:
            rel = f"{base}/{name}"
            if rules.ignored(rel):
                continue
            with contextlib.suppress(FileNotFoundError):
                found[rel] = (Path(dirpath) / name).read_bytes()
    return found


async def remote_tree(client: MeshFSClient, root: str = "/") -> Tree:
    """The server's tree below *root*, in mirror paths."""
    found: Tree = {}
    prefix = "" if root == "/" else root
    async for entry in client.walk(root):
        rel = entry.path[len(prefix) :]
        found[rel] = None if entry.kind == "dir" else await client.read_bytes(node_id=entry.node_id)
    return found


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, deadline: float = 60.0, what: str = "condition"
) -> None:
    """Poll *condition* until true; fail after *deadline* seconds (a deadline, not a sleep)."""
    end = time.monotonic() + deadline
    while True:
        if await condition():
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(0.05)  # poll interval


@dataclass
class Mirror:
    """One in-process mirror engine."""

    target: Path
    engine: MirrorSync
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_mirrors(
    account: Account,
    targets: list[Path],
    state_dir: Path,
    *,
    remote_root: str = "/",
    conflicts: ConflictPolicy = ConflictPolicy.LWW,
) -> AsyncIterator[list[Mirror]]:
    """Run one continuous engine per target (each with its own client), stop them at the end."""
    async with contextlib.AsyncExitStack() as stack:
        mirrors: list[Mirror] = []
        group = await stack.enter_async_context(asyncio.TaskGroup())
        clients = [await stack.enter_async_context(account.client()) for _ in targets]
        try:
            for target, client in zip(targets, clients, strict=True):
                engine = MirrorSync(
                    client,
                    SyncOptions(
                        target=target,
                        remote_root=remote_root,
                        state_dir=state_dir,
                        conflicts=conflicts,
                    ),
                )
                mirrors.append(Mirror(target, engine, group.create_task(engine.run())))
            yield mirrors
        finally:
            for mirror in mirrors:
                mirror.task.cancel()


async def sync_once(account: Account, target: Path, state_dir: Path, **options: Any) -> MirrorSync:
    """One `--once` run in-process."""
    async with account.client() as client:
        engine = MirrorSync(
            client, SyncOptions(target=target, state_dir=state_dir, once=True, **options)
        )
        await engine.run()
        return engine


def sync_process(
    account: Account, target: Path, state_dir: Path, *extra: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`meshfs sync --target ...` as a separate process (as a user would run it)."""
    command = [
        str(Path(sys.executable).with_name("meshfs")), "sync", "--target", str(target),
        "--state-dir", str(state_dir), *extra,
    ]  # fmt: skip
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the caller
    return subprocess.Popen(command, env=account.env(), stdout=out, stderr=out)
