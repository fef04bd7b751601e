"""Tenant commands: ``quota`` (plan, storage, retention, rate limit) and ``audit``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from meshfs_client.cli._context import CliState, human_size, human_time, pass_state, run


def _percent(used: int, quota: int) -> str:
    return f"{100 * used / quota:.1f}%" if quota > 0 else "-"


@click.command()
@pass_state
def quota(state: CliState) -> None:
    """Show the tenant's plan, storage used against its quota, retention and rate limit."""

    async def body() -> None:
        async with state.client() as client:
            info = await client.plan()
            if state.json:
                state.emit(info)
                return
            storage: dict[str, Any] = info.get("storage") or {}
            retention: dict[str, Any] = info.get("retention") or {}
            limit = int(storage.get("quota", 0))
            click.echo(f"tenant:     {info.get('tenant_name')} ({info.get('tenant_id')})")
            click.echo(f"plan:       {info.get('plan')}")
            if "used" not in storage:  # a token limited to a folder is not told the tenant's use
                click.echo(f"storage:    quota {human_size(limit)} (usage not shown to this token)")
            else:
                used = int(storage["used"])
                click.echo(
                    f"storage:    {human_size(used)} of {human_size(limit)} used "
                    f"({_percent(used, limit)}; identical content counted once)"
                )
            click.echo(
                f"retention:  {retention.get('max_versions')} versions per file, "
                f"{retention.get('max_days')} days; deleted files kept "
                f"{retention.get('grace_days')} days"
            )
            click.echo(f"rate limit: {info.get('rate_limit_per_minute')} requests/minute")

    run(body())


def _audit_line(row: dict[str, Any]) -> str:
    at = row.get("at")
    when = human_time(datetime.fromisoformat(at)) if isinstance(at, str) else str(at)
    who = row.get("agent_name") or row.get("device_name") or row.get("user_id") or "-"
    target = row.get("target") or ""
    return f"{when}  {row.get('action', ''):<22} {row.get('outcome', ''):<8} {who}  {target}"


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
@pass_state
def audit(
    state: CliState, limit: int, action: str | None, user_id: str | None, outcome: str | None
) -> None:
    """Show recent audit events (owners: the whole tenant; others: their own)."""

    async def body() -> None:
        async with state.client() as client:
            page = await client.audit_page(
                limit=limit, action=action, user_id=user_id, outcome=outcome
            )
            rows: list[dict[str, Any]] = page.get("entries") or []
            if state.json:
                state.emit(rows)
                return
            for row in rows:
                click.echo(_audit_line(row))

    run(body())
