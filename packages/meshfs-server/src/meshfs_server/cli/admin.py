"""``meshfs-server admin ...``: local accounts, tenants, memberships and plans.

Every command is audited (action ``admin.*``) in the tenant it concerns.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from meshfs_common.errors import AlreadyExistsError, NotFoundError
from meshfs_server.auth import accounts
from meshfs_server.auth.store import AuthStore, SqlSession
from meshfs_server.cli.common import DATA_DIR, require_existing_data, run_db, settings_for
from meshfs_server.policy import audit


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


Work = Callable[[SqlSession], Awaitable[str]]


def _admin(data_dir: Path | None, work: Work, *, creates: bool = False) -> str:
    """Run *work* in one transaction. Only a command that *creates* accounts may start a new
    data directory (to prepare users before the first `serve`); the others refuse, naming the
    directory, rather than leave an empty one behind (a mistyped --data-dir, another HOME)."""
    settings = settings_for(data_dir)
    if not creates:
        require_existing_data(settings, "nothing to manage")

    async def run(db: AuthStore) -> str:
        async with db.write() as conn:
            return await work(conn)

    return run_db(settings, run)


async def _audit(
    conn: SqlSession, tenant_id: str | None, action: str, target: str, **detail: str
) -> None:
    """The audit row of an administrator's command: action ``admin.<action>``, via the CLI."""
    await audit.record(
        conn, tenant_id, f"admin.{action}", target=target, detail={**detail, "via": "cli"}
    )


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


@click.group()
def admin() -> None:
    """Manage local accounts, tenants and memberships (works while the server runs)."""


@admin.command("create-user")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin")
@click.option("--no-password", is_flag=True, help="no password (device approval by CLI only)")
@click.option(
    "--tenant",
    default=None,
    help="add to this tenant (created if missing) [a new tenant named after the user]",
)
@click.option(
    "--role",
    type=click.Choice(accounts.ROLES),
    default="owner",
    show_default=True,
    help="role in --tenant",
)
@DATA_DIR
def create_user(
    username: str, password_stdin: bool, no_password: bool, tenant: str | None, role: str,
    data_dir: Path | None,
) -> None:  # fmt: skip
    """Create a local account (argon2id password hash).

    Every account belongs to a tenant, or it could not sign in: without --tenant the user
    becomes owner of a new tenant named after them (as `meshfs-server approve` does).
    """
    password = None if no_password else _password(password_stdin)

    async def work(conn: SqlSession) -> str:
        user = await accounts.create_user(conn, username, password)
        line = f"created user {username} ({user.user_id})"
        if tenant is None:
            if await accounts.get_tenant(conn, name=username) is not None:
                # Joining someone else's tenant by a name clash would be a surprise: refuse
                # (the transaction rolls back, so the user is not created either).
                raise AlreadyExistsError(
                    f"a tenant named {username} already exists; choose the user's tenant:"
                    f" meshfs-server admin create-user {username} --tenant NAME"
                )
            found = await accounts.create_tenant(conn, username)
            await _audit(conn, found.tenant_id, "create_tenant", username, plan=found.plan)
            member_role = "owner"
        else:
            found = await accounts.get_tenant(conn, name=tenant) or await accounts.create_tenant(
                conn, tenant
            )
            member_role = role
        await accounts.set_member(conn, found.tenant_id, user.user_id, member_role)
        await _audit(conn, found.tenant_id, "add_member", username, role=member_role)
        line += f", {member_role} of {found.name}"
        await _audit(conn, None, "create_user", username)
        return line

    click.echo(_admin(data_dir, work, creates=True))


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin")
@DATA_DIR
def set_password(username: str, password_stdin: bool, data_dir: Path | None) -> None:
    """Replace a user's password."""
    password = _password(password_stdin)

    async def work(conn: SqlSession) -> str:
        await accounts.set_password(conn, username, password)
        await _audit(conn, None, "set_password", username)
        return f"password of {username} changed"

    click.echo(_admin(data_dir, work))


@admin.command("list-users")
@DATA_DIR
def list_users(data_dir: Path | None) -> None:
    """List users with their tenants and roles."""

    async def work(conn: SqlSession) -> str:
        lines = []
        for user in await accounts.list_users(conn):
            joined = await accounts.memberships(conn, user_id=user.user_id)
            roles = ",".join(f"{m.tenant_name}:{m.role}" for m in joined)
            state = "disabled" if user.disabled else "active"
            password = "password" if user.has_password else "no-password"
            lines.append(f"{user.username}\t{user.user_id}\t{state}\t{password}\t{roles or '-'}"
                         f"\t{_when(user.created_at)}")  # fmt: skip
        return "\n".join(lines) or "(no users)"

    click.echo(_admin(data_dir, work))


@admin.command("disable-user")
@click.argument("username")
@click.option("--enable", is_flag=True, help="re-enable instead")
@DATA_DIR
def disable_user(username: str, enable: bool, data_dir: Path | None) -> None:
    """Disable a user: every session and agent token of theirs stops working at once."""

    async def work(conn: SqlSession) -> str:
        user = await accounts.set_disabled(conn, username, not enable)
        for m in await accounts.memberships(conn, user_id=user.user_id):
            action = "enable_user" if enable else "disable_user"
            await _audit(conn, m.tenant_id, action, username)
        return f"{'enabled' if enable else 'disabled'} {username}"

    click.echo(_admin(data_dir, work))


@admin.command("create-tenant")
@click.argument("name")
@click.option("--plan", type=click.Choice(accounts.PLANS), default="free", show_default=True)
@click.option("--owner", default=None, help="make this existing user its owner")
@DATA_DIR
def create_tenant(name: str, plan: str, owner: str | None, data_dir: Path | None) -> None:
    """Create a tenant."""

    async def work(conn: SqlSession) -> str:
        tenant = await accounts.create_tenant(conn, name, plan)
        await _audit(conn, tenant.tenant_id, "create_tenant", name, plan=plan)
        if owner is not None:
            user = await accounts.get_user(conn, username=owner)
            if user is None:
                raise NotFoundError(f"no such user: {owner}")
            await accounts.set_member(conn, tenant.tenant_id, user.user_id, "owner")
            await _audit(conn, tenant.tenant_id, "add_member", owner, role="owner")
        return f"created tenant {name} ({tenant.tenant_id}) on plan {plan}"

    click.echo(_admin(data_dir, work, creates=True))


@admin.command("list-tenants")
@DATA_DIR
def list_tenants(data_dir: Path | None) -> None:
    """List tenants with their plans and members."""

    async def work(conn: SqlSession) -> str:
        lines = []
        for t in await accounts.list_tenants(conn):
            joined = await accounts.memberships(conn, tenant_id=t.tenant_id)
            members = ",".join(f"{m.username}:{m.role}" for m in joined)
            lines.append(f"{t.name}\t{t.tenant_id}\t{t.plan}\t{members or '-'}")
        return "\n".join(lines) or "(no tenants)"

    click.echo(_admin(data_dir, work))


@admin.command("add-member")
@click.argument("tenant")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), default="writer", show_default=True)
@DATA_DIR
def add_member(tenant: str, username: str, role: str, data_dir: Path | None) -> None:
    """Add USERNAME to TENANT with a role (or change their role)."""

    async def work(conn: SqlSession) -> str:
        found = await accounts.get_tenant(conn, name=tenant)
        user = await accounts.get_user(conn, username=username)
        if found is None:
            raise NotFoundError(f"no such tenant: {tenant}")
        if user is None:
            raise NotFoundError(f"no such user: {username}")
        await accounts.set_member(conn, found.tenant_id, user.user_id, role)
        await _audit(conn, found.tenant_id, "add_member", username, role=role)
        return f"{username} is {role} of {tenant}"

    click.echo(_admin(data_dir, work))


@admin.command("remove-member")
@click.argument("tenant")
@click.argument("username")
@DATA_DIR
def remove_member(tenant: str, username: str, data_dir: Path | None) -> None:
    """Remove USERNAME from TENANT (their sessions there stop working at once)."""

    async def work(conn: SqlSession) -> str:
        found = await accounts.get_tenant(conn, name=tenant)
        user = await accounts.get_user(conn, username=username)
        if found is None or user is None:
            raise NotFoundError(f"no such tenant or user: {tenant} / {username}")
        if not await accounts.remove_member(conn, found.tenant_id, user.user_id):
            raise NotFoundError(f"{username} is not a member of {tenant}")
        await _audit(conn, found.tenant_id, "remove_member", username)
        return f"removed {username} from {tenant}"

    click.echo(_admin(data_dir, work))


@admin.command("set-plan")
@click.argument("tenant")
@click.argument("plan", type=click.Choice(accounts.PLANS))
@DATA_DIR
def set_plan(tenant: str, plan: str, data_dir: Path | None) -> None:
    """Change a tenant's plan (only server administrators can; there is no API for it)."""

    async def work(conn: SqlSession) -> str:
        await accounts.set_plan(conn, tenant, plan)
        found = await accounts.get_tenant(conn, name=tenant)
        assert found is not None
        await _audit(conn, found.tenant_id, "set_plan", tenant, plan=plan)
        return f"{tenant} is on plan {plan}"

    click.echo(_admin(data_dir, work))
