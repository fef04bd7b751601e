"""History routes: a file's diff between versions, and what changed under a path."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.errors import BadRequestError
from meshfs_common.models import ChangeSummary, FileDiff
from meshfs_server.http import state
from meshfs_server.http.codec import (
    PATH_OR_NODE,
    Endpoint,
    Param,
    endpoint,
    query_int,
    query_str,
    respond,
)
from meshfs_server.http.state import actor

TAGS = ("history",)


def query_time(request: Request, name: str) -> float | None:
    """A point in time: epoch seconds, or an RFC 3339 / ISO 8601 timestamp (UTC if no zone)."""
    raw = query_str(request, name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            raise BadRequestError(
                f"query parameter {name} must be epoch seconds or an ISO 8601 time"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if not math.isfinite(value):
        raise BadRequestError(f"query parameter {name} must be a finite number")
    return value


@endpoint(Endpoint(
    "Unified diff between two versions of a file (binary or large content: a summary)",
    response=FileDiff,
    params=(
        *PATH_OR_NODE,
        Param("v1", description="old version id (default: the version before v2)"),
        Param("v2", description="new version id (default: the head)"),
    ),
    errors=("bad_request", "invalid_path", "not_found", "not_a_directory", "is_a_directory",
            "forbidden"),
    tags=TAGS,
))  # fmt: skip
async def diff(request: Request) -> Response:
    who = await actor(request)
    result = await state.services(request).history.diff(
        who,
        path=query_str(request, "path"),
        node_id=query_str(request, "node_id"),
        v1=query_str(request, "v1") or None,
        v2=query_str(request, "v2") or None,
    )
    return respond(result)


@endpoint(Endpoint(
    "What changed under a path since a cursor or a time, one entry per file",
    response=ChangeSummary,
    params=(
        Param("path", description="subtree (default: all you may see - / or the token's prefix)"),
        Param("since_cursor", type="integer", description="changes after this feed cursor"),
        Param("since_time", description="changes since this time (epoch seconds or ISO 8601)"),
    ),
    errors=("bad_request", "invalid_path", "forbidden"),
    tags=TAGS,
))  # fmt: skip
async def changes(request: Request) -> Response:
    who = await actor(request)
    summary = await state.services(request).history.changes(
        who,
        query_str(request, "path") or None,
        since_cursor=query_int(request, "since_cursor"),
        since_time=query_time(request, "since_time"),
    )
    return respond(summary)


routes = [
    Route("/files/diff", diff, methods=["GET"]),
    Route("/files/changes", changes, methods=["GET"]),
]
