"""Upload planning and execution, resumable downloads, and the change feed, against a fake."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from meshfs_client_testkit import Fake, envelope

from meshfs_client import FeedReset, SourceChangedError, _download
from meshfs_client._upload import BytesSource, Uploader, plan_parts
from meshfs_common.errors import HashMismatchError, InternalError
from meshfs_common.hashing import CHUNK_SIZE, hash_bytes

NOW = "2024-01-01T00:00:00Z"


def commit_answer(path: str, size: int, created: bool = True) -> dict[str, Any]:
    entry = {"node_id": "N", "path": path, "name": path.rsplit("/", 1)[1], "kind": "file",
             "created_at": NOW, "modified_at": NOW, "size": size, "version_id": "V"}  # fmt: skip
    version = {"version_id": "V", "node_id": "N", "size": size, "content_hash": "h",
               "created_at": NOW}  # fmt: skip
    return {"entry": entry, "version": version, "created_version": created}


# --- planning ---------------------------------------------------------------------------------


def test_plan_parts_covers_missing_chunks_with_exact_offsets() -> None:
    digest = hash_bytes(b"x" * (2 * CHUNK_SIZE + 10))
    parts = plan_parts(digest, [2, 0, 2])
    assert [(p.index, p.offset, p.length) for p in parts] == [
        (0, 0, CHUNK_SIZE),
        (2, 2 * CHUNK_SIZE, 10),
    ]
    assert parts[1].chunk == digest.chunks[2]


def test_plan_parts_rejects_indexes_out_of_range() -> None:
    with pytest.raises(InternalError):
        plan_parts(hash_bytes(b"abc"), [1])


# --- uploads ----------------------------------------------------------------------------------


class UploadServer:
    """Just enough of the upload protocol to check what the client sends."""

    def __init__(self, fake: Fake, have: set[str] | None = None) -> None:
        self.have = set(have or ())
        self.parts: dict[int, bytes] = {}
        self.chunks: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.content_puts: list[bytes] = []
        fake.route("POST", "/files/upload/init", self.init)
        fake.route("PUT", "/files/upload/part", self.part)
        fake.route("POST", "/files/upload/commit", self.commit)
        fake.route("PUT", "/files/content", self.content)

    async def init(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.chunks = body["chunks"]
        missing = [i for i, c in enumerate(self.chunks) if c not in self.have]
        return web.json_response(
            {"upload_id": "UP", "chunk_size": CHUNK_SIZE, "missing": missing, "expires_at": NOW}
        )

    async def part(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/octet-stream"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            data = await request.read()
            await asyncio.sleep(0.01)
        finally:
            self.in_flight -= 1
        index = int(request.query["index"])
        if hashlib.sha256(data).hexdigest() != self.chunks[index]:
            return envelope(422, "hash_mismatch")
        self.parts[index] = data
        self.have.add(self.chunks[index])
        return web.json_response(
            {"upload_id": "UP", "index": index, "chunk": self.chunks[index], "missing": []}
        )

    async def commit(self, request: web.Request) -> web.Response:
        if any(c not in self.have for c in self.chunks):
            return envelope(409, "upload_incomplete")
        return web.json_response(commit_answer("/f", 0))

    async def content(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.content_puts.append(data)
        return web.json_response(commit_answer(request.query["path"], len(data)))


async def test_small_content_uses_one_request(fake: Fake, tmp_path: Path) -> None:
    server = UploadServer(fake)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        await client.upload("/small", b"hello")
    assert server.content_puts == [b"hello"]
    assert fake.count("POST", "/files/upload/init") == 0


async def test_only_missing_chunks_travel_in_bounded_parallel(fake: Fake, tmp_path: Path) -> None:
    data = os.urandom(5 * CHUNK_SIZE + 123)
    digest = hash_bytes(data)
    server = UploadServer(fake, have={digest.chunks[1]})
    await fake.start()
    progress: list[int] = []
    async with fake.client(tmp_path, token="t", upload_concurrency=2) as client:
        await client.upload("/big", data, progress=progress.append)
    assert sorted(server.parts) == [0, 2, 3, 4, 5]
    for index, part in server.parts.items():
        assert part == data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
    assert server.max_in_flight == 2
    assert sum(progress) == len(data)
    assert fake.count("POST", "/files/upload/commit") == 1


async def test_file_and_stream_sources_upload_the_same_bytes(fake: Fake, tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 7)
    server = UploadServer(fake)
    await fake.start()
    local = tmp_path / "src.bin"
    local.write_bytes(data)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1_000_003):
            yield data[start : start + 1_000_003]

    async with fake.client(tmp_path, token="t") as client:
        await client.upload("/from-file", local)
        from_file = dict(server.parts)
        server.parts.clear()
        server.have.clear()
        await client.upload("/from-stream", pieces())
    assert server.parts == from_file
    assert b"".join(from_file[i] for i in sorted(from_file)) == data


async def test_source_that_changed_after_hashing_is_not_committed(
    fake: Fake, tmp_path: Path
) -> None:
    UploadServer(fake)
    await fake.start()
    planned = hash_bytes(b"a" * (CHUNK_SIZE + 1))
    async with fake.client(tmp_path, token="t") as client:
        uploader = Uploader(client._t)
        with pytest.raises(SourceChangedError):
            await uploader.put_chunked(
                "/f",
                BytesSource(b"b" * (CHUNK_SIZE + 1)),
                planned,
                if_match=None,
                if_none_match=False,
            )
    assert fake.count("POST", "/files/upload/commit") == 0


async def test_direct_transfer_parts_go_to_presigned_urls(fake: Fake, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE + 10)
    digest = hash_bytes(data)
    received: dict[str, tuple[bytes, str]] = {}

    async def init(request: web.Request) -> web.Response:
        base = str(request.url.origin())
        return web.json_response(
            {
                "upload_id": "UP",
                "chunk_size": CHUNK_SIZE,
                "missing": [0, 1],
                "expires_at": NOW,
                "part_urls": {"1": f"{base}/bucket/c1"},
                "part_headers": {"1": {"x-amz-checksum-sha256": "abc"}},
            }
        )

    async def bucket(request: web.Request) -> web.Response:
        assert "Authorization" not in request.headers  # no MeshFS token leaks to the store
        received[request.path] = (await request.read(), request.headers["x-amz-checksum-sha256"])
        return web.Response()

    async def part(request: web.Request) -> web.Response:
        index = int(request.query["index"])
        received[f"part{index}"] = (await request.read(), "")
        chunk = digest.chunks[index]
        return web.json_response({"upload_id": "UP", "index": index, "chunk": chunk, "missing": []})

    async def commit(request: web.Request) -> web.Response:
        return web.json_response(commit_answer("/f", len(data)))

    fake.route("POST", "/files/upload/init", init)
    fake.route("PUT", "/bucket/c1", bucket)
    fake.route("PUT", "/files/upload/part", part)
    fake.route("POST", "/files/upload/commit", commit)
    await fake.start()
    async with fake.client(tmp_path, token="t") as client:
        await client.upload("/f", data)
    assert received["/bucket/c1"] == (data[CHUNK_SIZE:], "abc")
    assert received["part0"][0] == data[:CHUNK_SIZE]  # no URL for chunk 0: through the server


# --- downloads --------------------------------------------------------------------------------


class DownloadServer:
    """Serves one version; the first GET breaks off after ``cut`` bytes."""

    def __init__(self, fake: Fake, data: bytes, *, cut: int | None, lie: bool = False) -> None:
        self.data = data
        self.cut = cut
        self.ranges: list[str | None] = []
        self.hash = hash_bytes(b"other" if lie else data).content_hash
        fake.route("GET", "/files/download", self.get)
        fake.route("HEAD", "/files/download", self.get)

    def headers(self) -> dict[str, str]:
        return {
            "ETag": '"V1"',
            "X-MeshFS-Version-Id": "V1",
            "X-MeshFS-Content-Hash": self.hash,
            "X-MeshFS-Node-Id": "N1",
            "Accept-Ranges": "bytes",
        }

    async def get(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(headers={**self.headers(), "Content-Length": str(len(self.data))})
        wanted = request.headers.get("Range")
        self.ranges.append(wanted)
        start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted else 0
        body = self.data[start:]
        response = web.StreamResponse(status=206 if wanted else 200, headers=self.headers())
        if wanted:
            response.headers["Content-Range"] = (
                f"bytes {start}-{len(self.data) - 1}/{len(self.data)}"
            )
        response.content_length = len(body)
        await response.prepare(request)
        if self.cut is not None:
            cut, self.cut = self.cut, None
            await response.write(body[:cut])
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-body
            return response
        await response.write(body)
        await response.write_eof()
        return response


async def test_download_resumes_after_a_dropped_connection(fake: Fake, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    server = DownloadServer(fake, data, cut=1024 * 1024)
    await fake.start()
    target = tmp_path / "out.bin"
    async with fake.client(tmp_path, token="t") as client:
        info = await client.download_to("/f", target)
    assert target.read_bytes() == data
    assert info.version_id == "V1"
    assert server.ranges[0] is None
    assert server.ranges[1] is not None
    assert server.ranges[1].startswith("bytes=")
    assert int(server.ranges[1].removeprefix("bytes=").rstrip("-")) >= 1024 * 1024
    assert list(tmp_path.glob("*.meshfs-part")) == []  # noqa: ASYNC240


async def test_partial_file_from_an_earlier_run_is_resumed(fake: Fake, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    server = DownloadServer(fake, data, cut=None)
    await fake.start()
    target = tmp_path / "out.bin"
    (tmp_path / ".out.bin.V1.meshfs-part").write_bytes(data[:500_000])
    async with fake.client(tmp_path, token="t") as client:
        await client.download_to("/f", target)
    assert target.read_bytes() == data
    assert server.ranges == ["bytes=500000-"]


async def test_a_failing_local_write_surfaces_as_that_error_mid_download(
    fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A disk that fills up after the first 4 MiB batch is reported as the OSError it is, the
    # target untouched.
    data = os.urandom(3 * 4 * 1024 * 1024)
    DownloadServer(fake, data, cut=None)
    await fake.start()
    written: list[int] = []
    real_write = _download._write_and_hash

    def write_until_full(out: Any, hasher: Any, batch: list[bytes]) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(sum(len(b) for b in batch))
        real_write(out, hasher, batch)

    monkeypatch.setattr(_download, "_write_and_hash", write_until_full)
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    async with fake.client(tmp_path, token="t") as client:
        with pytest.raises(OSError) as raised:
            await client.download_to("/f", target)
    assert raised.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"keep me"
    assert len(written) == 1
    assert written[0] >= 4 * 1024 * 1024


async def test_hash_mismatch_never_replaces_the_target(fake: Fake, tmp_path: Path) -> None:
    DownloadServer(fake, b"payload", cut=None, lie=True)
    await fake.start()
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    async with fake.client(tmp_path, token="t") as client:
        with pytest.raises(HashMismatchError):
            await client.download_to("/f", target)
    assert target.read_bytes() == b"keep me"


# --- change feed ------------------------------------------------------------------------------


def event(seq: int, path: str) -> dict[str, Any]:
    return {"seq": seq, "type": "write", "node_id": "N", "kind": "file", "path": path, "at": NOW}


async def test_feed_reconnects_from_its_cursor_without_duplicates(
    fake: Fake, tmp_path: Path
) -> None:
    cursors: list[str] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        cursors.append(request.query["cursor"])
        await socket.send_str(json.dumps({"type": "hello", "cursor": 3}))
        if len(cursors) == 1:
            for seq in (1, 2):
                await socket.send_str(json.dumps({"type": "event", "event": event(seq, "/a")}))
            await socket.close()  # drop: the client must come back with cursor=2
        else:
            for seq in (2, 3):  # 2 again: a duplicate the client must drop
                await socket.send_str(json.dumps({"type": "event", "event": event(seq, "/b")}))
            await socket.send_str(json.dumps({"type": "caught_up", "cursor": 3}))
            await socket.receive()
        return socket

    fake.route("GET", "/sync/ws", ws)
    await fake.start()
    seen: list[int] = []
    async with fake.client(tmp_path, token="t") as client, client.watch(0) as feed:
        async for item in feed:
            assert not isinstance(item, FeedReset)
            seen.append(item.seq)
            if item.seq == 3:
                break
        assert feed.cursor == 3
    assert seen == [1, 2, 3]
    assert cursors == ["0", "2"]


async def test_feed_falls_back_to_pull_and_reports_reset(fake: Fake, tmp_path: Path) -> None:
    async def ws(request: web.Request) -> web.Response:
        return envelope(404, "not_found", "no websockets here")

    pages = [
        {"events": [], "cursor": 10, "reset": True},
        {"events": [event(11, "/x"), event(12, "/y")], "cursor": 12, "has_more": False},
    ]
    cursors: list[str] = []

    async def pull(request: web.Request) -> web.Response:
        cursors.append(request.query["cursor"])
        return web.json_response(pages.pop(0) if pages else {"events": [], "cursor": 12})

    fake.route("GET", "/sync/ws", ws)
    fake.route("GET", "/sync/pull", pull)
    await fake.start()
    items: list[Any] = []
    client = fake.client(tmp_path, token="t")
    async with client, client.watch(3, poll_interval=0.01) as feed:
        async for item in feed:
            items.append(item)
            if len(items) == 3:
                break
        assert feed.mode == "pull"
    assert items[0] == FeedReset(10)
    assert [i.seq for i in items[1:]] == [11, 12]
    assert cursors[:2] == ["3", "10"]
