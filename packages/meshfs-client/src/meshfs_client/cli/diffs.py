"""``meshfs diff`` and ``meshfs changes``: what a version changed, what changed under a folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command, human_size

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient
    from meshfs_common.models import ChangeSummary, DiffSide, FileChange, FileDiff, Writer

_AGO_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def who(writer: Writer | None) -> str:
    """A person's device or an agent, as one word."""
    if writer is None:
        return "?"
    if writer.agent_name:
        return f"agent:{writer.agent_name}"
    return writer.device_name or writer.user_id


def _side(label: str, side: DiffSide) -> str:
    if side.version_id is None:
        return f"{label}: (no content)"
    return (
        f"{label}: {side.version_id}  {human_size(side.size)}  {side.media_type or '?'}"
        f"  {(side.content_hash or '')[:16]}"
    )


def render_diff(diff: FileDiff) -> str:
    """A diff as a person reads it: the unified text, or the summary of binary content."""
    if diff.unified is not None:
        return diff.unified if diff.unified else f"{diff.path}: no differences\n"
    reason = "binary content" if diff.no_text == "binary" else "too large for a text diff"
    same = "identical" if diff.identical else "different"
    return f"{diff.path}: {reason} ({same})\n{_side('old', diff.old)}\n{_side('new', diff.new)}\n"


def _show_diff(state: CliState, diff: FileDiff) -> None:
    click.echo(render_diff(diff), nl=False)


@click.command()
@click.argument("path")
@click.argument("v1", required=False)
@click.argument("v2", required=False)
@client_command(text=_show_diff)
async def diff(
    state: CliState, client: MeshFSClient, path: str, v1: str | None, v2: str | None
) -> FileDiff:
    """Show what changed in a file, as a unified diff.

    \b
    meshfs diff PATH          the head against the version before it
    meshfs diff PATH V1       version V1 against the head
    meshfs diff PATH V1 V2    version V1 against version V2

    Binary content (or text over 1 MiB) gets a summary instead: size, type and hash of each
    side. Version ids are listed by `meshfs versions PATH`.
    """
    return await client.diff(path, v1, v2)


def parse_since(text: str) -> float:
    """``2h``, ``30m``, ``7d`` ago, or an ISO 8601 time (UTC when it has no zone)."""
    value = text.strip().lower()
    if value[:-1].isdigit() and value[-1:] in _AGO_UNITS:
        return (datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * _AGO_UNITS[value[-1]])
                ).timestamp()  # fmt: skip
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor an ISO 8601 time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def change_line(change: FileChange) -> str:
    """One change as a line: status, path (old -> new), line counts, who."""
    where = f"{change.old_path} -> {change.path}" if change.old_path else change.path
    if change.kind == "dir":
        where += "/"
    stats = ""
    if change.added is not None and change.removed is not None and change.content_changed:
        stats = f"  +{change.added} -{change.removed}"
    elif change.status == "renamed" and change.content_changed:
        stats = "  (content changed)"
    by = ", ".join(who(w) for w in change.writers)
    return f"{change.status:<9} {where}{stats}" + (f"  by {by}" if by else "")


def _show_summary(state: CliState, summary: ChangeSummary) -> None:
    if summary.history_trimmed:
        state.info("note: retention trimmed part of that history; showing what is kept")
    for change in summary.changes:
        click.echo(change_line(change))
    more = f"; more: run again with --cursor {summary.to_cursor}" if summary.has_more else ""
    state.info(
        f"{len(summary.changes)} changed under {summary.path}"
        f" (cursor {summary.from_cursor} -> {summary.to_cursor}){more}"
    )


@click.command()
@click.argument("path", default="/")
@click.option("--cursor", type=click.IntRange(min=0), help="Changes after this feed cursor.")
@click.option("--since", "since", metavar="WHEN", help="Changes since 30m, 2h, 7d ago or a time.")
@client_command(text=_show_summary)
async def changes(
    state: CliState, client: MeshFSClient, path: str, cursor: int | None, since: str | None
) -> ChangeSummary:
    """List what changed under PATH, one line per file: created, modified (+added -removed
    lines), deleted, renamed (old -> new), and who changed it (a device or agent:NAME).

    Give --cursor (from `meshfs watch` or an earlier --json answer) or --since.
    """
    if (cursor is None) == (since is None):
        raise click.UsageError("give one of --cursor and --since")
    since_time = parse_since(since) if since is not None else None
    return await client.changes(path, since_cursor=cursor, since_time=since_time)
