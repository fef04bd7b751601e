"""What every ``meshfs-server`` command shares: settings, the data-directory option, the
identity database, and :class:`QuietError`, the one way a command fails.

Exit codes: 0 success, 1 the operation failed (one line on stderr says why), 2 bad usage or
settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import click

from meshfs_common.errors import MeshFSError
from meshfs_server.auth.schema import identity_migrations
from meshfs_server.auth.store import AuthStore
from meshfs_server.settings import Settings, SettingsError

T = TypeVar("T")


class QuietError(click.ClickException):
    """A failure the user can act on: ``meshfs-server: <message>`` on stderr, exit *exitcode*,
    no traceback (a traceback always means a bug)."""

    def __init__(self, message: str, exitcode: int = 1) -> None:
        super().__init__(message)
        # click declares exit_code on the class; each failure carries its own.
        self.exit_code = exitcode  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"meshfs-server: {self.message}", err=True)


DATA_DIR = click.option(
    "--data-dir", type=click.Path(path_type=Path),
    help="the server's data directory [env MESHFS_DATA_DIR; user data dir]",
)  # fmt: skip


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and flags. A bad one is one line on stderr,
    ``meshfs-server: MESHFS_X: what is wrong``, and exit code 2."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise QuietError(str(exc), exitcode=2) from None


def settings_for(data_dir: Path | None) -> Settings:
    """The server's settings, exactly as ``meshfs-server serve`` would load them."""
    return load_settings(data_dir=data_dir)


def run_db(settings: Settings, work: Callable[[AuthStore], Awaitable[T]]) -> T:
    """Open identity's database (SQLite, or Postgres with ``MESHFS_DATABASE_URL``), make sure
    the identity tables exist, run *work*, close."""
    from meshfs_server.auth.storage import identity_database

    async def main() -> T:
        async with identity_database(settings) as db:
            await db.migrate({"identity": identity_migrations(db.dialect)})
            return await work(db)

    try:
        return asyncio.run(main())
    except MeshFSError as exc:
        raise QuietError(exc.message) from None


def identity_location(settings: Settings) -> str:
    """Where the commands read accounts and logins, as an administrator would name it (the
    data directory, or the Postgres host and database - never the password)."""
    if settings.database_url is None:
        return f"the data directory {settings.resolved_data_dir}"
    dsn = urlsplit(settings.database_url)
    return f"the Postgres database {dsn.path.lstrip('/') or '?'} on {dsn.hostname or 'localhost'}"


def require_existing_data(settings: Settings, what: str) -> None:
    """Fail with one line when the embedded database is not there: *what* cannot succeed on
    an empty data directory, and opening it would create one (typically under the wrong
    HOME or --data-dir)."""
    if settings.database_url is None and not settings.sqlite_path.exists():
        raise QuietError(
            f"{what}: {identity_location(settings)} holds no MeshFS server data"
            f" (no {settings.sqlite_path.name}); is the server using another --data-dir or"
            " MESHFS_DATA_DIR?"
        )
