"""POSIX routes: attributes (chmod, chown, utimens), symbolic links and special nodes.

The operations are :mod:`meshfs_server.domain.posix` (rules in :mod:`.attributes` and
:mod:`.special_nodes`); every answer is the node's :class:`Entry`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.models import AttributesRequest, Entry, MknodRequest, SymlinkRequest
from meshfs_server.domain import posix
from meshfs_server.http import state
from meshfs_server.http.codec import IF_MATCH, Endpoint, endpoint, if_match, parse_json, respond
from meshfs_server.http.state import actor

TAGS = ("files",)
PATH_ERRORS = ("invalid_path", "not_found", "not_a_directory", "forbidden", "read_only")
CREATE_ERRORS = (*PATH_ERRORS, "already_exists", "bad_request")


@endpoint(Endpoint(
    "Set mode, uid, gid, mtime_ns and/or atime_ns of a node in one atomic change (no new"
    " version; an attributes event with old and new values)",
    request=AttributesRequest, response=Entry, params=(IF_MATCH,),
    errors=(*PATH_ERRORS, "bad_request", "precondition_failed"), tags=TAGS,
))  # fmt: skip
async def set_attributes(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, AttributesRequest)
    found = state.services(request)
    entry = await posix.set_attributes(
        found.namespace.store, found.feed, who, body, if_match=if_match(request)
    )
    return respond(entry)


@endpoint(Endpoint(
    "Make a symbolic link (target stored verbatim, at most 4,096 bytes; never followed)",
    request=SymlinkRequest, response=Entry, errors=(*CREATE_ERRORS, "name_too_long"),
    tags=TAGS, extra_responses={201: "created"},
))  # fmt: skip
async def symlink(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, SymlinkRequest)
    found = state.services(request)
    entry = await posix.symlink(
        found.namespace.store, found.feed, who, body.path, body.target, uid=body.uid, gid=body.gid
    )
    return respond(entry, status=201)


@endpoint(Endpoint(
    "Make a FIFO, socket, character or block device node (no content; rdev for devices)",
    request=MknodRequest, response=Entry, errors=CREATE_ERRORS, tags=TAGS,
    extra_responses={201: "created"},
))  # fmt: skip
async def mknod(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, MknodRequest)
    found = state.services(request)
    entry = await posix.mknod(
        found.namespace.store, found.feed, who, body.path, body.kind, mode=body.mode,
        rdev=body.rdev, uid=body.uid, gid=body.gid,
    )  # fmt: skip
    return respond(entry, status=201)


routes = [
    Route("/files/attributes", set_attributes, methods=["POST"]),
    Route("/files/symlink", symlink, methods=["POST"]),
    Route("/files/mknod", mknod, methods=["POST"]),
]
