"""Extended attribute routes: list, read, set and remove one attribute of a node.

Values travel as raw bytes (``application/octet-stream``), names in the ``name`` query
parameter; the rules are :mod:`meshfs_server.domain.xattrs`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.errors import BadRequestError
from meshfs_common.models import Entry, XattrList
from meshfs_server.domain.xattrs import MAX_VALUE, parse_flag
from meshfs_server.http import state
from meshfs_server.http.codec import (
    IF_MATCH,
    Endpoint,
    Param,
    endpoint,
    if_match,
    query_str,
    respond,
)
from meshfs_server.http.state import actor

TAGS = ("xattrs",)
PATH_ERRORS = ("invalid_path", "not_found", "not_a_directory", "forbidden", "bad_request")
NAME = Param("name", required=True, description="the attribute's name, e.g. user.origin")
PATH = Param("path", required=True)
CHANGE_ERRORS = (
    *PATH_ERRORS, "not_permitted", "not_supported", "precondition_failed", "read_only",
    "xattr_not_found",
)  # fmt: skip


def _required(request: Request, name: str) -> str:
    value = query_str(request, name)
    if not value:
        raise BadRequestError(f"query parameter {name} is required")
    return value


@endpoint(Endpoint(
    "The user.* extended attributes of a node, with the sizes of their values",
    response=XattrList, params=(PATH,), errors=PATH_ERRORS, tags=TAGS,
))  # fmt: skip
async def list_xattrs(request: Request) -> Response:
    who = await actor(request)
    found = await state.services(request).xattrs.list_names(who, _required(request, "path"))
    return respond(found)


@endpoint(Endpoint(
    "The value of one extended attribute (user.*, or the read-only meshfs.node_id,"
    " meshfs.version_id, meshfs.content_hash)",
    response=bytes, response_media="application/octet-stream", params=(PATH, NAME),
    errors=(*PATH_ERRORS, "not_supported", "xattr_not_found"), tags=TAGS,
))  # fmt: skip
async def get_xattr(request: Request) -> Response:
    who = await actor(request)
    value = await state.services(request).xattrs.get(
        who, _required(request, "path"), _required(request, "name")
    )
    return Response(value, media_type="application/octet-stream")


@endpoint(Endpoint(
    "Set one user.* extended attribute to the body's bytes (flag: create or replace)",
    request=bytes, request_media="application/octet-stream", response=Entry,
    params=(PATH, NAME, Param("flag", description="create (must not exist) or replace (must"
                              " exist); absent: either"), IF_MATCH),
    errors=(*CHANGE_ERRORS, "already_exists", "xattr_space_full", "xattr_too_large",
            "payload_too_large"),
    tags=TAGS, max_body=2 * MAX_VALUE,
))  # fmt: skip
async def set_xattr(request: Request) -> Response:
    who = await actor(request)
    path, name = _required(request, "path"), _required(request, "name")
    flag = parse_flag(query_str(request, "flag"))
    entry = await state.services(request).xattrs.set(
        who, path, name, await request.body(), flag=flag, if_match=if_match(request)
    )
    return respond(entry)


@endpoint(Endpoint(
    "Remove one user.* extended attribute", response=Entry, params=(PATH, NAME, IF_MATCH),
    errors=CHANGE_ERRORS, tags=TAGS,
))  # fmt: skip
async def remove_xattr(request: Request) -> Response:
    who = await actor(request)
    entry = await state.services(request).xattrs.remove(
        who, _required(request, "path"), _required(request, "name"), if_match=if_match(request)
    )
    return respond(entry)


routes = [
    Route("/files/xattrs", list_xattrs, methods=["GET"]),
    Route("/files/xattr", get_xattr, methods=["GET"]),
    Route("/files/xattr", set_xattr, methods=["PUT"]),
    Route("/files/xattr", remove_xattr, methods=["DELETE"]),
]
