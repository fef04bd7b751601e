"""MCP for agents: the client library's MCP tools at ``/mcp`` (streamable HTTP), and the audit
of MCP tool calls (``POST /audit/tool-calls``).

``/mcp`` serves :mod:`meshfs_client.mcp` - the same tools ``meshfs mcp`` serves over stdio.
Each tool call acts through a :class:`~meshfs_client.MeshFSClient` that carries the caller's
own bearer token to this server's API over loopback, so the token's path prefix, read-only
limit, quota, rate limit and the writer recorded on each version are exactly the API's. The
transport is stateless (no MCP session ids; every POST carries its token) with JSON answers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from meshfs_client import MeshFSClient
from meshfs_client import Settings as ClientSettings
from meshfs_client.mcp import Context, build_server
from meshfs_common.errors import AuthError, BadRequestError, UnavailableError
from meshfs_common.models import ToolCallRecord
from meshfs_server.http import state
from meshfs_server.http.authn import client_address
from meshfs_server.http.codec import Endpoint, endpoint, parse_json
from meshfs_server.http.state import actor
from meshfs_server.settings import Settings

AUDIT_PREFIX = "mcp.tool."
MCP_BODY = DEFAULT_MAX_REQUEST_BODY_SIZE
"""The largest MCP request (4 MiB): the SDK refuses larger ones too."""
_TOOL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_OUTCOME = re.compile(r"ok|error:[a-z_]{1,64}")
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}


def loopback_url(settings: Settings) -> str:
    """Where this process's API answers on this host (a wildcard bind means loopback)."""
    host, _, port = settings.bind.rpartition(":")
    return f"http://{_WILDCARD_HOSTS.get(host, host)}:{port}"


@dataclass
class McpService:
    """The running MCP transport of one server process (opened by the app's lifespan)."""

    manager: StreamableHTTPSessionManager


@asynccontextmanager
async def open_mcp(settings: Settings) -> AsyncIterator[McpService]:
    """Run the MCP transport: one HTTP session to the API (shared by every tool call) and the
    SDK's session manager, both closed when the server stops."""
    from meshfs_server import __version__

    api = loopback_url(settings)
    client_settings = ClientSettings(server=api)

    async with aiohttp.ClientSession(headers={"User-Agent": "meshfs-server-mcp"}) as http:

        @asynccontextmanager
        async def client_for(ctx: Context) -> AsyncIterator[MeshFSClient]:
            request = ctx.request
            header = request.headers.get("authorization", "") if request is not None else ""
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("use Authorization: Bearer <token>")
            client = MeshFSClient(api, token=token.strip(), settings=client_settings,
                                  session=http)  # fmt: skip
            async with client:
                yield client

        async def record_call(
            ctx: Context, client: MeshFSClient, tool: str, target: str | None, outcome: str
        ) -> None:
            # In process, with the caller's own address (the tools' API calls come from
            # loopback), and without one more request per tool call.
            if ctx.request is None:
                raise AuthError("no HTTP request behind this MCP call")
            await _record(ctx.request, tool, target[:4096] if target else None, outcome)

        server = build_server(client_for, record_call=record_call, version=__version__)
        manager = StreamableHTTPSessionManager(app=server, json_response=True, stateless=True)
        async with manager.run():
            yield McpService(manager)


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``: authenticate the caller, then hand over to the SDK."""

    openapi = Endpoint(
        "MCP (Model Context Protocol) over streamable HTTP: JSON-RPC requests of an agent "
        "host (tools/list, tools/call, resources/read, ...); see docs/http-api.md. Tool "
        "failures are MCP tool results with isError, not HTTP errors",
        request=None,
        response=None,
        tags=("agents",),
        errors=("payload_too_large", "unavailable"),
        # The SDK's own cap: a write tool call carries the file's whole text.
        max_body=MCP_BODY,
        extra_responses={
            202: "a JSON-RPC notification was accepted",
            400: "not a valid MCP request (JSON-RPC error body)",
            406: "the Accept header must allow application/json",
        },
    )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await actor(request)  # 401 before any MCP work for a missing or invalid token
        service: McpService | None = getattr(request.app.state, "mcp", None)
        if service is None:
            raise UnavailableError("the MCP endpoint is not running")
        await service.manager.handle_request(scope, receive, send)


@endpoint(Endpoint(
    "Record an MCP tool call in the audit log as mcp.tool.<tool>, with the caller's identity "
    "(meshfs mcp sends one per call; /mcp records its own)", request=ToolCallRecord, status=204,
    tags=("agents",), errors=("bad_request",),
))  # fmt: skip
async def record_tool_call(request: Request) -> Response:
    await actor(request)
    body = await parse_json(request, ToolCallRecord)
    if not _TOOL_NAME.fullmatch(body.tool):
        raise BadRequestError("tool must be a tool name: a-z, 0-9 and _, at most 64 characters")
    if not _OUTCOME.fullmatch(body.outcome):
        raise BadRequestError("outcome must be ok or error:<code>")
    if body.target is not None and len(body.target) > 4096:
        raise BadRequestError("target must be at most 4096 characters")
    await _record(request, body.tool, body.target, body.outcome)
    return Response(status_code=204)


async def _record(request: Request, tool: str, target: str | None, outcome: str) -> None:
    """The audit row of one tool call, as the authenticated caller of *request*."""
    from meshfs_server.policy.audit import Who

    who = await actor(request)
    identity = state.services(request).identity
    if identity is not None:  # an app built with a custom authenticate has no audit log
        await identity.audit_event(
            who.tenant_id, AUDIT_PREFIX + tool, outcome, Who.of(who, client_address(request)),
            target=target,
        )  # fmt: skip


routes: list[BaseRoute] = [
    Route("/mcp", McpEndpoint(), methods=["POST"]),
    Route("/audit/tool-calls", record_tool_call, methods=["POST"]),
]
