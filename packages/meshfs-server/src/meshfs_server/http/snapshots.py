"""Snapshot routes: create, list, show, diff with now, restore, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.models import (
    Snapshot,
    SnapshotCreateRequest,
    SnapshotDiff,
    SnapshotList,
    SnapshotRestoreResult,
)
from meshfs_server.http import state
from meshfs_server.http.codec import (
    Endpoint,
    Param,
    endpoint,
    parse_json,
    query_str,
    respond,
)
from meshfs_server.http.state import actor

TAGS = ("snapshots",)
REF = Param("ref", "path", required=True, description="snapshot id or name")


@endpoint(Endpoint(
    "Name the current state of a subtree (needs write access to it)",
    request=SnapshotCreateRequest, response=Snapshot, status=201,
    errors=("bad_request", "invalid_path", "not_found", "not_a_directory", "already_exists",
            "forbidden", "read_only"),
    tags=TAGS,
))  # fmt: skip
async def create(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, SnapshotCreateRequest)
    snapshot = await state.services(request).snapshots.create(who, body.path, body.name)
    return respond(snapshot, status=201)


@endpoint(Endpoint(
    "Snapshots of subtrees at or below a path, newest first", response=SnapshotList,
    params=(Param("path", description="only snapshots at or below it (default: all you see)"),),
    errors=("invalid_path", "forbidden"), tags=TAGS,
))  # fmt: skip
async def list_snapshots(request: Request) -> Response:
    who = await actor(request)
    page = await state.services(request).snapshots.list_snapshots(who, query_str(request, "path"))
    return respond(page)


@endpoint(Endpoint(
    "One snapshot", response=Snapshot, params=(REF,),
    errors=("bad_request", "not_found", "forbidden"),
    tags=TAGS,
))  # fmt: skip
async def show(request: Request) -> Response:
    who = await actor(request)
    snapshot = await state.services(request).snapshots.get(who, request.path_params["ref"])
    return respond(snapshot)


@endpoint(Endpoint(
    "How the subtree differs now from the snapshot, one entry per file", response=SnapshotDiff,
    params=(REF,),
    errors=("bad_request", "not_found", "forbidden", "invalid_path", "not_a_directory"),
    tags=TAGS,
))  # fmt: skip
async def diff(request: Request) -> Response:
    who = await actor(request)
    result = await state.services(request).snapshots.diff(who, request.path_params["ref"])
    return respond(result)


@endpoint(Endpoint(
    "Restore the subtree to the snapshot in one atomic commit (undo: restore the returned "
    "'undo' snapshot)",
    response=SnapshotRestoreResult, params=(REF,),
    errors=("bad_request", "not_found", "forbidden", "read_only", "already_exists",
            "not_a_directory", "invalid_path"),
    tags=TAGS,
))  # fmt: skip
async def restore(request: Request) -> Response:
    who = await actor(request)
    result = await state.services(request).snapshots.restore(who, request.path_params["ref"])
    return respond(result)


@endpoint(Endpoint(
    "Delete a snapshot (history stays; retention may prune what only it kept)",
    response=Snapshot, params=(REF,),
    errors=("bad_request", "not_found", "forbidden", "read_only"), tags=TAGS,
))  # fmt: skip
async def delete(request: Request) -> Response:
    who = await actor(request)
    snapshot = await state.services(request).snapshots.delete(who, request.path_params["ref"])
    return respond(snapshot)


routes = [
    Route("/snapshots", create, methods=["POST"]),
    Route("/snapshots", list_snapshots, methods=["GET"]),
    Route("/snapshots/{ref}", show, methods=["GET"]),
    Route("/snapshots/{ref}", delete, methods=["DELETE"]),
    Route("/snapshots/{ref}/diff", diff, methods=["GET"]),
    Route("/snapshots/{ref}/restore", restore, methods=["POST"]),
]
