"""Bulk transfer routes: many small files written or read as one tar stream.

- ``POST /files/bulk?path=DIR`` writes the members of a tar archive under ``DIR``
  (``tar -C src -c . | curl --data-binary @- ...``), committed in batches; the JSON answer
  names what landed and what did not (see :mod:`meshfs_server.domain.bulk`).
- ``GET /files/bulk?path=DIR`` answers with a tar archive of the subtree at ``DIR``
  (``curl ... | tar -x``); ``POST /files/bulk/read`` with one of a list of files.

Both count per file and per byte against the tenant's rate limit
(:mod:`meshfs_server.policy.bulk_budget`), on top of the request itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.bulk import (
    BULK_MAX_FILE,
    PAX_CONTENT_HASH,
    PAX_ERROR,
    PAX_MESSAGE,
    PAX_NODE_ID,
    PAX_VERSION_ID,
    BulkReadRequest,
    BulkWriteResult,
)
from meshfs_common.errors import BadRequestError, UnsupportedMediaTypeError
from meshfs_common.tarstream import END, TarReader, member_header, padding
from meshfs_server.domain.actor import Actor
from meshfs_server.domain.bulk import BulkBudget, BulkWrites, Incoming, Unmetered
from meshfs_server.domain.bulk_read import BulkReads, Outgoing
from meshfs_server.http import state
from meshfs_server.http.codec import (
    Endpoint,
    Param,
    acted_on,
    endpoint,
    parse_json,
    query_bool,
    query_str,
    respond,
)
from meshfs_server.http.content_stream import ContentStream
from meshfs_server.services import Services

TAGS = ("bulk",)
TAR = "application/x-tar"
#: The body cap of a bulk write (the client sends far smaller batches).
BULK_BODY = 1024 * 1024 * 1024
#: Bulk reads answer in blocks of about this size, reading this many small files at once.
BLOCK = 256 * 1024
PREFETCH = 32
# curl --data-binary sends application/x-www-form-urlencoded unless told otherwise.
_ACCEPTED_MEDIA = (
    TAR, "application/octet-stream", "application/x-gtar", "application/x-www-form-urlencoded",
    "",
)  # fmt: skip
MEMBER_ERRORS = (
    "invalid_path", "forbidden", "read_only", "not_a_directory", "is_a_directory",
    "quota_exceeded", "payload_too_large", "bad_request", "not_found", "already_exists",
)  # fmt: skip

ATOMIC = Param(
    "atomic", type="boolean",
    description="all or nothing: the first member that cannot be written fails the request",
)  # fmt: skip
IF_ABSENT = Param(
    "if_absent", type="boolean",
    description="create only: a file member whose path already exists (as anything) is not"
    " written and is reported with error already_exists (with atomic=true it fails the"
    " request); checked in the transaction that writes the batch",
)  # fmt: skip
ATTRIBUTES = Param(
    "attributes", type="boolean",
    description="keep each file member's permission bits and modification time, as tar -p"
    " extracts: a file written takes the member's mode (a new file is created with it, an"
    " existing one is changed to it) and its mtime, to the nanosecond from a pax mtime record"
    " (else the header's seconds); a file whose content is already the member's gets no new"
    " version but the same mode and mtime. Without it a new file is 0644, an existing one"
    " keeps its mode and the mtime is the time of the write",
)  # fmt: skip
META = Param(
    "meta", type="boolean",
    description=f"tag members with pax keywords {PAX_NODE_ID}, {PAX_VERSION_ID},"
    f" {PAX_CONTENT_HASH} (and a path that cannot be read with {PAX_ERROR}, {PAX_MESSAGE})",
)  # fmt: skip


def budget_for(services: Services) -> BulkBudget:
    """The request's charge against the tenant's rate limit (none without accounts)."""
    if services.identity is None:
        return Unmetered()
    from meshfs_server.policy.bulk_budget import TenantBulkBudget

    return TenantBulkBudget(services.identity)


@endpoint(Endpoint(
    "Write many files in one request: a tar archive of regular files (each at most"
    f" {BULK_MAX_FILE} bytes) and directories, written under path; committed in batches,"
    " every file its own version and change event",
    request_media=TAR, response=BulkWriteResult,
    params=(Param("path", required=True, description="the directory members are written under"),
            ATOMIC, IF_ABSENT, ATTRIBUTES),
    errors=(*MEMBER_ERRORS, "unsupported_media_type"), tags=TAGS, max_body=BULK_BODY,
))  # fmt: skip
async def bulk_write(request: Request) -> Response:
    who = await state.actor(request)
    root = query_str(request, "path")
    if not root:
        raise BadRequestError("query parameter path is required (the directory to write under)")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in _ACCEPTED_MEDIA:
        raise UnsupportedMediaTypeError(f"send a tar archive ({TAR}), not {kind}")
    atomic = query_bool(request, "atomic")
    services = state.services(request)
    acted_on(request, root)
    result = await BulkWrites(services.content).write(
        who,
        root,
        _members(request.stream(), attributes=query_bool(request, "attributes")),
        atomic=atomic,
        budget=budget_for(services),
        if_absent=query_bool(request, "if_absent"),
    )
    return respond(result)


async def _members(body: AsyncIterator[bytes], *, attributes: bool) -> AsyncIterator[Incoming]:
    """The archive's members; a file's data is read only when bulk writes take its size (and
    with *attributes*, its mode and mtime are taken too)."""
    reader = TarReader(body)
    async for member in reader:
        data = None
        if member.kind == "file" and member.size <= BULK_MAX_FILE:
            data = await reader.read_data()
        incoming = Incoming(member.name, member.kind, member.size, data, member.type_name)
        if attributes and member.kind == "file":
            incoming.mode, incoming.mtime_ns = member.mode, member.mtime_ns
        yield incoming


@endpoint(Endpoint(
    "Read a subtree as one tar archive (directories and files at their head versions,"
    " named relative to path)",
    response=bytes, response_media=TAR,
    params=(Param("path", required=True), META),
    errors=("invalid_path", "not_found", "not_a_directory", "forbidden"), tags=TAGS,
))  # fmt: skip
async def bulk_read_tree(request: Request) -> Response:
    who = await state.actor(request)
    path = query_str(request, "path")
    if not path:
        raise BadRequestError("query parameter path is required")
    services = state.services(request)
    members = await BulkReads(services.store).subtree(who, path)
    return await _archive(request, services, who, members)


@endpoint(Endpoint(
    "Read a list of files as one tar archive (members named by their paths). Without meta"
    " a path that cannot be read fails the request; with meta=true (and not atomic) it is a"
    " member of its own carrying the error",
    request=BulkReadRequest, response=bytes, response_media=TAR, params=(META, ATOMIC),
    errors=("invalid_path", "not_found", "not_a_directory", "is_a_directory", "forbidden"),
    tags=TAGS, max_body=16 * 1024 * 1024,
))  # fmt: skip
async def bulk_read_files(request: Request) -> Response:
    who = await state.actor(request)
    body = await parse_json(request, BulkReadRequest)
    strict = query_bool(request, "atomic") or not query_bool(request, "meta")
    services = state.services(request)
    members = await BulkReads(services.store).files(who, body.paths, strict=strict)
    return await _archive(request, services, who, members)


async def _archive(
    request: Request, services: Services, who: Actor, members: list[Outgoing]
) -> Response:
    """The tar answer; its first member is charged before the answer starts, so a tenant over
    its rate limit gets a clean 429 (a later failure cuts the stream short, see
    :class:`~meshfs_server.http.content_stream.ContentStream`)."""
    meta = query_bool(request, "meta")
    blocks = _tar(services, who, members, meta, budget_for(services))
    try:
        first = await anext(blocks, END)
    except BaseException:
        await blocks.aclose()
        raise
    return ContentStream(
        _then(first, blocks), media_type=TAR,
        headers={"Cache-Control": "private, no-cache",
                 "X-MeshFS-Members": str(len(members))},
    )  # fmt: skip


async def _tar(
    services: Services, who: Actor, members: list[Outgoing], meta: bool, budget: BulkBudget
) -> AsyncGenerator[bytes, None]:
    """The archive, in blocks of about :data:`BLOCK` bytes; the content of the next
    :data:`PREFETCH` small files is read at once (small files' reads are latency, not bytes)."""
    out = bytearray()
    for start in range(0, len(members), PREFETCH):
        window = members[start : start + PREFETCH]
        small = [m for m in window if m.version is not None and 0 < m.size <= BULK_MAX_FILE]
        read = await asyncio.gather(*(_whole(services, who, m) for m in small))
        contents = {id(m): data for m, data in zip(small, read, strict=True)}
        for member in window:
            await budget.charge(who, files=1, nbytes=member.size)
            out += _header(member, meta)
            if member.error is None and member.kind == "file" and member.size:
                data = contents.get(id(member))
                if data is None:  # a large file: streamed
                    assert member.version is not None
                    yield bytes(out)
                    out.clear()
                    async for block in services.content.read(who.tenant_id, member.version):
                        yield block
                else:
                    out += data
                out += bytes(padding(member.size))
            if len(out) >= BLOCK:
                yield bytes(out)
                out.clear()
    out += END
    yield bytes(out)


async def _whole(services: Services, who: Actor, member: Outgoing) -> bytes:
    assert member.version is not None
    return b"".join([b async for b in services.content.read(who.tenant_id, member.version)])


def _header(member: Outgoing, meta: bool) -> bytes:
    """The member's tar header (a directory's, a file's, or a failed path's)."""
    if member.error is not None:
        return member_header(member.name, pax={
            PAX_ERROR: member.error.code, PAX_MESSAGE: member.error.message,
        })  # fmt: skip
    node, version = member.node, member.version
    mtime = node.modified_at if node is not None else 0.0
    mode = node.mode & 0o7777 if node is not None and node.mode else None
    if member.kind == "dir" or version is None:
        pax = {PAX_NODE_ID: node.node_id} if meta and node is not None else None
        # A directory its owner cannot enter could not be extracted into.
        mode = 0o755 if mode is None else mode | 0o700
        return member_header(member.name, kind="dir", mode=mode, mtime=mtime, pax=pax)
    pax = None
    if meta:
        pax = {PAX_NODE_ID: version.node_id, PAX_VERSION_ID: version.version_id,
               PAX_CONTENT_HASH: version.content_hash}  # fmt: skip
    return member_header(member.name, size=version.size, mode=mode, mtime=mtime, pax=pax)


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for block in rest:
        yield block


routes = [
    Route("/files/bulk", bulk_write, methods=["POST"]),
    Route("/files/bulk", bulk_read_tree, methods=["GET"]),
    Route("/files/bulk/read", bulk_read_files, methods=["POST"]),
]
