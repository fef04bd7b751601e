"""``meshfs sync``: keep a local folder and a MeshFS directory identical, both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, pass_state, run
from meshfs_client.cli._sync_status import STATUS_LINE_INTERVAL, SyncReporter
from meshfs_common import paths
from meshfs_common.errors import MeshFSError

if TYPE_CHECKING:
    from meshfs_client.mirror import StateDB, SyncOptions

# The values of mirror.ConflictPolicy, spelled out so that `meshfs --help` does not import the
# sync engine (watchfiles, pathspec); tests/test_cli.py checks the two agree.
CONFLICT_POLICIES = ("lww", "keep-both")


@click.command()
@click.option(
    "--target",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The local folder to keep in sync (created if missing).",
)
@click.option(
    "--path", "remote", default="/", show_default=True, help="The remote directory to mirror."
)
@click.option("--once", is_flag=True, help="Sync until both sides agree, then exit.")
@click.option(
    "--conflicts",
    type=click.Choice(CONFLICT_POLICIES),
    default=CONFLICT_POLICIES[0],
    show_default=True,
    help="A file changed on both sides: last commit wins (the other content stays in history)"
    " or keep both (a conflict copy).",
)
@click.option("--status", "show_status", is_flag=True, help="Show what is pending, then exit.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the sync state database lives (default: the user state directory).",
)
@click.option(
    "--transfers", type=click.IntRange(1, 64), default=8, show_default=True,
    help="Parallel uploads/downloads.",
)  # fmt: skip
@click.option("--no-websocket", is_flag=True, help="Poll /sync/pull instead of a WebSocket.")
@click.option(
    "--log",
    "log_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every event (transfers, conflicts, errors, outages) to FILE as JSON lines.",
)
@pass_state
def sync(
    state: CliState,
    target: Path,
    remote: str,
    once: bool,
    conflicts: str,
    show_status: bool,
    state_dir: Path | None,
    transfers: int,
    no_websocket: bool,
    log_file: Path | None,
) -> None:
    """Mirror a local folder and a remote directory, both ways (continuous by default).

    Changes on either side reach the other within moments; a file changed on both sides is
    resolved by --conflicts without losing content. Executable bits, modification times and
    symbolic links (as links, never followed) travel too; a chmod or touch alone is sent as
    an attribute change. Files matching .meshfsignore in the folder (gitignore syntax),
    editors' temporary files and special files stay local.

    On a terminal one status line says what is happening: scanning, syncing N, live,
    offline - retrying in Ns, recovered. Details go to the --log file (without a terminal,
    events are JSON lines on stderr).
    """
    from meshfs_client.mirror import ConflictPolicy, SyncOptions

    options = SyncOptions(
        target=target,
        remote_root=paths.normalise(remote),
        conflicts=ConflictPolicy(conflicts),
        once=once,
        state_dir=state_dir,
        transfers=transfers,
        websocket=not no_websocket,
    )
    if show_status:
        run(_show_status(state, options))
        return

    async def body() -> None:
        from meshfs_client.mirror import MirrorSync

        reporter = SyncReporter(quiet=state.quiet, as_json=state.json, log_file=log_file)
        try:
            async with state.client() as client:
                engine = MirrorSync(client, options, on_event=reporter)
                reporter.status = engine.status
                async with asyncio.TaskGroup() as group:
                    ticker = group.create_task(_tick(reporter))
                    try:
                        await engine.run()
                    finally:
                        ticker.cancel()
        finally:
            reporter.close()

    run(body())


async def _tick(reporter: SyncReporter) -> None:
    while True:
        reporter.draw()
        await asyncio.sleep(STATUS_LINE_INTERVAL)


async def _show_status(state: CliState, options: SyncOptions) -> None:
    from meshfs_client.mirror import StateDB, default_state_dir, state_file

    target = options.target.resolve()
    async with state.client() as client:
        me = await client.whoami()
        where = state_file(
            options.state_dir or default_state_dir(), client.server, me.tenant_id,
            options.remote_root, target,
        )  # fmt: skip
        if not where.exists():
            raise click.ClickException(f"{target} has never been synced with {options.remote_root}")
        db = await asyncio.to_thread(StateDB, where)
        try:
            report = await asyncio.to_thread(_local_report, db, target)
            cursor = db.cursor or 0
            server_cursor: int | None = None
            with contextlib.suppress(MeshFSError):
                server_cursor = await client.current_cursor()
            engine = json.loads(db.get_meta("status") or "{}")
            pending = db.pending()
        finally:
            await asyncio.to_thread(db.close)
    running = bool(engine.get("running")) and _alive(int(engine.get("pid", 0)))
    summary = {
        "target": str(target),
        "remote": options.remote_root,
        "server": client.server,
        "state": str(where),
        "running": running,
        "cursor": cursor,
        "server_cursor": server_cursor,
        "remote_changes_behind": None if server_cursor is None else max(0, server_cursor - cursor),
        "local_changes": report,
        "engine_pending": [p for p, _ in pending] if running else [],
        "last_error": engine.get("last_error", ""),
        "errors": engine.get("error_paths", {}),
    }
    if state.json:
        state.emit(summary)
        return
    click.echo(f"{target} <-> {client.server}{options.remote_root}")
    click.echo(
        "  sync process: " + (f"running (pid {engine.get('pid')})" if running else "not running")
    )
    behind = summary["remote_changes_behind"]
    click.echo(
        f"  remote: cursor {cursor}"
        + (f", {behind} newer server events not applied" if behind else ", up to date")
        + ("" if server_cursor is not None else " (server unreachable)")
    )
    for label in ("new", "modified", "deleted"):
        items = report[label]
        click.echo(f"  local {label}: {len(items)}")
        for item in items[:20]:
            click.echo(f"    {item}")
        if len(items) > 20:
            click.echo(f"    ... and {len(items) - 20} more")
    if summary["engine_pending"]:
        click.echo(f"  being synced now: {len(summary['engine_pending'])}")
        for item in summary["engine_pending"][:20]:
            click.echo(f"    {item}")
    if summary["errors"]:
        click.echo("  errors:")
        for path, message in list(summary["errors"].items())[:20]:
            click.echo(f"    {path}: {message}")


def _local_report(db: StateDB, target: Path) -> dict[str, list[str]]:
    """Local changes not yet uploaded: a scan compared with the synced state (no hashing)."""
    from meshfs_client.mirror import IgnoreRules
    from meshfs_client.mirror._local import scan

    found = scan(target, IgnoreRules.load(target))
    new = sorted(p for p in found if p not in db.synced)
    modified = sorted(
        p
        for p, node in found.items()
        if p in db.synced and node.kind == "file" and not node.same_stat(db.synced[p])
    )
    deleted = sorted(p for p in db.synced if p not in found)
    return {"new": new, "modified": modified, "deleted": deleted}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
