"""Namespace commands: ``ls``, ``stat``, ``mkdir``, ``mv``, ``rm``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command, human_size, human_time
from meshfs_client.cli._modes import mode_string
from meshfs_common import paths
from meshfs_common.errors import NotADirError, NotFoundError
from meshfs_common.models import DeleteResult, Entry

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient


def _line(entry: Entry, *, long: bool, full_path: bool) -> str:
    name = entry.path if full_path else entry.name or "/"
    if entry.kind == "dir":
        name += "/"
    if entry.deleted_at is not None:
        name += f"  (deleted {human_time(entry.deleted_at)})"
    if not long:
        return name
    if entry.target is not None:
        name += f" -> {entry.target}"
    # A tombstone shows x as its type: restorable with `meshfs versions` + `meshfs restore`
    size = "-" if entry.kind == "dir" else human_size(entry.size)
    when = human_time(entry.modified_at)
    return f"{mode_string(entry)} {entry.nlink:>3} {size:>8} {when} {name}"


async def resolve_into_dir(client: MeshFSClient, src: str, dst: str) -> str:
    """``dst/basename(src)`` when *dst* is an existing directory (or ends in ``/``)."""
    if dst.endswith("/") and paths.normalise(dst) != "/":
        return paths.normalise(dst) + "/" + paths.basename(paths.normalise(src))
    target = paths.normalise(dst)
    try:
        entry = await client.meta(target)
    except NotFoundError:
        return target
    if entry.kind == "dir":
        return (target.rstrip("/") or "") + "/" + paths.basename(paths.normalise(src))
    return target


@click.command("ls")
@click.option(
    "-l",
    "long",
    is_flag=True,
    help="Long format like ls -l: type and permissions (-rw-r--r--; d dir, l symbolic link, "
    "x deleted), link count, size, modification time, name (-> target for a symbolic link).",
)
@click.option("-R", "recursive", is_flag=True, help="List subdirectories recursively.")
@click.option("--deleted", is_flag=True, help="Include deleted entries (tombstones).")
@click.argument("path", default="/")
@client_command()
async def ls(
    state: CliState, client: MeshFSClient, long: bool, recursive: bool, deleted: bool, path: str
) -> list[Entry] | None:
    """List a directory (or show one file)."""
    # Lines are printed as entries arrive (a recursive listing can be long); --json waits.
    entries: list[Entry] = []
    try:
        found = client.walk(path) if recursive else client.iterdir(path, include_deleted=deleted)
        async for entry in found:
            entries.append(entry)
            if not state.json:
                click.echo(_line(entry, long=long, full_path=recursive))
    except NotADirError:
        entries = [await client.meta(path)]
        if not state.json:
            click.echo(_line(entries[0], long=long, full_path=True))
    return entries if state.json else None


def _show_entry(state: CliState, entry: Entry) -> None:
    click.echo(f"path:      {entry.path}")
    click.echo(f"kind:      {entry.kind}")
    click.echo(f"node id:   {entry.node_id}")
    if entry.kind == "file":
        readable = human_size(entry.size)
        plain = f"{entry.size} bytes"
        click.echo(
            f"size:      {plain}" + (f" ({readable})" if readable != str(entry.size) else "")
        )
        click.echo(f"version:   {entry.version_id}")
        click.echo(f"hash:      {entry.content_hash}")
    if entry.target is not None:
        click.echo(f"target:    {entry.target}")
    click.echo(f"mode:      {entry.mode:04o} ({mode_string(entry)})")
    click.echo(f"owner:     uid {entry.uid}, gid {entry.gid}")
    click.echo(f"links:     {entry.nlink}")
    click.echo(f"created:   {human_time(entry.created_at)}")
    click.echo(f"modified:  {human_time(entry.modified_at)}")


@click.command()
@click.argument("path")
@client_command(text=_show_entry)
async def stat(state: CliState, client: MeshFSClient, path: str) -> Entry:
    """Show the metadata of a file or directory."""
    return await client.meta(path)


@click.command()
@click.option("-p", "parents", is_flag=True, help="Create parents; no error if it exists.")
@click.argument("paths_", metavar="PATH...", nargs=-1, required=True)
@client_command()
async def mkdir(
    state: CliState, client: MeshFSClient, parents: bool, paths_: tuple[str, ...]
) -> list[Entry]:
    """Create directories."""
    return [await client.mkdir(p, parents=parents, exist_ok=parents) for p in paths_]


@click.command()
@click.option("-f", "--force", is_flag=True, help="Replace an existing file or empty directory.")
@click.option("--if-match", metavar="VERSION", help="Only if the source head is this version.")
@click.argument("src")
@click.argument("dst")
@client_command()
async def mv(
    state: CliState, client: MeshFSClient, force: bool, if_match: str | None, src: str, dst: str
) -> Entry:
    """Move or rename SRC to DST (into DST when it is a directory)."""
    target = await resolve_into_dir(client, src, dst)
    entry = await client.rename(src, target, overwrite=force, if_match=if_match)
    state.info(f"{paths.normalise(src)} -> {entry.path}")
    return entry


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Delete directories and their contents.")
@click.option("-f", "force", is_flag=True, help="Ignore paths that do not exist.")
@click.argument("paths_", metavar="PATH...", nargs=-1, required=True)
@client_command()
async def rm(
    state: CliState, client: MeshFSClient, recursive: bool, force: bool, paths_: tuple[str, ...]
) -> list[DeleteResult]:
    """Delete files (and directories with -r). Deleted files keep their versions."""
    results = []
    for path in paths_:
        try:
            results.append(await client.delete(path, recursive=recursive))
        except NotFoundError:
            if not force:
                raise
    return results
