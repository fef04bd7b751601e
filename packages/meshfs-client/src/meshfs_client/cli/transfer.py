"""Content commands: ``cat``, ``put``, ``get``, ``cp``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from meshfs_client.cli._context import CliState, client_command
from meshfs_client.cli._local_tree import LocalTree, scan_tree
from meshfs_client.cli._progress import TransferProgress
from meshfs_client.cli.files import resolve_into_dir
from meshfs_common import paths
from meshfs_common.bulk import BulkWritten
from meshfs_common.errors import (
    AlreadyExistsError,
    InvalidMoveError,
    InvalidPathError,
    IsADirError,
)
from meshfs_common.models import CommitResult, Entry

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient

FILE_CONCURRENCY = 4
"""Files transferred at once by ``put -r`` / ``get -r`` (each also sends chunks in parallel)."""


async def _stdin_blocks() -> AsyncIterator[bytes]:
    stdin = sys.stdin.buffer
    read = getattr(stdin, "read1", stdin.read)
    while block := await asyncio.to_thread(read, 1024 * 1024):
        yield block


async def _to_stdout(client: MeshFSClient, path: str, version_id: str | None) -> None:
    out = sys.stdout.buffer
    stream = client.download(path, version_id=version_id)
    async with stream:
        async for block in stream:
            await asyncio.to_thread(out.write, block)
    await asyncio.to_thread(out.flush)


@click.command()
@click.option("--version", "version_id", metavar="ID", help="Print this version instead.")
@click.argument("path")
@client_command()
async def cat(state: CliState, client: MeshFSClient, version_id: str | None, path: str) -> None:
    """Print a file's content to stdout."""
    await _to_stdout(client, path, version_id)


@contextlib.contextmanager
def _bar(
    state: CliState, client: MeshFSClient, description: str, total: int | None
) -> Iterator[TransferProgress]:
    """The command's progress bar, told about every wait between attempts (rate limits)."""
    notices = not (state.quiet or state.json)
    with (
        TransferProgress(state.show_progress, description, total, notices=notices) as bar,
        client.on_retry(bar.waiting),
    ):
        yield bar


def _report(state: CliState, verb: str, results: list[Any], nbytes: int) -> None:
    if state.json:
        state.emit(results)
    else:
        _summary(state, verb, len(results), nbytes)


def _summary(state: CliState, verb: str, count: int, nbytes: int) -> None:
    noun = "file" if count == 1 else "files"
    state.info(f"{verb} {count} {noun} ({nbytes} bytes)")


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Upload a directory tree.")
@click.option("--if-match", metavar="VERSION", help="Only replace this head version.")
@click.option(
    "--no-clobber",
    "-n",
    is_flag=True,
    help="Never overwrite: fail if the remote file exists (with -r: skip and list it).",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Upload what symbolic links point to (default: links are skipped, as sync does).",
)
@click.argument("src", type=click.Path(allow_dash=True, path_type=str))
@click.argument("dst")
@client_command()
async def put(
    state: CliState,
    client: MeshFSClient,
    recursive: bool,
    if_match: str | None,
    no_clobber: bool,
    follow_symlinks: bool,
    src: str,
    dst: str,
) -> None:
    """Upload local SRC (a file, '-' for stdin, or a directory with -r) to remote DST.

    A file goes into DST when DST is a directory. With -r, DST is the directory the tree
    becomes (created, or merged into if it exists), so running the same command again changes
    nothing; end DST with '/' to put the tree inside it under its own name
    (`put -r photos /backup/` makes /backup/photos). Names MeshFS cannot store are skipped and
    listed, the rest is sent, and the exit code is 2. Small files go many to a request, large
    ones one by one. With -n nothing is overwritten: a file that exists remotely (checked as it
    is written) is skipped and listed, the rest is sent, and the exit code is 5.
    """
    local = Path(src)
    is_dir, size = await asyncio.to_thread(_put_source, src, recursive, follow_symlinks)
    if src == "-":
        result = await client.upload(
            paths.normalise(dst), _stdin_blocks(), if_match=if_match, if_none_match=no_clobber
        )
        _report(state, "uploaded", [result], result.entry.size)
        return
    if is_dir:
        await _put_tree(state, client, local, _tree_target(local, dst), no_clobber,
                        follow_symlinks)  # fmt: skip
        return
    target = await resolve_into_dir(client, local.name, dst)
    with _bar(state, client, local.name, size) as bar:
        result = await client.upload(
            target, local, if_match=if_match, if_none_match=no_clobber, progress=bar.advance
        )
    _report(state, "uploaded", [result], result.entry.size)


def _show_downloaded(state: CliState, got: list[dict[str, Any]]) -> None:
    _summary(state, "downloaded", len(got), sum(e["size"] for e in got))


def _put_source(src: str, recursive: bool, follow_symlinks: bool) -> tuple[bool, int]:
    """Whether the local SRC of ``put`` is a directory, and its size (0 for '-' or a tree)."""
    local = Path(src)
    if src != "-" and local.is_symlink() and not follow_symlinks:
        raise click.UsageError(
            f"{src} is a symbolic link; pass --follow-symlinks to upload what it points to"
        )
    is_dir = src != "-" and local.is_dir()
    if is_dir and not recursive:
        raise click.UsageError(f"{src} is a directory (use -r)")
    return is_dir, 0 if src == "-" or is_dir else local.stat().st_size


def _tree_target(root: Path, dst: str) -> str:
    """The remote directory a tree becomes: DST itself, or DST/<name> when DST ends in '/'."""
    if not dst.endswith("/"):
        return paths.normalise(dst)
    name = root.name or root.resolve().name
    return paths.normalise(f"{dst}/{paths.validate_name(name)}")


async def _put_tree(
    state: CliState,
    client: MeshFSClient,
    root: Path,
    target: str,
    no_clobber: bool,
    follow_symlinks: bool,
) -> None:
    # Everything is checked before anything is created, so a bad name never leaves half a tree.
    tree = await asyncio.to_thread(scan_tree, root, target, follow_symlinks=follow_symlinks)
    results, existing = await _put_bulk(state, client, root, tree, no_clobber)
    # With -n a file already holding the same content is left as it is (no new version).
    same = [r for r in results if no_clobber and not r.created_version]
    results = [r for r in results if not (no_clobber and not r.created_version)]
    _report(state, "uploaded", results, sum(_size(r) for r in results))
    if same and not state.json:
        held = "1 file" if len(same) == 1 else f"{len(same)} files"
        state.info(f"{held} already held the same content (left as they were)")
    for skipped in tree.skipped:
        if state.json:
            click.echo(
                json.dumps({"skipped": str(skipped.local), "reason": skipped.reason}), err=True
            )
        elif skipped.failed or not state.quiet:
            click.echo(f"meshfs: skipped {_shown(skipped.local)}: {skipped.reason}", err=True)
    if existing and len(tree.failures) == existing:
        files = "1 file" if existing == 1 else f"{existing} files"
        raise AlreadyExistsError(
            f"{files} already existed and not overwritten (listed above); everything else was"
            " uploaded"
        )
    if tree.failures:
        count = len(tree.failures)
        raise InvalidPathError(
            f"{count} {'entry' if count == 1 else 'entries'} could not be uploaded (listed above);"
            " everything else was"
        )


def _size(result: CommitResult | BulkWritten) -> int:
    return result.entry.size if isinstance(result, CommitResult) else result.size


async def _put_bulk(
    state: CliState, client: MeshFSClient, root: Path, tree: LocalTree, no_clobber: bool
) -> tuple[list[BulkWritten], int]:
    """The tree in bulk requests (many small files each; large files one by one); with
    *no_clobber* a file that exists remotely is not written. Gives what landed and how many
    files were left alone because they existed."""
    local_of = {remote: local for local, remote in tree.files}
    with _bar(state, client, root.name, tree.total) as bar:
        done = await client.write_many(
            [(remote, local) for local, remote in tree.files],
            directories=tree.directories,
            if_absent=no_clobber,
            progress=bar.advance,
        )
    for failure in done.failed:
        where = local_of.get(failure.path or "") or root / failure.name
        tree.skip(where, failure.message, failed=True)
    existing = sum(1 for failure in done.failed if failure.error == "already_exists")
    written = sorted((w for w in done.written if w.kind == "file"), key=lambda w: w.path)
    return written, existing


def _shown(local: Path) -> str:
    """A local path printable on one line (a newline in a name is shown as \\n)."""
    return repr(str(local))[1:-1]


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Download a directory tree.")
@click.option("--version", "version_id", metavar="ID", help="Download this version.")
@click.argument("src")
@click.argument("dst", type=click.Path(allow_dash=True, path_type=str), default=".")
@client_command(text=_show_downloaded)
async def get(
    state: CliState,
    client: MeshFSClient,
    recursive: bool,
    version_id: str | None,
    src: str,
    dst: str,
) -> list[dict[str, Any]] | None:
    """Download remote SRC to local DST ('-' for stdout; a directory tree with -r).

    With -r, small files come many to a request and large ones one by one; every file is
    checked against its content hash and replaced whole.
    """
    if dst == "-":
        await _to_stdout(client, src, version_id)
        return None
    entry = await client.meta(src)
    local = Path(dst)
    if await asyncio.to_thread(local.is_dir):
        local = local / (entry.name or "root")
    if entry.kind == "dir":
        if not recursive:
            raise IsADirError(f"{entry.path} is a directory (use -r)")
        results = await _get_tree(state, client, entry, local)
    else:
        with _bar(state, client, entry.name, entry.size) as bar:
            await client.download_to(entry.path, local, version_id=version_id, progress=bar.advance)
        results = [entry]
    return [{"path": e.path, "local": str(local), "size": e.size} for e in results]


async def _get_tree(
    state: CliState, client: MeshFSClient, root: Entry, local_root: Path
) -> list[Entry]:
    await asyncio.to_thread(local_root.mkdir, parents=True, exist_ok=True)
    files: list[Entry] = []
    async for entry in client.walk(root.path):
        local = local_root / paths.relative_to(entry.path, root.path).lstrip("/")
        if entry.kind == "dir":
            await asyncio.to_thread(local.mkdir, parents=True, exist_ok=True)
        else:
            files.append(entry)
    # Small files come in bulk requests, large ones one by one.
    pairs = [(e, local_root / paths.relative_to(e.path, root.path).lstrip("/")) for e in files]
    with _bar(state, client, root.name, sum(e.size for e in files)) as bar:
        got = await client.download_many(pairs, progress=bar.advance)
    failed = [found for found in got if found.error is not None]
    if failed:
        first = failed[0].error
        assert first is not None
        if len(failed) > 1:
            first.message = f"{first.message} (and {len(failed) - 1} more files not downloaded)"
        raise first
    return files


@click.command()
@click.option("-r", "-R", "recursive", is_flag=True, help="Copy a directory tree.")
@click.option("--version", "version_id", metavar="ID", help="Copy this version of SRC.")
@click.option("--no-clobber", "-n", is_flag=True, help="Fail if a destination file exists.")
@click.argument("src")
@click.argument("dst")
@client_command()
async def cp(
    state: CliState,
    client: MeshFSClient,
    recursive: bool,
    version_id: str | None,
    no_clobber: bool,
    src: str,
    dst: str,
) -> CommitResult | list[CommitResult]:
    """Copy remote SRC to remote DST (a directory tree with -r).

    A file's head is copied on the server when the destination's parent exists; otherwise
    content the server can name by its chunks is committed again without any transfer, else
    it streams down and back; chunks the server already holds are never uploaded again. Each
    copy is a new file with its own history.
    """
    entry = await client.meta(src)
    target = await resolve_into_dir(client, entry.path, dst)
    if entry.kind == "file":
        made = await client.copy(
            entry.path, target, version_id=version_id, if_none_match=no_clobber
        )
        state.info(f"{entry.path} -> {made.entry.path}")
        return [made] if recursive else made
    if not recursive:
        raise IsADirError(f"{entry.path} is a directory (use -r)")
    if version_id is not None:
        raise click.UsageError("--version copies one file; it cannot be used with -r")
    if paths.is_within(target, entry.path):
        raise InvalidMoveError(f"cannot copy {entry.path} into itself ({target})")
    results = await _copy_tree(state, client, entry, target, no_clobber)
    _summary(state, "copied", len(results), sum(r.entry.size for r in results))
    return results


async def _copy_tree(
    state: CliState, client: MeshFSClient, root: Entry, target: str, no_clobber: bool
) -> list[CommitResult]:
    await client.mkdir(target, parents=True)
    files: list[tuple[Entry, str]] = []
    async for entry in client.walk(root.path):
        there = paths.rebase(entry.path, root.path, target)
        if entry.kind == "dir":
            await client.mkdir(there, parents=True)
        else:
            files.append((entry, there))
    limit = asyncio.Semaphore(FILE_CONCURRENCY)
    results: list[CommitResult] = []
    total = sum(entry.size for entry, _ in files)
    with _bar(state, client, root.name, total) as bar:

        async def one(source: Entry, there: str) -> None:
            async with limit:
                results.append(await client.copy(source.path, there, if_none_match=no_clobber))
                bar.advance(source.size)

        async with asyncio.TaskGroup() as group:
            for source, there in files:
                group.create_task(one(source, there))
    return sorted(results, key=lambda r: r.entry.path)
