"""``meshfs snapshot create | list | diff | restore | delete``: named states of a folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from meshfs_client.cli._context import (
    Body,
    CliState,
    CommandGroup,
    client_command,
    human_size,
    human_time,
)
from meshfs_client.cli.diffs import change_line, who

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient
    from meshfs_common.models import FileChange, Snapshot, SnapshotDiff, SnapshotRestoreResult


T = TypeVar("T")


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


def _show_made(state: CliState, made: Snapshot) -> None:
    state.info(f"snapshot {made.name!r} of {made.path}: {made.files} files at cursor {made.cursor}")


@snapshot.command("create")
@click.argument("path")
@click.option("--name", required=True, help="Unique name (e.g. before-agent).")
@client_command(text=_show_made)
async def create(state: CliState, client: MeshFSClient, path: str, name: str) -> Snapshot:
    """Name the current state of the folder (or file) PATH."""
    return await client.snapshot_create(path, name)


def _show_list(state: CliState, found: list[Snapshot]) -> None:
    for snap in found:
        click.echo(_line(snap))


@snapshot.command("list")
@click.argument("path", required=False)
@client_command(text=_show_list)
async def list_(state: CliState, client: MeshFSClient, path: str | None) -> list[Snapshot]:
    """List snapshots (of folders at or below PATH), newest first."""
    return await client.snapshots(path)


def _on_snapshot(
    verb: str, text: Callable[[CliState, T], None]
) -> Callable[[Body[[str], T]], click.Command]:
    """``meshfs snapshot VERB NAME`` (a snapshot by name or id), shown by *text*."""

    def decorate(body: Body[[str], T]) -> click.Command:
        return snapshot.command(verb)(click.argument("name")(client_command(text)(body)))

    return decorate


def _show_changes(changes: list[FileChange]) -> None:
    for change in changes:
        click.echo(change_line(change))


def _show_diff(state: CliState, result: SnapshotDiff) -> None:
    _show_changes(result.changes)
    state.info(f"{len(result.changes)} changed since {result.snapshot.name!r}")


@_on_snapshot("diff", _show_diff)
async def diff(state: CliState, client: MeshFSClient, name: str) -> SnapshotDiff:
    """What changed in the snapshot's folder since it was taken (by name or id)."""
    return await client.snapshot_diff(name)


def _show_restore(state: CliState, result: SnapshotRestoreResult) -> None:
    _show_changes(result.changes)
    state.info(
        f"restored {result.snapshot.path} to {result.snapshot.name!r}"
        f" ({len(result.changes)} changed); undo with:"
        f" meshfs snapshot restore {result.undo.name}"
    )


@_on_snapshot("restore", _show_restore)
async def restore(state: CliState, client: MeshFSClient, name: str) -> SnapshotRestoreResult:
    """Restore the snapshot's folder to it, in one atomic change (undoable)."""
    return await client.snapshot_restore(name)


def _show_deleted(state: CliState, gone: Snapshot) -> None:
    state.info(f"deleted snapshot {gone.name!r}")


@_on_snapshot("delete", _show_deleted)
async def delete(state: CliState, client: MeshFSClient, name: str) -> Snapshot:
    """Delete a snapshot (history stays; retention may then prune what it kept)."""
    return await client.snapshot_delete(name)
