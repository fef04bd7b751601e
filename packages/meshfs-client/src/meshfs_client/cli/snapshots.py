"""``meshfs snapshot create | list | diff | restore | delete``: named states of a folder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import (
    CliState,
    CommandGroup,
    human_size,
    human_time,
    pass_state,
    run,
)
from meshfs_client.cli.diffs import change_line, who

if TYPE_CHECKING:
    from meshfs_common.models import Snapshot


def _line(snap: Snapshot) -> str:
    return (
        f"{snap.name}  {snap.path}  {human_time(snap.created_at)}  {snap.files} files"
        f"  {human_size(snap.bytes)}  by {who(snap.created_by)}  ({snap.snapshot_id})"
    )


@click.group(cls=CommandGroup)
def snapshot() -> None:
    """Snapshots: name the state of a folder, see what changed since, and go back to it.

    A restore is one atomic change that keeps all history: it first takes a snapshot named
    before-restore-NAME-CURSOR, so restoring that one undoes it. Snapshots keep the versions
    they reference from retention until deleted.
    """


@snapshot.command("create")
@click.argument("path")
@click.option("--name", required=True, help="Unique name (e.g. before-agent).")
@pass_state
def create(state: CliState, path: str, name: str) -> None:
    """Name the current state of the folder (or file) PATH."""

    async def body() -> None:
        async with state.client() as client:
            made = await client.snapshot_create(path, name)
        if state.json:
            state.emit(made)
        else:
            state.info(f"snapshot {made.name!r} of {made.path}: {made.files} files at cursor "
                       f"{made.cursor}")  # fmt: skip

    run(body())


@snapshot.command("list")
@click.argument("path", required=False)
@pass_state
def list_(state: CliState, path: str | None) -> None:
    """List snapshots (of folders at or below PATH), newest first."""

    async def body() -> None:
        async with state.client() as client:
            found = await client.snapshots(path)
        if state.json:
            state.emit(found)
            return
        for snap in found:
            click.echo(_line(snap))

    run(body())


@snapshot.command("diff")
@click.argument("name")
@pass_state
def diff(state: CliState, name: str) -> None:
    """What changed in the snapshot's folder since it was taken (by name or id)."""

    async def body() -> None:
        async with state.client() as client:
            result = await client.snapshot_diff(name)
        if state.json:
            state.emit(result)
            return
        for change in result.changes:
            click.echo(change_line(change))
        state.info(f"{len(result.changes)} changed since {result.snapshot.name!r}")

    run(body())


@snapshot.command("restore")
@click.argument("name")
@pass_state
def restore(state: CliState, name: str) -> None:
    """Restore the snapshot's folder to it, in one atomic change (undoable)."""

    async def body() -> None:
        async with state.client() as client:
            result = await client.snapshot_restore(name)
        if state.json:
            state.emit(result)
            return
        for change in result.changes:
            click.echo(change_line(change))
        state.info(
            f"restored {result.snapshot.path} to {result.snapshot.name!r}"
            f" ({len(result.changes)} changed); undo with:"
            f" meshfs snapshot restore {result.undo.name}"
        )

    run(body())


@snapshot.command("delete")
@click.argument("name")
@pass_state
def delete(state: CliState, name: str) -> None:
    """Delete a snapshot (history stays; retention may then prune what it kept)."""

    async def body() -> None:
        async with state.client() as client:
            gone = await client.snapshot_delete(name)
        if state.json:
            state.emit(gone)
        else:
            state.info(f"deleted snapshot {gone.name!r}")

    run(body())
