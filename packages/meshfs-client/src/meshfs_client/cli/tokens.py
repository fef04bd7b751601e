"""``meshfs token create | list | revoke``: agent tokens (named, expiring, path-confined)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from meshfs_client.cli._context import CliState, CommandGroup, client_command, human_time

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient
    from meshfs_common.models import AgentToken, SessionInfo

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")
MAX_EXPIRY_DAYS = 366
"""The longest life the server grants an agent token."""


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` (or combined, ``1d12h``) as seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration such as 12h, 7d or 2w", param, ctx)
        seconds = sum(int(n) * _UNITS[u] for n, u in parts)
        if not 60 <= seconds <= MAX_EXPIRY_DAYS * 86400:
            self.fail(f"{value!r}: choose between 1m and {MAX_EXPIRY_DAYS}d", param, ctx)
        return seconds


def _when(value: datetime | None) -> str:
    return "never" if value is None else human_time(value)


@click.group(cls=CommandGroup)
def token() -> None:
    """Agent tokens: bearer tokens for scripts and AI agents, confined to a folder.

    An agent uses one as MESHFS_TOKEN (or MeshFSClient(token=...)). It sees only paths under
    its prefix, can be read-only, expires, and can be revoked at any time.
    """


def _show_token(state: CliState, made: AgentToken) -> None:
    click.echo(made.token)
    state.info(
        f"agent token {made.name!r} ({made.session_id}): {made.access} access"
        f" to {made.path_prefix}, expires {_when(made.expires_at)}.\n"
        "Store it now; it cannot be shown again. Revoke with"
        f" `meshfs token revoke {made.session_id}`."
    )


@token.command("create")
@click.option("--name", required=True, help="What the token is for (shown in audit and lists).")
@click.option(
    "--prefix", default="/", show_default=True, help="The folder the token is confined to."
)
@click.option("--read-only", is_flag=True, help="Read but never write (default: read and write).")
@click.option(
    "--expires",
    type=Duration(),
    default="30d",
    show_default=True,
    help="Lifetime: 30m, 12h, 7d, 2w... (at most 366d).",
)
@client_command(text=_show_token)
async def create(
    state: CliState, client: MeshFSClient, name: str, prefix: str, read_only: bool, expires: int
) -> AgentToken:
    """Create an agent token and print it (it is shown only this once)."""
    return await client.create_agent_token(
        name, path_prefix=prefix, read_only=read_only, expires_in=expires
    )


def _show_agents(state: CliState, agents: list[SessionInfo]) -> None:
    if not agents:
        state.info("no agent tokens (create one with `meshfs token create`)")
    everyone = click.get_current_context().params["everyone"]
    for agent in agents:
        status = " revoked" if agent.revoked_at else ""
        who = f"  {agent.username}" if everyone else ""
        click.echo(
            f"{agent.session_id}  {agent.name:<20} {agent.access:<5}"
            f" {agent.path_prefix:<20} expires {_when(agent.expires_at)}{status}{who}"
        )


@token.command("list")
@click.option("--all", "everyone", is_flag=True, help="Everyone's in the tenant (owners).")
@click.option("--revoked", is_flag=True, help="Include revoked and expired ones.")
@client_command(text=_show_agents)
async def list_(
    state: CliState, client: MeshFSClient, everyone: bool, revoked: bool
) -> list[SessionInfo]:
    """List agent tokens (id, name, access, prefix, expiry)."""
    found = await client.sessions(everyone=everyone, include_revoked=revoked)
    return [session for session in found if session.kind == "agent"]


def _show_revoked(state: CliState, answer: dict[str, Any]) -> None:
    state.info(f"revoked {answer['session_id']}")


@token.command()
@click.argument("session_id")
@client_command(text=_show_revoked)
async def revoke(state: CliState, client: MeshFSClient, session_id: str) -> dict[str, Any]:
    """Revoke an agent token (or a device session) by its id; it stops working at once."""
    await client.revoke_session(session_id)
    return {"session_id": session_id, "revoked": True}
