"""POSIX commands: ``ln`` (hard and symbolic links), ``chmod``, ``touch``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command
from meshfs_client.cli._modes import parse_mode
from meshfs_client.cli.files import resolve_into_dir
from meshfs_common import paths
from meshfs_common.errors import NotFoundError
from meshfs_common.models import Entry

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient


@click.command()
@click.option("-s", "--symbolic", is_flag=True, help="Make a symbolic link instead of a hard link.")
@click.argument("target")
@click.argument("path")
@client_command()
async def ln(
    state: CliState, client: MeshFSClient, symbolic: bool, target: str, path: str
) -> Entry:
    """Make PATH a hard link to the file TARGET, or with -s a symbolic link to TARGET.

    A hard link is a second name of the same file (one content, one history). A symbolic
    link's TARGET is stored verbatim (relative or absolute, need not exist; the server never
    follows it) and PATH is the link's own path. An existing PATH is an error.
    """
    if symbolic:
        entry = await client.symlink(path, target)
        state.info(f"{entry.path} -> {target}")
    else:
        entry = await client.link(target, await resolve_into_dir(client, target, path))
        state.info(f"{entry.path} => {paths.normalise(target)} ({entry.nlink} links)")
    return entry


@click.command()
@click.argument("mode")
@click.argument("paths_", metavar="PATH...", nargs=-1, required=True)
@client_command()
async def chmod(
    state: CliState, client: MeshFSClient, mode: str, paths_: tuple[str, ...]
) -> list[Entry]:
    """Set the permission bits of each PATH: octal (644, 0755, 4755) or symbolic clauses
    like chmod's (u+x, go-w, a=r,u+w; X is execute for directories and already-executable
    files). Only the attributes change: no new content version."""
    octal = mode.isdigit()
    if octal:
        _checked(mode, 0, is_dir=False)
    changed = []
    for path in paths_:
        current = None if octal else await client.meta(path)
        bits = (
            int(mode, 8)
            if current is None
            else _checked(mode, current.mode, is_dir=current.kind == "dir")
        )
        changed.append(await client.chmod(path, bits))
    return changed


def _checked(mode: str, current: int, *, is_dir: bool) -> int:
    try:
        return parse_mode(mode, current, is_dir=is_dir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="MODE") from exc


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """--date as integer nanoseconds since the epoch (``@SECONDS`` or ISO 8601)."""
    if value is None:
        return None
    try:
        if value.startswith("@"):
            return round(float(value[1:]) * 1_000_000_000)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: give ISO 8601 (2026-01-31, 2026-01-31T12:00:00+00:00) "
            "or @SECONDS since the epoch"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a time without a zone is local time, as for touch -d
    return round(when.timestamp() * 1_000_000) * 1000


@click.command()
@click.option("-c", "--no-create", is_flag=True, help="Do not create a missing file.")
@click.option(
    "-d",
    "--date",
    "when_ns",
    metavar="TIME",
    callback=_date,
    help="Use TIME instead of now: ISO 8601 (local time without a zone) or @SECONDS.",
)
@click.argument("paths_", metavar="PATH...", nargs=-1, required=True)
@client_command()
async def touch(
    state: CliState,
    client: MeshFSClient,
    no_create: bool,
    when_ns: int | None,
    paths_: tuple[str, ...],
) -> list[Entry]:
    """Set the modification and access time of each PATH to now (or --date); a missing PATH
    is created as an empty file (not with -c). Existing content is never rewritten."""
    touched = []
    for path in paths_:
        try:
            await client.meta(path)
        except NotFoundError:
            if no_create:
                continue
            await client.upload(path, b"", if_none_match=True)
        stamp = time.time_ns() if when_ns is None else when_ns
        touched.append(await client.utime(path, mtime_ns=stamp, atime_ns=stamp))
    return touched
