"""Agent commands: ``mcp`` (MeshFS as an MCP server over stdio)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import click

from meshfs_client.cli._context import CliState, client_command

if TYPE_CHECKING:
    from meshfs_client._client import MeshFSClient


@click.command()
@client_command()
async def mcp(state: CliState, client: MeshFSClient) -> None:
    """Serve MeshFS to an agent host over MCP (stdin/stdout).

    For hosts that start a process (Claude Desktop, IDEs, agent frameworks): the host speaks
    MCP on this command's stdin and stdout. The tools (read, write, edit, list, tree, search,
    stat, mkdir, move, delete, versions, restore, diff, changes_since) act with the token in
    MESHFS_TOKEN - give the agent its own agent token, limited to a path prefix and, if it only
    reads, read-only - or else with your stored login. The server enforces the token's limits
    on every call, records the agent as the writer of each version, and audits every tool
    call (`meshfs audit --action 'mcp.tool.*'`).

    Needs the MCP SDK: pip install 'meshfs-client[mcp]'.
    """
    if importlib.util.find_spec("mcp") is None:
        raise click.ClickException(
            "meshfs mcp needs the MCP SDK, an optional part: pip install 'meshfs-client[mcp]'"
        )
    from meshfs_client import __version__
    from meshfs_client.mcp import serve_stdio

    # Fail now, with one clear line, rather than on the agent's first tool call.
    await client.whoami()
    await serve_stdio(client, version=__version__)
