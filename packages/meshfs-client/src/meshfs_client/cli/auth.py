"""``meshfs login``, ``logout`` and ``whoami``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import msgspec

from meshfs_client.cli._context import CliState, client_command, human_time

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient


@click.command()
@click.option("--no-browser", is_flag=True, help="Do not try to open a web browser.")
@click.option(
    "--client-name", default="meshfs-cli", show_default=True, help="Name shown for this device."
)
@client_command()
async def login(state: CliState, client: MeshFSClient, no_browser: bool, client_name: str) -> None:
    """Sign in with the device flow: approve the shown code in a browser."""
    start = await client.start_device_login(client_name)
    if state.json:
        state.emit(
            {
                "verification_uri": start.verification_uri,
                "verification_uri_complete": start.verification_uri_complete,
                "user_code": start.user_code,
                "expires_in": start.expires_in,
            }
        )
    else:
        click.echo(
            f"To sign in to {client.server}, open {start.verification_uri}\n"
            f"and enter the code: {start.user_code}\n"
            f"(or open {start.verification_uri_complete})",
            err=True,
        )
    from meshfs_client._settings import has_display

    if not no_browser and has_display():
        import webbrowser

        webbrowser.open(start.verification_uri_complete)
    state.info("Waiting for approval...")
    credentials = await client.wait_for_device_login(start)
    if state.json:
        public = msgspec.structs.asdict(credentials)
        for secret in ("access_token", "refresh_token"):
            public.pop(secret, None)
        state.emit(public)
    elif not state.quiet:
        who = credentials.username or credentials.user_id
        click.echo(f"Logged in to {client.server} as {who}.", err=True)


def _show_logout(state: CliState, answer: dict[str, Any]) -> None:
    if not answer["logged_out"]:
        state.info(f"Not logged in to {answer['server']}.")
    else:
        state.info(f"Logged out of {answer['server']}.")


@click.command()
@client_command(text=_show_logout)
async def logout(state: CliState, client: MeshFSClient) -> dict[str, Any]:
    """Sign out: revoke the session on the server and forget it here."""
    had_session = client.credentials is not None
    revoked = await client.logout()
    return {"server": client.server, "logged_out": had_session, "revoked": revoked}


def _show_whoami(state: CliState, me: dict[str, Any]) -> None:
    click.echo(
        f"{me['username']} ({me['user_id']}) in tenant {me['tenant_name']} on {me['server']}"
    )
    if me["kind"] == "agent":
        expires = human_time(me["expires_at"]) if me["expires_at"] else "never"
        click.echo(
            f"agent token {me['session_name']!r} ({me['session_id']}): {me['access']} access"
            f" to {me['path_prefix']}, expires {expires}"
        )


@click.command()
@client_command(text=_show_whoami)
async def whoami(state: CliState, client: MeshFSClient) -> dict[str, Any]:
    """Show the user and tenant the current credentials speak for."""
    return {"server": client.server, **msgspec.structs.asdict(await client.whoami())}
