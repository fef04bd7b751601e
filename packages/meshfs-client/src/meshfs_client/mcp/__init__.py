"""MeshFS as an MCP server: file tools and ``meshfs://`` resources for agents.

One implementation serves both transports: ``meshfs mcp`` runs it over stdio for agent hosts
that start a process (:func:`serve_stdio`), and ``meshfs-server`` mounts it at ``/mcp`` over
streamable HTTP (:func:`build_server` with a client per caller). The tools act through a
:class:`~meshfs_client.MeshFSClient` holding the caller's token, so the server enforces the
token's path prefix and read-only limit on every call, and every version records the agent.

Importing this module imports the ``mcp`` SDK; ``import meshfs_client`` never does.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from meshfs_client._client import MeshFSClient
from meshfs_client.mcp._server import ClientFor, Context, build_server, file_uri, tool_list
from meshfs_client.mcp._tools import TOOLS, ToolSpec

__all__ = [
    "TOOLS",
    "ClientFor",
    "Context",
    "ToolSpec",
    "build_server",
    "file_uri",
    "serve_stdio",
    "tool_list",
]


async def serve_stdio(client: MeshFSClient, *, version: str = "") -> None:
    """Serve the tools over this process's stdin/stdout until the host closes them; every call
    acts through *client* (already open)."""
    from mcp.server.stdio import stdio_server

    def client_for(ctx: Context) -> AbstractAsyncContextManager[MeshFSClient]:
        return nullcontext(client)

    server = build_server(client_for, version=version)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
