"""The hard link route: ``POST /files/link`` gives a node another name (see
:mod:`meshfs_server.domain.links` for the rules)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.models import Entry, LinkRequest
from meshfs_server.http import state
from meshfs_server.http.codec import Endpoint, endpoint, parse_json, respond
from meshfs_server.http.state import actor


@endpoint(Endpoint(
    "Give a node another name (a hard link; any kind but a directory): both names are one"
    " node, with one content, history and set of attributes", request=LinkRequest,
    response=Entry, status=201,
    errors=("invalid_path", "not_found", "not_a_directory", "forbidden", "read_only",
            "already_exists", "not_permitted"),
    tags=("files",),
))  # fmt: skip
async def link(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, LinkRequest)
    entry = await state.services(request).namespace.link(who, body.path, body.new_path)
    return respond(entry, status=201)


routes = [Route("/files/link", link, methods=["POST"])]
