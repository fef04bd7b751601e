"""The MCP server: the tools of :mod:`._tools` and files as ``meshfs://`` resources, on the
SDK's low-level :class:`mcp.server.Server`, for any transport.

Where the tools act is decided per call by a *client_for* callable: over stdio it hands out the
one client of the process; over HTTP it builds one that carries the caller's own token. Every
call is recorded in the server's audit log (``mcp.tool.<name>``) with its outcome.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote, unquote

import mcp_types as types
import msgspec
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from meshfs_client._client import MeshFSClient
from meshfs_client.mcp import _text
from meshfs_client.mcp._schemas import object_schema
from meshfs_client.mcp._tools import MAX_BINARY_BYTES, MAX_TEXT_BYTES, TOOLS, Reply, ToolError
from meshfs_common import paths
from meshfs_common.errors import BadRequestError, MeshFSError, PayloadTooLargeError

log = logging.getLogger("meshfs_client.mcp")

Context = ServerRequestContext[Any, Any]
ClientFor = Callable[[Context], AbstractAsyncContextManager[MeshFSClient]]
"""Opens the client a request acts through (and closes it, if it owns it, afterwards)."""
RecordCall = Callable[[Context, MeshFSClient, str, str | None, str], Awaitable[None]]
"""Records one tool call in the audit log: ``(ctx, client, tool, target, outcome)``."""

URI_SCHEME = "meshfs://"
RESOURCE_PAGE = 200
INSTRUCTIONS = (
    "Files in MeshFS, a versioned filesystem shared with people. Paths are absolute (/proj/a.md)."
    " Every write is a new version: versions lists them, diff compares them, restore undoes"
    " a change. Read before you edit; edit replaces exact, unique text."
)


def file_uri(path: str) -> str:
    """``/proj/a b.md`` -> ``meshfs:///proj/a%20b.md``."""
    return URI_SCHEME + quote(paths.normalise(path))


def uri_path(uri: str) -> str:
    """The MeshFS path a ``meshfs://`` URI names (``BadRequestError`` for any other URI)."""
    if not uri.startswith(URI_SCHEME):
        raise BadRequestError(f"not a MeshFS resource: {uri} (expected meshfs:///path)")
    return paths.normalise("/" + unquote(uri[len(URI_SCHEME) :]).lstrip("/"))


def tool_list() -> list[types.Tool]:
    """The tools as MCP lists them: schemas and annotations."""
    return [
        types.Tool(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            input_schema=object_schema(spec.args),
            output_schema=object_schema(spec.output),
            annotations=types.ToolAnnotations(
                title=spec.title,
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive,
                idempotent_hint=spec.idempotent,
                open_world_hint=False,
            ),
        )
        for spec in TOOLS
    ]


def _rpc_code(exc: MeshFSError) -> int:
    return INTERNAL_ERROR if exc.status >= 500 else INVALID_PARAMS


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)],
                                is_error=True)  # fmt: skip


def _success(reply: Reply, path: str | None) -> types.CallToolResult:
    text = reply.text if reply.text is not None else msgspec.json.encode(reply.output).decode()
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=text)]
    if reply.blob is not None and path is not None:
        content.append(
            types.EmbeddedResource(
                type="resource",
                resource=types.BlobResourceContents(
                    uri=file_uri(path),
                    mime_type=reply.mime_type,
                    blob=base64.b64encode(reply.blob).decode("ascii"),
                ),
            )
        )
    structured: dict[str, Any] = msgspec.to_builtins(reply.output)
    return types.CallToolResult(content=content, structured_content=structured)


async def record_through_api(
    ctx: Context, client: MeshFSClient, tool: str, target: str | None, outcome: str
) -> None:
    """The default :data:`RecordCall`: ``POST /audit/tool-calls`` with the client's token."""
    await client.record_tool_call(tool, target=target, outcome=outcome)


def build_server(
    client_for: ClientFor, *, record_call: RecordCall = record_through_api, version: str = ""
) -> Server[Any]:
    """The MCP server; *client_for* opens the client each request acts through and
    *record_call* audits each tool call."""
    specs = {spec.name: spec for spec in TOOLS}
    listed = tool_list()

    async def _audit(
        ctx: Context, client: MeshFSClient, tool: str, target: str | None, outcome: str
    ) -> None:
        try:
            await record_call(ctx, client, tool, target, outcome)
        except MeshFSError as exc:
            # The call itself is done (and a mutation is audited by the server as it happens);
            # a lost record must not turn its answer into a failure.
            log.warning("could not record the %s tool call in the audit log: %s", tool, exc)

    async def list_tools(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> types.CallToolResult:
        spec = specs.get(params.name)
        if spec is None:
            return _failure(f"unknown tool {params.name!r}; the tools are {', '.join(specs)}")
        raw: Mapping[str, Any] = params.arguments or {}
        target = raw.get("path") if isinstance(raw.get("path"), str) else None
        async with client_for(ctx) as client:
            try:
                args = msgspec.convert(raw, spec.args)
                reply = await spec.run(client, args)
            except msgspec.ValidationError as exc:
                await _audit(ctx, client, spec.name, target, "error:bad_request")
                return _failure(f"bad_request: invalid arguments for {spec.name}: {exc}")
            except ToolError as exc:
                await _audit(ctx, client, spec.name, target, "error:refused")
                return _failure(str(exc))
            except MeshFSError as exc:
                await _audit(ctx, client, spec.name, target, f"error:{exc.code}")
                return _failure(f"{exc.code}: {exc.message}")
            await _audit(ctx, client, spec.name, target, "ok")
        return _success(reply, getattr(args, "path", None))

    async def list_templates(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        template = types.ResourceTemplate(
            name="file",
            title="A MeshFS file",
            uri_template=URI_SCHEME + "{+path}",
            description="The head version of a file, e.g. meshfs:///proj/notes.md",
        )
        return types.ListResourceTemplatesResult(resource_templates=[template])

    async def list_resources(
        ctx: Context, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        # The files at the top of what the token may see, a page at a time; the whole tree
        # would be far too many (the template names every file; list, tree, search find them).
        try:
            async with client_for(ctx) as client:
                top = (await client.whoami()).path_prefix
                page = await client.list_page(
                    top, limit=RESOURCE_PAGE, after=params.cursor if params else None
                )
        except MeshFSError as exc:
            raise MCPError(_rpc_code(exc), f"{exc.code}: {exc.message}") from None
        resources = [
            types.Resource(
                name=entry.name,
                uri=file_uri(entry.path),
                mime_type=_text.mime_type(entry.path, binary=False),
                size=entry.size,
            )
            for entry in page.entries
            if entry.kind == "file"
        ]
        cursor = page.next_after if page.has_more else None
        return types.ListResourcesResult(resources=resources, next_cursor=cursor)

    async def read_resource(
        ctx: Context, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        try:
            return await _read_resource(ctx, str(params.uri))
        except MeshFSError as exc:
            # Resource reads have no "tool error": a JSON-RPC error is the protocol's answer.
            raise MCPError(_rpc_code(exc), f"{exc.code}: {exc.message}") from None

    async def _read_resource(ctx: Context, uri: str) -> types.ReadResourceResult:
        path = uri_path(uri)
        async with client_for(ctx) as client:
            entry = await client.meta(path)
            if entry.size > MAX_TEXT_BYTES:
                raise PayloadTooLargeError(f"{path} is {entry.size} bytes; too large to attach")
            data = await client.read_bytes(entry.path)
        text = _text.decode_text(data)
        uri = file_uri(entry.path)
        contents: list[types.TextResourceContents | types.BlobResourceContents]
        if text is not None:
            mime = _text.mime_type(entry.path, binary=False)
            contents = [types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
        else:
            if len(data) > MAX_BINARY_BYTES:
                raise PayloadTooLargeError(f"{path} is a binary file of {len(data)} bytes")
            mime = _text.mime_type(entry.path, binary=True)
            blob = base64.b64encode(data).decode("ascii")
            contents = [types.BlobResourceContents(uri=uri, mime_type=mime, blob=blob)]
        return types.ReadResourceResult(contents=contents)

    return Server(
        "meshfs",
        version=version,
        title="MeshFS",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )
