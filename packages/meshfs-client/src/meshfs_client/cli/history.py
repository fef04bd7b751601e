"""History and change commands: ``versions``, ``restore``, ``watch``."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command, human_size, human_time
from meshfs_common.models import ChangeEvent, CommitResult, Version

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient


def _show_versions(state: CliState, found: list[Version]) -> None:
    for version in found:
        writer = ""
        if version.writer is not None:
            writer = version.writer.agent_name or version.writer.device_name or ""
            writer = writer or version.writer.user_id
        restored = f" (restored from {version.restored_from})" if version.restored_from else ""
        click.echo(
            f"{version.version_id}  {human_time(version.created_at)}  "
            f"{human_size(version.size):>8}  {writer}{restored}"
        )


@click.command()
@click.argument("path")
@client_command(text=_show_versions)
async def versions(state: CliState, client: MeshFSClient, path: str) -> list[Version]:
    """List a file's versions, newest first (also works for deleted files)."""
    return [v async for v in client.versions(path)]


@click.command()
@click.option("--to", "to_path", metavar="PATH", help="Restore a deleted file at another path.")
@click.argument("path")
@click.argument("version_id")
@client_command()
async def restore(
    state: CliState, client: MeshFSClient, to_path: str | None, path: str, version_id: str
) -> CommitResult:
    """Make VERSION_ID the new head of PATH (undeletes a deleted file)."""
    # The answer does not say whether the file came back from deletion; ask first.
    was_live = to_path is None and await client.exists(path)
    result = await client.restore(path, version_id, to_path=to_path)
    if not was_live:
        state.info(f"restored deleted file {result.entry.path} from version {version_id}")
    elif result.created_version:
        state.info(f"restored {result.entry.path} to {version_id}")
    else:
        state.info(f"{result.entry.path} already has that content; nothing changed")
    return result


def _event_line(event: ChangeEvent) -> str:
    where = f"{event.old_path} -> {event.path}" if event.old_path else event.path
    extra = f"  {human_size(event.size)}" if event.size is not None else ""
    return f"{event.seq:>8}  {human_time(event.at)}  {event.type:<7}  {where}{extra}"


@click.command()
@click.option(
    "--cursor",
    type=click.IntRange(min=0),
    help="Replay events after this cursor first (default: only new events).",
)
@click.option("--no-websocket", is_flag=True, help="Poll /sync/pull instead of a WebSocket.")
@client_command()
async def watch(
    state: CliState, client: MeshFSClient, cursor: int | None, no_websocket: bool
) -> None:
    """Print change events as they happen (Ctrl-C to stop).

    When the server cannot be reached it says so on stderr ("offline - retrying in 4s") and
    again when the feed is back; no event is lost meanwhile.
    """
    from meshfs_client._watch import ChangeFeed, FeedReset

    was_offline = False

    def on_state(feed: ChangeFeed) -> None:
        nonlocal was_offline
        if feed.state == "offline":
            wait = max(1, math.ceil(feed.retry_at - time.monotonic()))
            if state.json:
                state.emit({"type": "offline", "error": feed.error, "retry_in": wait})
            elif not was_offline:
                state.info(f"offline - retrying in {wait}s ({feed.error})")
            was_offline = True
        elif feed.state == "live" and was_offline:
            was_offline = False
            if state.json:
                state.emit({"type": "recovered", "cursor": feed.cursor})
            else:
                state.info(f"recovered: watching again from cursor {feed.cursor}")

    start = cursor if cursor is not None else await client.current_cursor()
    state.info(f"watching {client.server} from cursor {start}")
    feed_of = client.watch(start, websocket=not no_websocket, on_state=on_state)
    async with feed_of as feed:
        async for item in feed:
            if isinstance(item, FeedReset):
                if state.json:
                    state.emit({"type": "reset", "cursor": item.cursor})
                else:
                    click.echo(f"reset: history before cursor {item.cursor} is gone")
            elif state.json:
                state.emit(item)
            else:
                click.echo(_event_line(item))
