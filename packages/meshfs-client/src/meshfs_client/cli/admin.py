"""Tenant commands: ``quota`` (plan, storage, retention, rate limit) and ``audit``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command, human_size, human_time

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient
    from meshfs_common.models import AuditEntry, PlanInfo


def _percent(used: int, quota: int) -> str:
    return f"{100 * used / quota:.1f}%" if quota > 0 else "-"


def _show_plan(state: CliState, info: PlanInfo) -> None:
    storage, retention = info.storage, info.retention
    click.echo(f"tenant:     {info.tenant_name} ({info.tenant_id})")
    click.echo(f"plan:       {info.plan}")
    if storage.used is None:  # a token limited to a folder is not told the tenant's use
        click.echo(f"storage:    quota {human_size(storage.quota)} (usage not shown to this token)")
    else:
        click.echo(
            f"storage:    {human_size(storage.used)} of {human_size(storage.quota)} used "
            f"({_percent(storage.used, storage.quota)}; identical content counted once)"
        )
    click.echo(
        f"retention:  {retention.max_versions} versions per file, {retention.max_days} days;"
        f" deleted files kept {retention.grace_days} days"
    )
    click.echo(f"rate limit: {info.rate_limit_per_minute} requests/minute")


@click.command()
@client_command(text=_show_plan)
async def quota(state: CliState, client: MeshFSClient) -> PlanInfo:
    """Show the tenant's plan, storage used against its quota, retention and rate limit."""
    return await client.plan()


def _audit_line(row: AuditEntry) -> str:
    who = row.agent_name or row.device_name or row.user_id or "-"
    return f"{human_time(row.at)}  {row.action:<22} {row.outcome:<8} {who}  {row.target or ''}"


def _show_audit(state: CliState, rows: list[AuditEntry]) -> None:
    for row in rows:
        click.echo(_audit_line(row))


@click.command()
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="How many rows (newest first).",
)
@click.option(
    "--action",
    help="Only this action (e.g. auth.device_approve, auth.agent_create), or a prefix ending"
    " in * (auth.*).",
)
@click.option("--user", "user_id", metavar="USER_ID", help="Only this user's rows (owners).")
@click.option("--outcome", help="Only this outcome (ok, denied, failed...).")
@client_command(text=_show_audit)
async def audit(
    state: CliState,
    client: MeshFSClient,
    limit: int,
    action: str | None,
    user_id: str | None,
    outcome: str | None,
) -> list[AuditEntry]:
    """Show recent audit events (owners: the whole tenant; others: their own)."""
    page = await client.audit_page(limit=limit, action=action, user_id=user_id, outcome=outcome)
    return page.entries
