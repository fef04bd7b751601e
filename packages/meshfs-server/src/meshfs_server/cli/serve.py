"""``meshfs-server serve`` (the default command), ``migrate``, ``collect`` and ``openapi``.

With no sub-command it serves, so ``meshfs-server`` alone starts the embedded default.
Exit codes: 0 success, 1 runtime failure, 2 bad usage or settings.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click

from meshfs_server.cli.common import QuietError, load_settings
from meshfs_server.settings import Settings, SettingsError

#: Seconds a request still running at shutdown (say, an upload) gets to finish.
SHUTDOWN_GRACE_SECONDS = 0.5

_SERVE_OPTIONS = [
    click.option("--bind", help="HOST:PORT to listen on [env MESHFS_BIND_ADDR; 127.0.0.1:8787]"),
    click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        help="where metadata, content and keys live [env MESHFS_DATA_DIR; user data dir]",
    ),
    click.option(
        "--public-url",
        help="URL clients use to reach this server; required when --bind is 0.0.0.0 or [::]"
        " [MESHFS_PUBLIC_URL]",
    ),
    click.option(
        "--dev-auto-approve/--no-dev-auto-approve",
        default=None,
        help="DEVELOPMENT ONLY: approve every device login automatically [MESHFS_DEV_AUTO_APPROVE]",
    ),
    click.option(
        "--access-log/--no-access-log",
        default=None,
        help="one line per request at info, secrets hidden [MESHFS_ACCESS_LOG; on]",
    ),
    click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        help="[MESHFS_LOG_LEVEL; info]",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        help="server processes sharing the port; 1 serves from this process alone"
        " [MESHFS_WORKERS; one per CPU]",
    ),
]


def serve_options(func: Any) -> Any:
    for option in reversed(_SERVE_OPTIONS):
        func = option(func)
    return func


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@serve_options
@click.version_option(package_name="meshfs-server")
@click.pass_context
def main(ctx: click.Context, /, **flags: Any) -> None:
    """MeshFS server. Without a command, `serve`."""
    # Whatever this process creates (database, journal, keys, content) is for its user only.
    os.umask(0o077)
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve, **flags)


@main.command()
@serve_options
# Set by the parent for its workers: the listening socket, and which worker this is.
@click.option("--worker-fd", type=int, hidden=True)
@click.option("--worker-index", type=int, hidden=True)
def serve(worker_fd: int | None = None, worker_index: int | None = None, **flags: Any) -> None:
    """Serve the HTTP API (embedded default: SQLite + a local content directory).

    Every setting can also come from its MESHFS_* environment variable; see the README.
    Logs go to stderr, one access-log line per request at info. With --workers N (default:
    one per CPU) N processes answer on the one port; a worker that dies is replaced while the
    others keep serving. Ctrl-C (or SIGTERM) stops every worker within a second: open
    WebSockets are closed with 1001 "going away".
    """
    settings = load_settings(**flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from hypercorn.utils import LifespanFailureError

    if worker_fd is None and settings.worker_count > 1:
        _serve_workers(settings, flags)
    try:
        _run(_serve(settings, worker_fd, worker_index))
    except OSError as exc:
        raise QuietError(f"cannot serve on {settings.bind}: {exc.strerror}") from None
    except LifespanFailureError as exc:
        # The lifespan's own exception is the context of the failure hypercorn reports.
        _cannot_start(exc.__context__ or exc)
    # Stopped cleanly: the lifespan closed everything the server owns (databases, content
    # store, background tasks). The interpreter's own teardown of the hundreds of modules a
    # server imports would add about half a second to every stop; skip it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve_workers(settings: Settings, flags: dict[str, Any]) -> NoReturn:
    """Bind the port, prepare the storage once, and run ``settings.worker_count`` workers on
    it until Ctrl-C or SIGTERM (see :mod:`meshfs_server.cli.workers`)."""
    from meshfs_server.cli.workers import Supervisor, listening_socket, worker_arguments

    try:
        sock = listening_socket(settings.bind)
    except OSError as exc:
        raise QuietError(f"cannot serve on {settings.bind}: {exc.strerror}") from None
    try:
        # Migrations and the signing key, made once here rather than raced by the workers.
        _run(_prepare(settings))
    except Exception as exc:  # every failure is reported by _cannot_start
        _cannot_start(exc)
    count = settings.worker_count
    click.echo(
        f"MeshFS server on {settings.base_url} (data in {settings.resolved_data_dir},"
        f" {count} workers)",
        err=True,
    )
    if settings.dev_auto_approve:
        _warn_dev_auto_approve(settings)
    supervisor = Supervisor(sock, count, worker_arguments(flags))
    asyncio.run(supervisor.run())
    sock.close()
    if supervisor.failed is not None:
        raise QuietError(supervisor.failed)
    click.echo("MeshFS server stopped (every worker)", err=True)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


async def _prepare(settings: Settings) -> None:
    from meshfs_server.services import open_services

    async with open_services(settings):
        pass


def _cannot_start(cause: BaseException) -> NoReturn:
    """The server could not open its storage, keys or backends: one line and exit 1. The
    cause's traceback is printed too only when it is not a failure the line explains (a bug)."""
    from meshfs_common.errors import MeshFSError
    from meshfs_server.auth.keys import KeyFileError

    if isinstance(cause, MeshFSError):
        why = cause.message
    elif isinstance(cause, (KeyFileError, SettingsError)):
        why = str(cause)
    elif isinstance(cause, OSError):
        why = f"{cause.strerror or cause}" + (f": {cause.filename}" if cause.filename else "")
    else:
        traceback.print_exception(cause)
        why = f"{type(cause).__name__}: {cause}"
    raise QuietError(f"cannot start: {why}")


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (about 1.5x the HTTP throughput), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _quiet_cancelled_connections(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Drop one benign report: on Python 3.11, asyncio's stream callback calls
    ``task.exception()`` on a connection task that shutdown cancelled and logs the resulting
    CancelledError as an error (CPython 3.12 fixed it). Everything else is reported as usual."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""
GC_MIDDLE_THRESHOLD = 5
"""Young collections between collections of the middle generation (default: 10)."""


def tune_garbage_collector() -> None:
    """Collection fit for a process holding thousands of long-lived connections.

    What start-up made (modules, classes, the app) lives as long as the process: it is frozen
    out of every later collection. An open stream is ~290 tracked objects (tasks, coroutines,
    protocol state), so 10,000 subscribers are ~3 million; with CPython's default thresholds
    the burst of short-lived objects of one write's fan-out to all of them survived enough
    young collections to start a full pass over those millions (2-5 s with the event loop
    stopped, every other write). Young collections every 50,000 allocations let a fan-out's
    objects die by reference count first, so full passes come only as the set of long-lived
    objects really grows.
    """
    gc.collect()
    gc.freeze()
    _, _, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, oldest)


async def _serve(
    settings: Settings, worker_fd: int | None = None, worker_index: int | None = None
) -> None:
    """Serve on the bound address, or, in a worker, on the parent's socket *worker_fd*. Of
    the workers, the first alone collects garbage (the others would only repeat its work)."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from meshfs_server.app import create_app
    from meshfs_server.http.draining import Shutdown

    config = Config()
    config.bind = [settings.bind] if worker_fd is None else [f"fd://{worker_fd}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = 75
    # No server-initiated WebSocket pings: hypercorn's ping task outlives a closed connection
    # and holds shutdown for the whole graceful timeout. Clients keep idle connections alive
    # with {"type": "ping"} (and hypercorn still answers protocol-level pings).
    # Streams end as soon as shutdown begins (see meshfs_server.http.draining); this is only
    # what a request still uploading gets to finish.
    config.graceful_timeout = SHUTDOWN_GRACE_SECONDS
    app = create_app(settings, background=not worker_index)
    tune_garbage_collector()
    shutdown: Shutdown = app.state.shutdown
    began: list[float] = []

    def begin_shutdown() -> None:
        if shutdown.started:
            return
        began.append(time.monotonic())
        open_now = shutdown.open_requests
        click.echo(
            f"MeshFS server stopping: closing {open_now} open connection(s)"
            f" (streams get 1001 going away)",
            err=True,
        )
        shutdown.begin()

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancelled_connections)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, begin_shutdown)
    if worker_fd is None:
        click.echo(
            f"MeshFS server on {settings.base_url} (data in {settings.resolved_data_dir})",
            err=True,
        )
        if settings.dev_auto_approve:
            _warn_dev_auto_approve(settings)
    else:
        from meshfs_server.cli.workers import die_with_parent

        die_with_parent()
    await hypercorn_serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
    if began:
        click.echo(f"MeshFS server stopped in {time.monotonic() - began[0]:.2f} s", err=True)


def _warn_dev_auto_approve(settings: Settings) -> None:
    """Say loudly, at start, that anyone who can reach the server can sign in."""
    from meshfs_server.auth.service import DEV_TENANT, DEV_USER

    banner = "!" * 78
    logging.getLogger("meshfs_server").warning(
        "\n%s\n  --dev-auto-approve is ON (DEVELOPMENT ONLY): every device login is approved at"
        " once\n  as user %r in tenant %r, without anyone being asked. Anyone who can reach"
        " %s\n  can sign in and read and write that tenant. Never use it on a shared machine."
        "\n%s",
        banner, DEV_USER, DEV_TENANT, settings.base_url, banner,
    )  # fmt: skip


@main.command()
@click.option("--dry-run", is_flag=True, help="list pending migrations without applying them")
def migrate(dry_run: bool) -> None:
    """Apply pending metadata schema migrations (Postgres when MESHFS_DATABASE_URL is set).

    Safe to run from several hosts at once. The server also applies them at start unless
    MESHFS_DATABASE_MIGRATE_ON_START=false.
    """
    from meshfs_common.errors import MeshFSError
    from meshfs_server.services import migrate_metadata

    settings = load_settings()
    try:
        done = asyncio.run(migrate_metadata(settings, dry_run=dry_run))
    except MeshFSError as exc:
        raise QuietError(f"cannot migrate: {exc}") from None
    where = "postgres" if settings.database_url else str(settings.sqlite_path)
    verb = "pending" if dry_run else "applied"
    click.echo(f"{where}: {verb}: {', '.join(done) if done else 'none'}")


@main.command()
@click.option("--sweep", is_flag=True, help="also delete stored content nothing recorded (slow)")
@click.option("--data-dir", type=click.Path(path_type=Path), help="[env MESHFS_DATA_DIR]")
def collect(sweep: bool, data_dir: Path | None) -> None:
    """Delete content no version references now (the server also does this every 10 minutes).

    --sweep lists the whole content store and deletes objects nothing recorded, such as those
    left by a crash between storing a chunk and committing it (the server sweeps at start-up
    and every 6 hours). Content younger than MESHFS_GC_GRACE_SECONDS is always kept.
    """
    from meshfs_common.errors import MeshFSError
    from meshfs_server.services import open_services

    settings = load_settings(data_dir=data_dir)

    async def run() -> tuple[int, int]:
        async with open_services(settings) as services:
            collected = (await services.collector.collect()).deleted_chunks
            swept = (await services.collector.sweep()).deleted_chunks if sweep else 0
            return collected, swept

    try:
        collected, swept = asyncio.run(run())
    except MeshFSError as exc:
        raise QuietError(f"cannot collect: {exc}") from None
    click.echo(
        f"deleted {collected} unreferenced chunk(s)" + (f", {swept} unrecorded" if sweep else "")
    )


@main.command("openapi")
def openapi_command() -> None:
    """Print the OpenAPI document."""
    from meshfs_server import __version__
    from meshfs_server.app import all_routes
    from meshfs_server.http.openapi import build_document

    click.echo(json.dumps(build_document(all_routes(), __version__), indent=2))
