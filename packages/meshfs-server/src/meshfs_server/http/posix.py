"""POSIX routes: attributes (chmod, chown, utimens), symbolic links and special nodes.

The rules are :mod:`meshfs_server.domain.attributes` and
:mod:`meshfs_server.domain.special_nodes`; every answer is the node's :class:`Entry`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.models import AttributesRequest, Entry, MknodRequest, SymlinkRequest
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
    entry = await state.services(request).namespace.set_attributes(
        who, body, if_match=if_match(request)
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
    entry = await state.services(request).namespace.symlink(
        who, body.path, body.target, uid=body.uid, gid=body.gid
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
    entry = await state.services(request).namespace.mknod(
        who, body.path, body.kind, mode=body.mode, rdev=body.rdev, uid=body.uid, gid=body.gid
    )
    return respond(entry, status=201)


routes = [
    Route("/files/attributes", set_attributes, methods=["POST"]),
    Route("/files/symlink", symlink, methods=["POST"]),
    Route("/files/mknod", mknod, methods=["POST"]),
]
