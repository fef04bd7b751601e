"""``meshfs token create | list | revoke``: agent tokens (named, expiring, path-confined)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import click

from meshfs_client.cli._context import CliState, CommandGroup, human_time, pass_state, run

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


def _when(value: Any) -> str:
    if not isinstance(value, str):
        return "never"
    return human_time(datetime.fromisoformat(value))


@click.group(cls=CommandGroup)
def token() -> None:
    """Agent tokens: bearer tokens for scripts and AI agents, confined to a folder.

    An agent uses one as MESHFS_TOKEN (or MeshFSClient(token=...)). It sees only paths under
    its prefix, can be read-only, expires, and can be revoked at any time.
    """


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
@pass_state
def create(state: CliState, name: str, prefix: str, read_only: bool, expires: int) -> None:
    """Create an agent token and print it (it is shown only this once)."""

    async def body() -> None:
        async with state.client() as client:
            made = await client.create_agent_token(
                name, path_prefix=prefix, read_only=read_only, expires_in=expires
            )
            if state.json:
                state.emit(made)
                return
            click.echo(made["token"])
            state.info(
                f"agent token {made['name']!r} ({made['session_id']}): {made['access']} access"
                f" to {made['path_prefix']}, expires {_when(made.get('expires_at'))}.\n"
                "Store it now; it cannot be shown again. Revoke with"
                f" `meshfs token revoke {made['session_id']}`."
            )

    run(body())


@token.command("list")
@click.option("--all", "everyone", is_flag=True, help="Everyone's in the tenant (owners).")
@click.option("--revoked", is_flag=True, help="Include revoked and expired ones.")
@pass_state
def list_(state: CliState, everyone: bool, revoked: bool) -> None:
    """List agent tokens (id, name, access, prefix, expiry)."""

    async def body() -> None:
        async with state.client() as client:
            found = await client.sessions(everyone=everyone, include_revoked=revoked)
            agents = [s for s in found if s.get("kind") == "agent"]
            if state.json:
                state.emit(agents)
                return
            if not agents:
                state.info("no agent tokens (create one with `meshfs token create`)")
            for agent in agents:
                status = " revoked" if agent.get("revoked_at") else ""
                who = f"  {agent.get('username')}" if everyone else ""
                click.echo(
                    f"{agent['session_id']}  {agent['name']:<20} {agent['access']:<5}"
                    f" {agent['path_prefix']:<20} expires {_when(agent.get('expires_at'))}"
                    f"{status}{who}"
                )

    run(body())


@token.command()
@click.argument("session_id")
@pass_state
def revoke(state: CliState, session_id: str) -> None:
    """Revoke an agent token (or a device session) by its id; it stops working at once."""

    async def body() -> None:
        async with state.client() as client:
            await client.revoke_session(session_id)
            if state.json:
                state.emit({"session_id": session_id, "revoked": True})
            else:
                state.info(f"revoked {session_id}")

    run(body())
