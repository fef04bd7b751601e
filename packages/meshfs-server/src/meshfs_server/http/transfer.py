"""Content routes: chunked uploads, one-shot writes, and downloads with Range and ETag."""

from __future__ import annotations

from email.utils import formatdate

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshfs_common.errors import BadRequestError
from meshfs_common.hashing import CHUNK_SIZE
from meshfs_common.models import (
    CommitResult,
    DirectDownload,
    UploadCommitRequest,
    UploadInitRequest,
    UploadInitResponse,
    UploadPartResponse,
    VersionChunks,
)
from meshfs_server.domain.content import parse_range
from meshfs_server.http import state
from meshfs_server.http.codec import (
    CHUNK_LIST_BODY,
    IF_MATCH,
    IF_NONE_MATCH,
    PART_BODY,
    PATH_OR_NODE,
    Endpoint,
    Param,
    acted_on,
    endpoint,
    if_match,
    if_none_match_any,
    parse_json,
    query_int,
    query_str,
    respond,
)
from meshfs_server.http.content_stream import ContentStream
from meshfs_server.http.state import actor

TAGS = ("content",)
WRITE_ERRORS = (
    "invalid_path", "not_a_directory", "is_a_directory", "already_exists",
    "precondition_failed", "payload_too_large", "quota_exceeded", "read_only", "forbidden",
    "not_a_file",
)  # fmt: skip


def _created(result: CommitResult) -> int:
    return 201 if result.created_version and result.version.replaces is None else 200


@endpoint(Endpoint(
    "Begin or resume a chunked upload; answers with the chunks still needed",
    request=UploadInitRequest, response=UploadInitResponse, params=(IF_MATCH, IF_NONE_MATCH),
    errors=(*WRITE_ERRORS, "bad_request", "not_found"), tags=TAGS, max_body=CHUNK_LIST_BODY,
))  # fmt: skip
async def upload_init(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, UploadInitRequest)
    services = state.services(request)
    # With direct transfers the answer also carries presigned PUT URLs for missing chunks.
    uploads = services.direct or services.content
    answer = await uploads.init_upload(
        who, body, if_match=if_match(request), if_none_match=if_none_match_any(request)
    )
    return respond(answer)


@endpoint(Endpoint(
    "Send one chunk of an upload as raw bytes", request_media="application/octet-stream",
    response=UploadPartResponse,
    params=(Param("upload_id", required=True), Param("index", type="integer", required=True)),
    errors=("not_found", "hash_mismatch", "payload_too_large", "bad_request", "forbidden"),
    tags=TAGS, max_body=PART_BODY,
))  # fmt: skip
async def upload_part(request: Request) -> Response:
    who = await actor(request)
    upload_id = query_str(request, "upload_id")
    index = query_int(request, "index")
    if not upload_id or index is None:
        raise BadRequestError("query parameters upload_id and index are required")
    answer = await state.services(request).content.put_part(who, upload_id, index, request.stream())
    return respond(answer)


@endpoint(Endpoint(
    "Commit a complete upload as the file's new head version", request=UploadCommitRequest,
    response=CommitResult, params=(IF_MATCH, IF_NONE_MATCH),
    errors=(*WRITE_ERRORS, "not_found", "upload_incomplete", "hash_mismatch"), tags=TAGS,
    extra_responses={201: "file created"},
))  # fmt: skip
async def upload_commit(request: Request) -> Response:
    who = await actor(request)
    body = await parse_json(request, UploadCommitRequest)
    services = state.services(request)
    # With direct transfers, chunks put straight into the store are verified first.
    uploads = services.direct or services.content
    result = await uploads.commit_upload(
        who, body.upload_id, if_match=if_match(request), if_none_match=if_none_match_any(request)
    )
    acted_on(request, result.entry.path, upload_id=body.upload_id)
    return respond(result, status=_created(result))


@endpoint(Endpoint(
    "Write a whole file in one request (streamed; creates parent directories)",
    request_media="application/octet-stream", response=CommitResult,
    params=(
        Param("path", required=True), IF_MATCH, IF_NONE_MATCH,
        Param("mode", type="integer", description="permission bits of a new file (0..4095)"),
        Param("mtime_ns", type="integer",
              description="the file's mtime with the new version, nanoseconds since the epoch"),
    ),
    errors=(*WRITE_ERRORS, "bad_request"),
    tags=TAGS, extra_responses={201: "file created"}, max_body=None,
))  # fmt: skip
async def put_content(request: Request) -> Response:
    who = await actor(request)
    path = query_str(request, "path")
    if not path:
        raise BadRequestError("query parameter path is required")
    result = await state.services(request).content.write(
        who, path, request.stream(), if_match=if_match(request),
        if_none_match=if_none_match_any(request), mode=query_int(request, "mode"),
        mtime_ns=query_int(request, "mtime_ns"),
    )  # fmt: skip
    return respond(result, status=_created(result))


@endpoint(Endpoint(
    "Download a file or one of its versions (Range, ETag, If-None-Match)",
    response=bytes, response_media="application/octet-stream",
    params=(*PATH_OR_NODE, Param("version_id"), Param("Range", "header"),
            Param("If-None-Match", "header")),
    errors=("not_found", "is_a_directory", "not_a_file", "range_not_satisfiable", "forbidden",
            "bad_request"),
    tags=TAGS,
    extra_responses={206: "partial content", 304: "not modified"},
))  # fmt: skip
async def download(request: Request) -> Response:
    who = await actor(request)
    services = state.services(request)
    node, version = await services.namespace.version_for_read(
        who,
        path=query_str(request, "path"),
        node_id=query_str(request, "node_id"),
        version_id=query_str(request, "version_id"),
    )
    etag = f'"{version.version_id}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Last-Modified": formatdate(version.created_at, usegmt=True),
        "X-MeshFS-Node-Id": node.node_id,
        "X-MeshFS-Version-Id": version.version_id,
        "X-MeshFS-Content-Hash": version.content_hash,
        "Cache-Control": "private, no-cache",
    }
    wanted = request.headers.get("if-none-match")
    if wanted is not None and (wanted.strip() == "*" or etag in _etags(wanted)):
        return Response(status_code=304, headers=headers)
    byte_range = None
    if version.size > 0 and _range_applies(request, etag, version.created_at):
        byte_range = parse_range(request.headers.get("range"), version.size)
    status = 200
    length = version.size
    if byte_range is not None:
        status = 206
        length = byte_range.end - byte_range.start
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end - 1}/{version.size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    # Opened before the answer starts: a store that cannot serve it is a clean 503.
    body = await services.content.open_read(who.tenant_id, version, byte_range)
    return ContentStream(
        body, status_code=status, headers=headers, media_type="application/octet-stream"
    )


@endpoint(Endpoint(
    "Presigned URLs to download a file's chunks straight from the object store"
    " (servers with direct transfers only)",
    response=DirectDownload, params=(*PATH_OR_NODE, Param("version_id")),
    errors=("not_found", "is_a_directory", "not_a_file", "forbidden", "bad_request"), tags=TAGS,
))  # fmt: skip
async def download_direct(request: Request) -> Response:
    who = await actor(request)
    services = state.services(request)
    if services.direct is None:
        raise BadRequestError("direct transfers are not enabled on this server")
    _node, version = await services.namespace.version_for_read(
        who,
        path=query_str(request, "path"),
        node_id=query_str(request, "node_id"),
        version_id=query_str(request, "version_id"),
    )
    return respond(await services.direct.download(who.tenant_id, version))


@endpoint(Endpoint(
    "The chunk list of a file's head version (or of version_id): what a partial write"
    " (upload/init with base_version) is based on",
    response=VersionChunks, params=(*PATH_OR_NODE, Param("version_id")),
    errors=("not_found", "is_a_directory", "not_a_file", "forbidden", "bad_request"), tags=TAGS,
))  # fmt: skip
async def version_chunks(request: Request) -> Response:
    who = await actor(request)
    _node, version = await state.services(request).namespace.version_for_read(
        who,
        path=query_str(request, "path"),
        node_id=query_str(request, "node_id"),
        version_id=query_str(request, "version_id"),
    )
    return respond(
        VersionChunks(
            node_id=version.node_id,
            version_id=version.version_id,
            size=version.size,
            content_hash=version.content_hash,
            chunk_size=CHUNK_SIZE,
            chunks=list(version.chunks),
        )
    )


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",")}


def _range_applies(request: Request, etag: str, created_at: float) -> bool:
    """``If-Range``: serve the range only if the representation is unchanged."""
    condition = request.headers.get("if-range")
    if condition is None:
        return True
    return condition.strip() in (etag, formatdate(created_at, usegmt=True))


routes = [
    Route("/files/upload/init", upload_init, methods=["POST"]),
    Route("/files/upload/part", upload_part, methods=["PUT"]),
    Route("/files/upload/commit", upload_commit, methods=["POST"]),
    Route("/files/content", put_content, methods=["PUT"]),
    Route("/files/download", download, methods=["GET", "HEAD"]),
    Route("/files/download/direct", download_direct, methods=["GET"]),
    Route("/files/chunks", version_chunks, methods=["GET"]),
]
