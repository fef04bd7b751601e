"""``meshfs-server approve`` and ``meshfs-server keys ...`` (``admin ...`` is :mod:`.admin`).

They work on the database and key files directly, so they can run next to a running server
(SQLite WAL lets one writer and many readers share the file). With ``MESHFS_DATABASE_URL`` set
they work on that Postgres database, where identity's tables and the signing keys then live.
Exit codes: 0 success, 1 the operation failed (one line on stderr says why), 2 bad usage or
settings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from meshfs_common.errors import NotFoundError
from meshfs_server.auth import accounts, device
from meshfs_server.auth.keys import KeyFileError, KeyRing
from meshfs_server.auth.service import approve_for_account, key_source
from meshfs_server.auth.store import AuthStore
from meshfs_server.cli.common import (
    DATA_DIR,
    QuietError,
    identity_location,
    require_existing_data,
    run_db,
    settings_for,
)  # fmt: skip
from meshfs_server.display import printable
from meshfs_server.settings import Settings


def _describe_pending(codes: list[device.DeviceCode], now: float) -> str:
    if not codes:
        return "no login is pending there"
    lines = ["pending logins there:"]
    for code in codes:
        age = max(0, round((now - code.created_at) / 60))
        source = f" from {printable(code.client_address)}" if code.client_address else ""
        lines.append(f"  {code.user_code}  {printable(code.client_name)}{source}, {age} min ago")
    return "\n".join(lines)


def approve_code(
    settings: Settings, user_code: str, username: str, tenant: str | None, role: str, deny: bool
) -> str:
    """Approve (or deny) a pending device login directly in the database.

    An unknown code fails naming where it was looked up and listing the pending codes."""
    accounts.check_role(role)
    require_existing_data(settings, "no pending login")

    async def work(db: AuthStore) -> str:
        now = time.time()
        async with db.write() as conn:
            try:
                return await approve_for_account(
                    conn, user_code, username, tenant, role, approve=not deny, now=now, via="cli"
                )
            except NotFoundError:
                waiting = await device.pending(conn, now)
        raise NotFoundError(
            f"no pending login with code {printable(user_code)} in"
            f" {identity_location(settings)} (expired or mistyped);"
            f" {_describe_pending(waiting, now)}"
        )

    return run_db(settings, work)


@click.command()
@click.argument("user_code")
@click.option("--user", "username", default=None, help="sign in as this user [the OS user name]")
@click.option("--tenant", default=None, help="in this tenant [the user's tenant, or a new one]")
@click.option("--role", default="owner", show_default=True,
              help="role given if the user is not yet a member")  # fmt: skip
@click.option("--deny", is_flag=True, help="refuse the login instead")
@DATA_DIR
def approve(
    user_code: str, username: str | None, tenant: str | None, role: str, deny: bool,
    data_dir: Path | None,
) -> None:  # fmt: skip
    """Approve a pending device login (USER_CODE as shown by `meshfs login`).

    Creates the user, tenant and membership when missing: a new user becomes owner of a new
    tenant named after them.

    Reads the server's data directory (--data-dir or MESHFS_DATA_DIR as the server has them,
    else your user data directory) and never creates one. An unknown code fails naming that
    directory and listing the codes pending there.
    """
    import getpass

    name = username or getpass.getuser()
    settings = settings_for(data_dir)
    if role not in accounts.ROLES:
        raise click.BadParameter(f"one of {', '.join(accounts.ROLES)}", param_hint="--role")
    click.echo(approve_code(settings, user_code, name, tenant, role, deny))


@click.group()
def keys() -> None:
    """Access-token signing keys."""


@keys.command("rotate")
@click.option("--keep-days", type=float, default=None,
              help="drop keys older than this (default: keep all for verification)")  # fmt: skip
@DATA_DIR
def keys_rotate(keep_days: float | None, data_dir: Path | None) -> None:
    """Make a new signing key current; older keys still verify tokens until dropped."""
    settings = settings_for(data_dir)
    if settings.jwt_secret:
        raise QuietError("MESHFS_JWT_SECRET is set; change the secret instead")
    keep = None if keep_days is None else keep_days * 86400

    async def work(db: AuthStore) -> KeyRing:
        return await key_source(db, settings).rotate(keep_seconds=keep)

    try:
        ring = run_db(settings, work)
    except (KeyFileError, OSError) as exc:
        raise QuietError(str(exc)) from None
    click.echo(f"current key {ring.current_kid}; {len(ring.keys)} key(s) accepted")


def _echo_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo("  ".join(f"{k}={v}" for k, v in row.items()))
