"""Tenant isolation matrix: for every endpoint, a second tenant naming the first tenant's paths,
node ids, version ids, upload ids, cursors and session ids gets 403/404 (or its own, empty,
data) and learns nothing; the first tenant's state is unchanged afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import httpx
from conftest import AuthHarness

from meshfs_common.hashing import chunk_hash, content_hash_of
from meshfs_server.app import all_routes

# Endpoints that take no bearer token, and streams whose tenant scoping is the same store
# query as /sync/pull (their per-tenant behaviour is covered by the feed tests).
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/auth/device/start", "/auth/device/poll",
          "/auth/refresh", "/device", "/device/decide"}  # fmt: skip
STREAMS = {"/sync/stream", "/sync/ws"}


@dataclass
class Victim:
    tenant_id: str
    session_id: str
    node_id: str
    dir_id: str
    version_id: str
    old_version_id: str
    upload_id: str
    snapshot_id: str
    secret: bytes = b"tenant A's secret"


Probe = Callable[[httpx.AsyncClient, Victim], Coroutine[Any, Any, httpx.Response]]


def _probes() -> dict[tuple[str, str], list[Probe]]:
    v = "{version_id}"
    return {
        # First: later probes put A's ids into B's own audit log (B's own input, not a leak).
        ("GET", "/audit/recent"): [lambda c, a: c.get("/audit/recent")],
        ("POST", "/auth/device/activate"): [
            lambda c, a: c.post("/auth/device/activate", json={"user_code": "BCDF-GHJK"}),
        ],
        ("GET", "/auth/whoami"): [lambda c, a: c.get("/auth/whoami")],
        ("GET", "/auth/sessions"): [lambda c, a: c.get("/auth/sessions", params={"all": "1"})],
        ("DELETE", "/auth/sessions/{session_id}"): [
            lambda c, a: c.delete(f"/auth/sessions/{a.session_id}"),
        ],
        ("POST", "/auth/agents"): [
            lambda c, a: c.post("/auth/agents", json={"name": "x", "path_prefix": "/secret"}),
        ],
        ("GET", "/plans/current"): [lambda c, a: c.get("/plans/current")],
        ("GET", "/retention/policy"): [lambda c, a: c.get("/retention/policy")],
        ("PUT", "/retention/policy"): [
            lambda c, a: c.put(
                "/retention/policy", json={"max_versions": 1, "max_days": 1, "grace_days": 1}
            ),
        ],
        ("POST", "/retention/apply"): [lambda c, a: c.post("/retention/apply")],
        ("POST", "/files/mkdir"): [lambda c, a: c.post("/files/mkdir", json={"path": "/secret"})],
        ("GET", "/files/list"): [
            lambda c, a: c.get("/files/list", params={"path": "/secret"}),
            lambda c, a: c.get("/files/list", params={"path": "/", "include_deleted": "1"}),
        ],
        ("GET", "/files/meta"): [
            lambda c, a: c.get("/files/meta", params={"path": "/secret/a.txt"}),
            lambda c, a: c.get("/files/meta", params={"node_id": a.node_id}),
            lambda c, a: c.get("/files/meta", params={"node_id": a.dir_id}),
        ],
        ("POST", "/files/rename"): [
            lambda c, a: c.post(
                "/files/rename", json={"path": "/secret/a.txt", "new_path": "/b.txt"}
            ),
        ],
        ("DELETE", "/files"): [
            lambda c, a: c.delete("/files", params={"path": "/secret", "recursive": "1"}),
        ],
        ("GET", "/files/{node_id}/versions"): [
            lambda c, a: c.get(f"/files/{a.node_id}/versions"),
        ],
        ("POST", f"/files/{{node_id}}/versions/{v}/restore"): [
            lambda c, a: c.post(f"/files/{a.node_id}/versions/{a.old_version_id}/restore"),
            lambda c, a: c.post(
                f"/files/{a.node_id}/versions/{a.old_version_id}/restore",
                json={"path": "/stolen.txt"},
            ),
        ],
        ("POST", "/files/upload/init"): [
            lambda c, a: c.post(
                "/files/upload/init",
                json={
                    "path": "/secret/a.txt",
                    "size": len(a.secret),
                    "content_hash": content_hash_of([chunk_hash(a.secret)]),
                    "chunks": [chunk_hash(a.secret)],
                },
            ),
        ],
        ("PUT", "/files/upload/part"): [
            lambda c, a: c.put(
                "/files/upload/part", params={"upload_id": a.upload_id, "index": 0}, content=b"x"
            ),
        ],
        ("POST", "/files/upload/commit"): [
            lambda c, a: c.post("/files/upload/commit", json={"upload_id": a.upload_id}),
        ],
        ("PUT", "/files/content"): [
            lambda c, a: c.put("/files/content", params={"path": "/secret/a.txt"}, content=b"x"),
        ],
        ("GET", "/files/download"): [
            lambda c, a: c.get("/files/download", params={"node_id": a.node_id}),
            lambda c, a: c.get(
                "/files/download", params={"path": "/secret/a.txt", "version_id": a.version_id}
            ),
            lambda c, a: c.get(
                "/files/download", params={"node_id": a.node_id, "version_id": a.old_version_id}
            ),
        ],
        # Presigned URLs (only with an S3 store; otherwise a 400 that says so).
        ("GET", "/files/download/direct"): [
            lambda c, a: c.get("/files/download/direct", params={"node_id": a.node_id}),
            lambda c, a: c.get(
                "/files/download/direct", params={"node_id": a.node_id, "version_id": a.version_id}
            ),
        ],
        ("GET", "/sync/pull"): [lambda c, a: c.get("/sync/pull", params={"cursor": 0})],
        ("GET", "/files/diff"): [
            lambda c, a: c.get("/files/diff", params={"node_id": a.node_id}),
            lambda c, a: c.get("/files/diff", params={"path": "/secret/a.txt"}),
        ],
        ("GET", "/files/changes"): [
            lambda c, a: c.get("/files/changes", params={"path": "/", "since_cursor": 0}),
        ],
        ("POST", "/snapshots"): [
            lambda c, a: c.post("/snapshots", json={"path": "/secret", "name": "before"}),
        ],
        ("GET", "/snapshots"): [lambda c, a: c.get("/snapshots")],
        ("GET", "/snapshots/{ref}"): [lambda c, a: c.get(f"/snapshots/{a.snapshot_id}")],
        ("GET", "/snapshots/{ref}/diff"): [
            lambda c, a: c.get(f"/snapshots/{a.snapshot_id}/diff"),
        ],
        ("POST", "/snapshots/{ref}/restore"): [
            lambda c, a: c.post(f"/snapshots/{a.snapshot_id}/restore"),
        ],
        ("DELETE", "/snapshots/{ref}"): [lambda c, a: c.delete(f"/snapshots/{a.snapshot_id}")],
        ("POST", "/audit/tool-calls"): [
            lambda c, a: c.post("/audit/tool-calls", json={"tool": "read", "target": "/secret"}),
        ],
        ("POST", "/mcp"): [
            lambda c, a: c.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            ),
        ],
        # The POSIX model and bulk transfers: A's paths are B's own; A's ids answer 404.
        ("GET", "/files/chunks"): [
            lambda c, a: c.get("/files/chunks", params={"node_id": a.node_id}),
            lambda c, a: c.get(
                "/files/chunks", params={"node_id": a.node_id, "version_id": a.version_id}
            ),
            lambda c, a: c.get("/files/chunks", params={"path": "/secret/a.txt"}),
        ],
        ("GET", "/files/statfs"): [lambda c, a: c.get("/files/statfs")],
        ("POST", "/files/attributes"): [
            lambda c, a: c.post("/files/attributes", json={"path": "/secret/a.txt", "mode": 0}),
        ],
        ("POST", "/files/symlink"): [
            lambda c, a: c.post("/files/symlink", json={"path": "/secret/l", "target": "a.txt"}),
        ],
        ("POST", "/files/mknod"): [
            lambda c, a: c.post("/files/mknod", json={"path": "/secret/p", "kind": "fifo"}),
        ],
        ("POST", "/files/link"): [
            lambda c, a: c.post(
                "/files/link", json={"path": "/secret/a.txt", "new_path": "/secret/b.txt"}
            ),
        ],
        ("POST", "/files/copy"): [
            lambda c, a: c.post(
                "/files/copy", json={"path": "/secret/a.txt", "new_path": "/copied.txt"}
            ),
        ],
        ("GET", "/files/xattrs"): [
            lambda c, a: c.get("/files/xattrs", params={"path": "/secret/a.txt"}),
        ],
        ("GET", "/files/xattr"): [
            lambda c, a: c.get(
                "/files/xattr", params={"path": "/secret/a.txt", "name": "meshfs.node_id"}
            ),
        ],
        ("PUT", "/files/xattr"): [
            lambda c, a: c.put(
                "/files/xattr", params={"path": "/secret", "name": "user.k"}, content=b"v"
            ),
        ],
        ("DELETE", "/files/xattr"): [
            lambda c, a: c.delete("/files/xattr", params={"path": "/secret", "name": "user.k"}),
        ],
        ("GET", "/files/bulk"): [
            lambda c, a: c.get("/files/bulk", params={"path": "/", "meta": "true"}),
        ],
        ("POST", "/files/bulk/read"): [
            lambda c, a: c.post(
                "/files/bulk/read", params={"meta": "true"}, json={"paths": ["/secret/a.txt"]}
            ),
        ],
        ("POST", "/files/bulk"): [lambda c, a: c.post("/files/bulk", params={"path": "/secret"})],
        # Last: with a bearer, logout ends the caller's own session whatever the body says.
        ("POST", "/auth/logout"): [
            lambda c, a: c.post("/auth/logout", json={"refresh_token": "mfr_not-theirs"}),
        ],
    }


async def victim(auth: AuthHarness) -> tuple[Victim, str]:
    tokens = await auth.login("alice")
    async with auth.client_for(tokens.access_token) as alice:
        await alice.post("/files/mkdir", json={"path": "/secret"})
        await alice.put("/files/content", params={"path": "/secret/a.txt"}, content=b"old")
        secret = Victim.secret
        done = await alice.put("/files/content", params={"path": "/secret/a.txt"}, content=secret)
        entry = done.json()["entry"]
        versions = (await alice.get(f"/files/{entry['node_id']}/versions")).json()["versions"]
        folder = (await alice.get("/files/meta", params={"path": "/secret"})).json()
        chunks = [chunk_hash(b"pending upload")]
        init = await alice.post("/files/upload/init", json={
            "path": "/secret/b.txt", "size": 14, "content_hash": content_hash_of(chunks),
            "chunks": chunks,
        })  # fmt: skip
        snap = await alice.post("/snapshots", json={"path": "/secret", "name": "before"})
    return Victim(
        tenant_id=tokens.tenant_id, session_id=tokens.session_id, node_id=entry["node_id"],
        dir_id=folder["node_id"], version_id=versions[0]["version_id"],
        old_version_id=versions[1]["version_id"], upload_id=init.json()["upload_id"],
        snapshot_id=snap.json()["snapshot_id"],
    ), tokens.access_token  # fmt: skip


async def snapshot(auth: AuthHarness, token: str) -> list[Any]:
    async with auth.client_for(token) as alice:
        listing = (await alice.get("/files/list", params={"path": "/secret"})).json()
        content = (await alice.get("/files/download", params={"path": "/secret/a.txt"})).content
        feed = (await alice.get("/sync/pull", params={"cursor": 0})).json()
        me = (await alice.get("/auth/whoami")).json()
    return [listing, content, feed, me]


def test_matrix_covers_every_authenticated_route() -> None:
    documented: set[str] = set()
    for route in all_routes():
        path = getattr(route, "path", None)
        if path is None or path in PUBLIC or path in STREAMS:
            continue
        documented.add(path)
    probed = {path for (_, path) in _probes()}
    assert documented <= probed, documented - probed


async def test_second_tenant_learns_nothing(auth: AuthHarness) -> None:
    a, token_a = await victim(auth)
    before = await snapshot(auth, token_a)
    b = await auth.login("mallory")
    assert b.tenant_id != a.tenant_id
    # Paths are B's to use in B's own namespace; ids and content are what must not leak.
    leaks = {a.node_id, a.dir_id, a.version_id, a.old_version_id, a.upload_id, a.session_id,
             a.tenant_id, a.snapshot_id, a.secret.decode()}  # fmt: skip
    async with auth.client_for(b.access_token) as mallory:
        for (method, path), probes in _probes().items():
            for probe in probes:
                reply = await probe(mallory, a)
                assert reply.status_code < 500, (method, path, reply.text)
                body = reply.text
                # Echoing back what the caller itself sent is not a leak.
                sent = unquote(str(reply.request.url)) + reply.request.content.decode("latin-1")
                for secret in leaks - {s for s in leaks if s in sent}:
                    assert secret not in body, (method, path, secret, body)
                if path in ("/files/download", "/files/upload/part", "/files/upload/commit",
                            "/files/{node_id}/versions", "/auth/sessions/{session_id}",
                            "/files/{node_id}/versions/{version_id}/restore",
                            "/snapshots/{ref}", "/snapshots/{ref}/diff",
                            "/snapshots/{ref}/restore"):  # fmt: skip
                    assert reply.status_code in (403, 404), (method, path, reply.status_code)
                if path == "/files/meta" or path == "/files/rename":
                    assert reply.status_code in (403, 404), (method, path, reply.status_code)
    # Nothing of A changed (B's own mkdir /secret etc. happened in B's namespace).
    after = await snapshot(auth, token_a)
    assert after == before
    b2 = await auth.login("mallory")  # the logout probe ended the first session
    async with auth.client_for(b2.access_token) as mallory:
        mine = (await mallory.get("/files/list", params={"path": "/"})).json()["entries"]
        audit_rows = (await mallory.get("/audit/recent", params={"limit": 1000})).json()
    assert all(e["name"] != "a.txt" for e in mine)
    assert audit_rows["entries"]
    assert all(row["user_id"] in (None, b.user_id) for row in audit_rows["entries"])
    assert json.dumps(audit_rows).find(a.tenant_id) == -1
