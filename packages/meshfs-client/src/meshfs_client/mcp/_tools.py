"""The MCP tools: what each one does with a :class:`~meshfs_client.MeshFSClient`.

Every tool acts through the client as the token's holder, so the server's rules apply to each
call exactly as they do to the API: the token's path prefix, read-only tokens, quotas, rate
limits, and the writer recorded on every version. Failures are MeshFS errors or
:class:`ToolError`; the server layer turns both into MCP tool errors.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from meshfs_client._client import MeshFSClient
from meshfs_client.mcp import _text
from meshfs_client.mcp._schemas import (
    Args,
    ChangesArgs,
    DeleteArgs,
    DeleteOutput,
    DiffArgs,
    EditArgs,
    EditOutput,
    EntryOutput,
    ListArgs,
    ListOutput,
    MkdirArgs,
    MoveArgs,
    PathArgs,
    ReadArgs,
    ReadOutput,
    RestoreArgs,
    SearchArgs,
    SearchMatch,
    SearchOutput,
    TreeArgs,
    TreeNode,
    TreeOutput,
    VersionsArgs,
    VersionsOutput,
    WriteArgs,
    WriteOutput,
)
from meshfs_common import paths
from meshfs_common.errors import IsADirError, NotADirError, PreconditionFailedError
from meshfs_common.models import ChangeSummary, CommitResult, Entry, FileDiff

MAX_TEXT_BYTES = 16 * 1024 * 1024
"""Largest file read, edited or searched as text."""
MAX_BINARY_BYTES = 1024 * 1024
"""Largest binary file returned (as an embedded resource); larger ones are refused."""
MAX_OUTPUT_CHARS = 200_000
"""Most text one read returns; the rest is a later read from ``end_line + 1``."""
MAX_SEARCH_ENTRIES = 20_000
"""Most entries one search walks through."""


class ToolError(Exception):
    """A tool call that cannot be done as asked; the message tells the agent what to change."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A tool's answer: the structured result, the text shown to the model (``None``: the
    result as JSON), and optionally binary content to attach as a resource."""

    output: msgspec.Struct
    text: str | None = None
    blob: bytes | None = None
    mime_type: str | None = None


Run = Callable[[MeshFSClient, Any], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its name, schemas, MCP annotations and implementation."""

    name: str
    title: str
    description: str
    args: type[Args]
    output: type[msgspec.Struct]
    run: Run
    read_only: bool
    destructive: bool = False
    idempotent: bool = True


# --- reading ------------------------------------------------------------------------------------


async def _fetch(
    client: MeshFSClient, path: str, version_id: str | None, limit: int
) -> tuple[str | None, int, bytes, bool]:
    """``(version_id, size, bytes, complete)``: at most about *limit* bytes of a file."""
    stream = client.download(path, version_id=version_id)
    chunks: list[bytes] = []
    got = 0
    async with stream:
        info = stream.info
        async for block in stream:
            chunks.append(block)
            got += len(block)
            if got > limit:
                break
    size = info.size if info.size is not None else got
    return info.version_id, size, b"".join(chunks), got <= limit


async def _file(client: MeshFSClient, path: str) -> Entry:
    entry = await client.meta(path)
    if entry.kind == "dir":
        raise IsADirError(f"{entry.path} is a directory; use list or tree")
    return entry


async def read(client: MeshFSClient, args: ReadArgs) -> Reply:
    entry = await _file(client, args.path)
    version, size, data, complete = await _fetch(
        client, entry.path, args.version_id, MAX_TEXT_BYTES
    )
    text = _text.decode_text(data) if complete else None
    binary = text is None if complete else _text.looks_binary(data)
    mime = _text.mime_type(entry.path, binary=binary)
    if binary:
        if size > MAX_BINARY_BYTES:
            raise ToolError(
                f"{entry.path} is a binary file ({mime}, {size} bytes); it is larger than the "
                f"{MAX_BINARY_BYTES} bytes returned inline: download it with the meshfs CLI"
            )
        output = ReadOutput(path=entry.path, version_id=version, size=size, mime_type=mime,
                            binary=True)  # fmt: skip
        note = f"{entry.path} is a binary file ({mime}, {size} bytes), attached as a resource"
        return Reply(output, note, blob=data, mime_type=mime)
    if text is None:
        raise ToolError(
            f"{entry.path} is too large to read ({size} bytes, {mime}; the limit is "
            f"{MAX_TEXT_BYTES}): use search to find the lines you need"
        )
    window = _text.line_window(text, args.start_line, args.end_line, max_chars=MAX_OUTPUT_CHARS)
    if args.start_line > max(window.total, 1):
        raise ToolError(f"{entry.path} has {window.total} lines; start_line is past the end")
    output = ReadOutput(
        path=entry.path, version_id=version, size=size, mime_type=mime, binary=False,
        text=window.text, start_line=window.start, end_line=window.end,
        total_lines=window.total, truncated=window.truncated,
    )  # fmt: skip
    return Reply(output, window.text)


async def stat(client: MeshFSClient, args: PathArgs) -> Reply:
    return Reply(EntryOutput(entry=await client.meta(args.path)))


async def list_dir(client: MeshFSClient, args: ListArgs) -> Reply:
    entries: list[Entry] = []
    truncated = False
    async for entry in client.iterdir(args.path, include_deleted=args.include_deleted):
        if len(entries) >= args.limit:
            truncated = True
            break
        entries.append(entry)
    return Reply(ListOutput(path=paths.normalise(args.path), entries=entries, truncated=truncated))


async def tree(client: MeshFSClient, args: TreeArgs) -> Reply:
    root = await client.meta(args.path)
    if root.kind != "dir":
        raise NotADirError(f"{root.path} is not a directory")
    nodes: list[TreeNode] = []
    truncated = False

    async def visit(directory: str, depth: int) -> None:
        nonlocal truncated
        async for entry in client.iterdir(directory):
            if len(nodes) >= args.max_entries:
                truncated = True
                return
            nodes.append(TreeNode(path=entry.path, kind=entry.kind, depth=depth, size=entry.size))
            if entry.kind == "dir" and depth < args.depth:
                await visit(entry.path, depth + 1)
            if truncated:
                return

    await visit(root.path, 1)
    lines = [root.path]
    for node in nodes:
        name = posixpath.basename(node.path) + ("/" if node.kind == "dir" else "")
        lines.append("  " * node.depth + name)
    if truncated:
        lines.append(f"... (stopped at {args.max_entries} entries)")
    text = "\n".join(lines) + "\n"
    return Reply(TreeOutput(path=root.path, text=text, entries=nodes, truncated=truncated), text)


async def search(client: MeshFSClient, args: SearchArgs) -> Reply:
    if args.name is None and args.text is None:
        raise ToolError("give name (a glob such as *.md), text (to grep for), or both")
    by_name = _text.name_matcher(args.name, ignore_case=args.ignore_case) if args.name else None
    try:
        grep = (
            _text.text_matcher(args.text, regex=args.regex, ignore_case=args.ignore_case)
            if args.text is not None
            else None
        )
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    matches: list[SearchMatch] = []
    searched = 0
    walked = 0
    truncated = False
    async for entry in client.walk(args.path):
        walked += 1
        if walked > MAX_SEARCH_ENTRIES or len(matches) >= args.max_results:
            truncated = True
            break
        if by_name is not None:
            subject = entry.path if "/" in (args.name or "") else entry.name
            if not by_name.match(subject):
                continue
        if grep is None:
            matches.append(SearchMatch(path=entry.path))
            continue
        if entry.kind != "file" or entry.size > MAX_TEXT_BYTES:
            continue
        _, _, data, complete = await _fetch(client, entry.path, None, MAX_TEXT_BYTES)
        text = _text.decode_text(data) if complete else None
        if text is None:
            continue
        searched += 1
        room = args.max_results - len(matches)
        hits = _text.grep_lines(text, grep, room + 1)
        for number, line in hits[:room]:
            matches.append(SearchMatch(path=entry.path, line=number, text=line[:1000]))
        if len(hits) > room:
            truncated = True
            break
    output = SearchOutput(matches=matches, truncated=truncated, files_searched=searched)
    return Reply(output)


async def versions(client: MeshFSClient, args: VersionsArgs) -> Reply:
    page = await client.versions_page(args.path, limit=args.limit)
    output = VersionsOutput(
        path=paths.normalise(args.path), node_id=page.node_id, versions=page.versions,
        has_more=page.has_more,
    )  # fmt: skip
    return Reply(output)


async def diff(client: MeshFSClient, args: DiffArgs) -> Reply:
    found = await client.diff(args.path, args.v1, args.v2)
    if found.unified is not None:
        text = found.unified or f"{found.path}: no difference\n"
    else:
        text = (
            f"{found.path}: no text diff ({found.no_text}); "
            f"{found.old.version_id or 'nothing'} ({found.old.size} bytes, "
            f"{found.old.media_type}, {found.old.content_hash}) -> "
            f"{found.new.version_id or 'nothing'} ({found.new.size} bytes, "
            f"{found.new.media_type}, {found.new.content_hash})\n"
        )
    return Reply(found, text)


async def changes_since(client: MeshFSClient, args: ChangesArgs) -> Reply:
    since_time = args.since_time.timestamp() if args.since_time is not None else None
    if (args.since_cursor is None) == (since_time is None):
        raise ToolError("give exactly one of since_cursor and since_time")
    summary = await client.changes(args.path, since_cursor=args.since_cursor, since_time=since_time)
    return Reply(summary)


# --- writing ------------------------------------------------------------------------------------


def _written(result: CommitResult) -> WriteOutput:
    return WriteOutput(
        path=result.entry.path, version_id=result.version.version_id, size=result.version.size,
        created_version=result.created_version,
    )  # fmt: skip


async def write(client: MeshFSClient, args: WriteArgs) -> Reply:
    result = await client.upload(
        args.path, args.content.encode(), if_match=args.if_match, if_none_match=args.create_only
    )
    return Reply(_written(result))


async def edit(client: MeshFSClient, args: EditArgs) -> Reply:
    entry = await _file(client, args.path)
    head = entry.version_id
    if args.if_match is not None and args.if_match != head:
        raise PreconditionFailedError(
            f"{entry.path} changed: its head is {head}, not {args.if_match}; read it again"
        )
    _, _, data, complete = await _fetch(client, entry.path, head, MAX_TEXT_BYTES)
    before = _text.decode_text(data) if complete else None
    if before is None:
        raise ToolError(f"{entry.path} is not a text file of at most {MAX_TEXT_BYTES} bytes")
    try:
        after, count = _text.replace_exact(
            before, args.old_text, args.new_text, replace_all=args.replace_all, path=entry.path
        )
    except _text.EditError as exc:
        raise ToolError(str(exc)) from None
    # Conditional on the version that was read, so a concurrent writer is never overwritten.
    result = await client.upload(entry.path, after.encode(), if_match=head)
    diff = _text.unified_diff(before, after, entry.path)
    written = _written(result)
    output = EditOutput(
        path=written.path, version_id=written.version_id, size=written.size,
        created_version=written.created_version, replacements=count, diff=diff,
    )  # fmt: skip
    return Reply(output, diff)


async def mkdir(client: MeshFSClient, args: MkdirArgs) -> Reply:
    return Reply(EntryOutput(entry=await client.mkdir(args.path, parents=args.parents)))


async def move(client: MeshFSClient, args: MoveArgs) -> Reply:
    entry = await client.rename(
        args.path, args.new_path, overwrite=args.overwrite, if_match=args.if_match
    )
    return Reply(EntryOutput(entry=entry))


async def delete(client: MeshFSClient, args: DeleteArgs) -> Reply:
    result = await client.delete(args.path, recursive=args.recursive, if_match=args.if_match)
    return Reply(DeleteOutput(entry=result.entry, deleted_nodes=result.deleted_nodes))


async def restore(client: MeshFSClient, args: RestoreArgs) -> Reply:
    result = await client.restore(args.path, args.version_id, to_path=args.to_path)
    return Reply(_written(result))


def _spec(
    name: str, title: str, args: type[Args], output: type[msgspec.Struct], run: Run, *,
    read_only: bool, destructive: bool = False, idempotent: bool = True, note: str = "",
) -> ToolSpec:  # fmt: skip
    summary = (args.__doc__ or title).strip()
    return ToolSpec(
        name, title, f"{summary} {note}".strip(), args, output, run,
        read_only=read_only, destructive=destructive, idempotent=idempotent,
    )  # fmt: skip


TOOLS: tuple[ToolSpec, ...] = (
    _spec("read", "Read a file", ReadArgs, ReadOutput, read, read_only=True,
          note="Returns the text of lines start_line..end_line (all by default; long reads are "
          "cut at a line boundary, continue from end_line + 1). A binary file up to 1 MiB is "
          "attached as a resource; a larger one is refused with its size and type."),
    _spec("write", "Write a file", WriteArgs, WriteOutput, write, read_only=False,
          destructive=True,
          note="Parent directories are created. Writing the current content again changes "
          "nothing. Use if_match with the version_id you read to avoid overwriting someone "
          "else's change."),
    _spec("edit", "Edit a file", EditArgs, EditOutput, edit, read_only=False, destructive=True,
          idempotent=False,
          note="old_text must match the file exactly (whitespace included) and be unique unless "
          "replace_all. Returns the unified diff of the change."),
    _spec("list", "List a directory", ListArgs, ListOutput, list_dir, read_only=True),
    _spec("tree", "Show a directory tree", TreeArgs, TreeOutput, tree, read_only=True),
    _spec("search", "Search files", SearchArgs, SearchOutput, search, read_only=True,
          note="Name globs use * ? [..]; text is a literal unless regex. Files over 16 MiB and "
          "binary files are not grepped. Stops at max_results."),
    _spec("stat", "File information", PathArgs, EntryOutput, stat, read_only=True),
    _spec("mkdir", "Create a directory", MkdirArgs, EntryOutput, mkdir, read_only=False),
    _spec("move", "Move or rename", MoveArgs, EntryOutput, move, read_only=False,
          destructive=True, idempotent=False),
    _spec("delete", "Delete", DeleteArgs, DeleteOutput, delete, read_only=False,
          destructive=True, idempotent=False),
    _spec("versions", "Version history", VersionsArgs, VersionsOutput, versions,
          read_only=True),
    _spec("diff", "Compare versions", DiffArgs, FileDiff, diff, read_only=True,
          note="Without v1 and v2: the head against the version before it; with v1 only: v1 "
          "against the head. Binary or large content gets a size/type/hash summary instead."),
    _spec("changes_since", "What changed", ChangesArgs, ChangeSummary, changes_since,
          read_only=True,
          note="Give since_cursor or since_time. Each file appears once: created, modified "
          "(with changed line counts), deleted or renamed, with who changed it (writers). If "
          "has_more, call again with since_cursor = to_cursor."),
    _spec("restore", "Restore a version", RestoreArgs, WriteOutput, restore, read_only=False,
          destructive=True,
          note="The restore is itself a new version, so it can be undone the same way."),
)  # fmt: skip
"""Every tool the MCP server offers, in the order it lists them."""
