"""Namespace routes: mkdir, list, meta, rename, delete, versions, restore."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.errors import BadRequestError
from meshfs_common.models import (
    CommitResult,
    CopyRequest,
    DeleteResult,
    Entry,
    FsStats,
    ListPage,
    MkdirRequest,
    RenameRequest,
    RestoreRequest,
    VersionPage,
)
from meshfs_server.domain.copies import copy_file
from meshfs_server.domain.exchange import exchange
from meshfs_server.domain.statfs import statfs as fs_stats
from meshfs_server.http import state
from meshfs_server.http.codec import (
    IF_MATCH,
    PATH_OR_NODE,
    Endpoint,
    Param,
    endpoint,
    if_match,
    parse_json,
    query_bool,
    query_int,
    query_str,
    respond,
)
from meshfs_server.http.state import actor

TAGS = ("files",)
PATH_ERRORS = ("invalid_path", "not_found", "not_a_directory", "forbidden")


@endpoint(Endpoint(
    "Create a directory (and its parents unless parents=false)", request=MkdirRequest,
    response=Entry, errors=(*PATH_ERRORS, "already_exists", "bad_request", "read_only"),
    tags=TAGS,
    extra_responses={201: "created"},
))  # fmt: skip
async def mkdir(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, MkdirRequest)
    entry, created = await state.services(request).namespace.mkdir(
        who, body.path, parents=body.parents, mode=body.mode, uid=body.uid, gid=body.gid
    )
    return respond(entry, status=201 if created else 200)


@endpoint(Endpoint(
    "List a directory, sorted by name, one page at a time", response=ListPage,
    params=(
        Param("path", required=True), Param("limit", type="integer"),
        Param("after", description="the previous page's next_after (or a name)"),
        Param("include_deleted", type="boolean", description="also list tombstones"),
    ),
    errors=PATH_ERRORS, tags=TAGS,
))  # fmt: skip
async def list_dir(request: Request) -> Response:
    who = await actor(request)
    page = await state.services(request).namespace.list_directory(
        who,
        query_str(request, "path") or "/",
        after=query_str(request, "after"),
        limit=query_int(request, "limit", minimum=1),
        include_deleted=query_bool(request, "include_deleted"),
    )
    return respond(page)


@endpoint(Endpoint(
    "Metadata of a file or directory by path or node id (tombstones by node id)",
    response=Entry, params=PATH_OR_NODE, errors=PATH_ERRORS, tags=TAGS,
))  # fmt: skip
async def meta(request: Request) -> Response:
    who = await actor(request)
    entry = await state.services(request).namespace.meta(
        who, path=query_str(request, "path"), node_id=query_str(request, "node_id")
    )
    return respond(entry)


@endpoint(Endpoint(
    "Move or rename atomically; with exchange, swap two existing paths atomically",
    request=RenameRequest, response=Entry, params=(IF_MATCH,),
    errors=(*PATH_ERRORS, "already_exists", "invalid_move", "is_a_directory",
            "directory_not_empty", "precondition_failed", "read_only", "bad_request"),
    tags=TAGS,
))  # fmt: skip
async def rename(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, RenameRequest)
    found = state.services(request)
    if body.exchange:
        if body.overwrite:
            raise BadRequestError("exchange swaps two existing paths; it takes no overwrite")
        entry = await exchange(
            found.namespace.store, found.feed, who, body.path, body.new_path,
            if_match=if_match(request),
        )  # fmt: skip
        return respond(entry)
    entry = await found.namespace.rename(
        who, body.path, body.new_path, overwrite=body.overwrite, if_match=if_match(request)
    )
    return respond(entry)


@endpoint(Endpoint(
    "Copy a file on the server: the new file shares the source's content (no bytes sent, no "
    "storage charged twice) and has its own history from then on",
    request=CopyRequest, response=CommitResult,
    errors=(*PATH_ERRORS, "already_exists", "is_a_directory", "not_a_file", "read_only"),
    tags=TAGS, extra_responses={201: "file created"},
))  # fmt: skip
async def copy(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, CopyRequest)
    found = state.services(request)
    result = await copy_file(
        found.namespace.store, found.feed, who, body.path, body.new_path,
        overwrite=body.overwrite,
    )  # fmt: skip
    created = result.created_version and result.version.replaces is None
    return respond(result, status=201 if created else 200)


@endpoint(Endpoint(
    "statfs: the tenant's quota, usage and node counts (a token limited to a path prefix: the "
    "quota and the counts within its prefix, never the tenant's usage)",
    response=FsStats, errors=("forbidden",), tags=TAGS,
))  # fmt: skip
async def statfs(request: Request) -> Response:
    who = await actor(request)
    found = state.services(request)
    return respond(await fs_stats(found.namespace.store, found.content.quota, who))


@endpoint(Endpoint(
    "Delete a file or directory (tombstoned; restorable)", response=DeleteResult,
    params=(Param("path", required=True), Param("recursive", type="boolean"), IF_MATCH),
    errors=(*PATH_ERRORS, "directory_not_empty", "invalid_move", "precondition_failed",
            "read_only"),
    tags=TAGS,
))  # fmt: skip
async def delete(request: Request) -> Response:
    who = await actor(request)
    path = query_str(request, "path")
    if not path:
        raise BadRequestError("query parameter path is required")
    result = await state.services(request).namespace.delete(
        who, path, recursive=query_bool(request, "recursive"), if_match=if_match(request)
    )
    return respond(result)


@endpoint(Endpoint(
    "Versions of a file, newest first", response=VersionPage,
    params=(Param("node_id", "path", required=True), Param("limit", type="integer"),
            Param("before", description="version id to page from")),
    errors=("not_found", "forbidden", "is_a_directory", "not_a_file"), tags=("versions",),
))  # fmt: skip
async def versions(request: Request) -> Response:
    who = await actor(request)
    page = await state.services(request).namespace.versions(
        who,
        request.path_params["node_id"],
        before=query_str(request, "before"),
        limit=query_int(request, "limit", minimum=1),
    )
    return respond(page)


@endpoint(Endpoint(
    "Make a version the head again (a new version); brings back a deleted file",
    request=RestoreRequest, response=CommitResult,
    params=(Param("node_id", "path", required=True), Param("version_id", "path", required=True)),
    errors=("not_found", "already_exists", "is_a_directory", "not_a_file", "forbidden",
            "read_only"),
    tags=("versions",),
))  # fmt: skip
async def restore(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, RestoreRequest, optional=True)
    result = await state.services(request).namespace.restore(
        who, request.path_params["node_id"], request.path_params["version_id"], path=body.path
    )
    return respond(result)


routes = [
    Route("/files/mkdir", mkdir, methods=["POST"]),
    Route("/files/list", list_dir, methods=["GET"]),
    Route("/files/meta", meta, methods=["GET"]),
    Route("/files/rename", rename, methods=["POST"]),
    Route("/files/copy", copy, methods=["POST"]),
    Route("/files/statfs", statfs, methods=["GET"]),
    Route("/files", delete, methods=["DELETE"]),
    Route("/files/{node_id}/versions", versions, methods=["GET"]),
    Route("/files/{node_id}/versions/{version_id}/restore", restore, methods=["POST"]),
]
