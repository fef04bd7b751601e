"""The OpenAPI document lists every status each operation can answer.

Two checks. The route table is walked and every operation is exercised through the real app
(real identity, real storage) with what careless and hostile clients send: no token, a
forged one, a reader's and a read-only agent's, junk and extreme values in every parameter
and header it declares, malformed, mistyped and oversized bodies, ids that exist and ids
that do not. Every status seen must be one the operation documents (and none is a 5xx). And
the errors that the layers every request passes through raise (authentication, JSON
parsing, integer and boolean parameters, body caps, rate limits, an unavailable backend) are
documented on every operation they apply to, whether or not a probe happened to reach them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness
from meshfs_server_backends import STARTUP_SECONDS

from meshfs_common.errors import ERROR_TABLE
from meshfs_common.hashing import chunk_hash, content_hash_of
from meshfs_common.ids import new_id
from meshfs_server.app import all_routes, create_app
from meshfs_server.auth.ratelimit import RateLimiter
from meshfs_server.auth.service import approve_for_account
from meshfs_server.http.codec import Endpoint
from meshfs_server.http.openapi import WEBSOCKET_ERRORS, build_document, error_codes
from meshfs_server.settings import Settings

#: Never exercised with a valid token: an endless event stream (its refusals are probed).
ENDLESS = {("get", "/sync/stream")}
#: Operations no probe completes: direct transfers are off on the test backends, the
#: approval page's forms need a password sign-in (tests/live/test_identity_page.py drives them).
NEEDS_MORE_THAN_A_PROBE = {
    *ENDLESS,
    ("get", "/files/download/direct"),
    ("post", "/device"),
    ("post", "/device/decide"),
}
REFUSED_CURSORS = {"x", "-1", "99999999999999999999999", "1e3", "\u00b2", "%00"}
#: Values no well-behaved client sends, for any parameter.
JUNK = ["", "x", "-1", "0", "1", "99999999999999999999999", "1e3", "\u00b2", "%00", " 5"]
PATHS = ["/", "/f.txt", "/d", "/d/g.txt", "/missing/x", "relative", "/d/../x", "/a\x00b"]


@dataclass
class World:
    """The app, and a tenant with a file and a directory in it."""

    client: httpx.AsyncClient
    harness: AuthHarness
    ids: dict[str, list[str]] = field(default_factory=dict)

    async def tokens(self) -> tuple[str, str, str]:
        """Fresh owner, reader and read-only agent tokens (a probe may sign one out or revoke
        it); the agent token's session is also a revocable id for the probes."""
        owner = (await self.harness.login("alice")).access_token
        reader = (await self.harness.login("rita", tenant="alice", role="reader")).access_token
        async with self.harness.client_for(owner) as alice:
            agent = await alice.post(
                "/auth/agents", json={"name": "ro", "path_prefix": "/d", "access": "read"}
            )
            self.ids.update(await populate(self.harness, alice))
        self.ids["session_id"] = [agent.json()["session_id"], new_id()]
        return owner, reader, agent.json()["token"]


@pytest.fixture
async def world(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path / "data", gc_grace_seconds=0, rate_limit_per_minute=10**6, **backend
    )
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as c:
            services = app.state.services
            # Thousands of probes from one address: the sign-in limit would answer them all 429.
            services.identity.limits.auth_addresses = RateLimiter(10**6, 60.0)
            yield World(c, AuthHarness(app, transport, c, services, settings))


async def put_file(alice: httpx.AsyncClient, path: str, data: bytes) -> dict[str, Any]:
    """Write *path*, first removing whatever an earlier probe left there."""
    reply = await alice.put("/files/content", params={"path": path}, content=data)
    if not reply.is_success:
        await alice.delete("/files", params={"path": path, "recursive": "true"})
        reply = await alice.put("/files/content", params={"path": path}, content=data)
    assert reply.is_success, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def populate(harness: AuthHarness, alice: httpx.AsyncClient) -> dict[str, list[str]]:
    """/f.txt (two versions), /d/g.txt, a snapshot, a complete upload, device codes (one
    approved, one pending), a refresh token: what the probes name."""
    if (await alice.post("/files/mkdir", json={"path": "/d"})).status_code == 409:
        await alice.delete("/files", params={"path": "/d"})
        await alice.post("/files/mkdir", json={"path": "/d"})
    first = await put_file(alice, "/f.txt", b"1")
    second = await put_file(alice, "/f.txt", b"22")
    await put_file(alice, "/d/g.txt", b"g")
    directory = (await alice.get("/files/meta", params={"path": "/d"})).json()
    name = f"snap-{new_id()}"
    snapshot = await alice.post("/snapshots", json={"name": name, "path": "/"})
    assert snapshot.status_code == 201, snapshot.text
    upload = await alice.post("/files/upload/init", json=upload_body(f"/up-{new_id()}"))
    assert upload.status_code == 200, upload.text
    upload_id = upload.json()["upload_id"]
    part = await alice.put(
        "/files/upload/part", params={"upload_id": upload_id, "index": "0"}, content=PROBE_DATA
    )
    assert part.status_code == 200, part.text
    approved = await harness.client.post("/auth/device/start", json={"client_name": "probe"})
    pending = await harness.client.post("/auth/device/start", json={"client_name": "probe"})
    async with harness.services.identity.db.write() as conn:
        await approve_for_account(
            conn, approved.json()["user_code"], "alice", None, "owner", approve=True,
            now=time.time(), via="test",
        )  # fmt: skip
    fresh = await harness.login("alice")
    return {
        "node_id": [first["entry"]["node_id"], directory["node_id"], new_id(), "junk"],
        "version_id": [
            first["version"]["version_id"],
            second["version"]["version_id"],
            new_id(),
            "junk",
        ],
        "ref": [snapshot.json()["snapshot_id"], name, new_id(), "no-such-snapshot"],
        "upload_id": [upload_id, new_id(), "junk"],
        "device_code": [approved.json()["device_code"], "junk"],
        "user_code": [pending.json()["user_code"], "ABCD-EFGH"],
        "refresh_token": [fresh.refresh_token or "", "junk"],
    }


PROBE_DATA = b"probe data"


def upload_body(path: str) -> dict[str, Any]:
    chunks = [chunk_hash(PROBE_DATA)]
    return {"path": path, "size": len(PROBE_DATA), "chunks": chunks,
            "content_hash": content_hash_of(chunks)}  # fmt: skip


def described() -> Iterator[tuple[str, str, Endpoint]]:
    for route in all_routes():
        spec: Endpoint | None = getattr(getattr(route, "endpoint", None), "openapi", None)
        if spec is None:
            continue
        for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD"}):
            yield method.lower(), getattr(route, "path", ""), spec


def values_for(name: str, kind: str, ids: dict[str, list[str]]) -> list[str]:
    if name in ids:
        return ids[name]
    if "path" in name:
        return PATHS
    if name == "name":  # an extended attribute: readable, then settable and removable
        return ["meshfs.node_id", "user.probe", *JUNK]
    if name in ("v1", "v2", "before"):
        return [*ids["version_id"][:2], new_id(), "junk"]
    if kind == "boolean":
        return ["true", "false", "maybe"]
    return JUNK


HEADERS: dict[str, list[str]] = {
    "If-Match": ["junk", '"W/x"'],
    "If-None-Match": ["*", '"nope"'],
    "Range": ["bytes=0-0", "bytes=9-1", "bytes=99-", "junk", "bytes=0-0,1-1"],
    "Last-Event-ID": ["x", "99999999999999999999999", "-1"],
}


def json_bodies(ids: dict[str, list[str]]) -> list[Any]:
    """JSON bodies for any operation: right shapes with wrong values, and wrong shapes."""
    bodies: list[Any] = [{}, [], 5, {"path": 5}, {"path": None}]
    bodies += [{"path": p} for p in PATHS]
    bodies += [{"path": "/f.txt", "new_path": p} for p in ("/d", "/d/f.txt", "/f.txt", "/x/y")]
    bodies += [{"path": "/d", "new_path": "/d/sub"}, {"path": "/d/g.txt", "new_path": "/d"}]
    bodies += [{"path": "/d/g.txt", "new_path": f"/link-{new_id()}"}]  # a name no one took
    bodies += [{"path": "/f.txt", "new_path": "/d", "overwrite": True}]
    # Exchanges and partial writes (base_version + replace).
    bodies += [{"path": "/f.txt", "new_path": p, "exchange": True} for p in ("/d", "/d/g.txt")]
    bodies += [
        {"path": "/d", "new_path": "/d/g.txt", "exchange": True},
        {"path": "/f.txt", "new_path": "/d", "exchange": True, "overwrite": True},
    ]
    bodies += [
        {"path": "/f.txt", "size": size, "content_hash": "0" * 64, "base_version": base,
         "replace": replace}
        for base in (*ids["version_id"][:1], "junk")
        for size, replace in ((5, {"0": "0" * 64}), (5, {"9": "0" * 64}), (1 << 30, {}),
                              (5, {"0": "x"}))
    ]  # fmt: skip
    bodies += [
        upload_body(f"/up-{new_id()}.bin"),
        {**upload_body("/up.bin"), "size": -1, "content_hash": "0" * 64},
        {"path": "/d", "size": 1, "chunks": ["x"], "content_hash": "y"},
        *({"upload_id": u} for u in ids["upload_id"]),
        *({"device_code": d} for d in ids["device_code"]),
        *({"user_code": c, "approve": True} for c in ids["user_code"]),
        *({"refresh_token": r} for r in ids["refresh_token"]),
        {"name": "bot", "path_prefix": "/nope"}, {"name": "", "access": "sudo"},
        {"name": "bot", "expires_in": 1}, {"name": "s" * 500},
        {"max_versions": 5, "max_days": 7, "grace_days": 7},
        {"max_versions": -1, "max_days": 0, "grace_days": 0},
        {"max_versions": 10**30, "max_days": 1, "grace_days": 1},
        {"client_name": "\x1b[2J" * 50, "scope": "root"},
        {"tool": "read", "target": "/f.txt", "outcome": "ok"}, {"tool": "BAD NAME"},
        {"name": f"s-{new_id()}", "path": "/d"}, {"name": "s3", "path": "/missing"},
        {"paths": ["/f.txt"]}, {"paths": ["/f.txt", *PATHS]}, {"paths": "/f.txt"},
    ]  # fmt: skip
    # POSIX attributes, symbolic links and special nodes.
    bodies += [
        {"path": "/f.txt", "mode": 0o640}, {"path": "/d", "mtime_ns": 10**18, "uid": 7},
        {"path": "/f.txt", "mode": 0o77777}, {"path": "/f.txt/x", "gid": 1},
        {"path": f"/ln-{new_id()}", "target": "f.txt"}, {"path": "/f.txt", "target": "x"},
        {"path": "/ln-long", "target": "t" * 4097}, {"path": f"/p-{new_id()}", "kind": "fifo"},
        {"path": "/p", "kind": "fifo", "rdev": 1}, {"path": "/p", "kind": "file"},
    ]  # fmt: skip
    return bodies


@dataclass(frozen=True)
class Probe:
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes | None = None
    json: Any = None

    def describe(self) -> str:
        body = f" json={self.json!r}"[:200] if self.json is not None else ""
        if self.content is not None:
            body = f" body={self.content[:40]!r} ({len(self.content)} bytes)"
        return f"{self.url} params={self.params} headers={self.headers}{body}"


def probes(method: str, path: str, spec: Endpoint, ids: dict[str, list[str]]) -> Iterator[Probe]:
    """Requests for one operation: each parameter varied in turn over its values."""
    path_params = [n.split("}")[0] for n in path.split("{")[1:]]
    urls = {path}
    for name in path_params:
        for value in values_for(name, "string", ids):
            others = {p: values_for(p, "string", ids)[0] for p in path_params if p != name}
            urls.add(path.format(**{name: value, **others}))
    urls = {u for u in urls if "{" not in u}
    query = [p for p in spec.params if p.where == "query"]
    headers = [p for p in spec.params if p.where == "header"]
    base = {p.name: values_for(p.name, p.type, ids)[0] for p in query if p.required}
    variants: list[tuple[dict[str, str], dict[str, str]]] = [(base, {}), ({}, {})]
    for p in query:
        variants += [({**base, p.name: v}, {}) for v in values_for(p.name, p.type, ids)]
    for p in headers:
        variants += [(base, {p.name: v}) for v in HEADERS.get(p.name, JUNK[:3])]
    bodies: list[dict[str, Any]] = [{}]
    if spec.request is not None and spec.request_media == "application/json":
        bodies = [{"json": b} for b in json_bodies(ids)]
        bodies += [{"content": b"{"}, {"content": b"\xff\xfe"}]
        bodies += [{"content": b'{"path": "/x"}', "type": "text/plain"}]
    elif spec.request_media == "application/x-www-form-urlencoded":
        bodies = [{"content": b"csrf=x&user_code=ABCD-EFGH&username=a&password=b"},
                  {"content": b"%%%", "type": "multipart/form-data; boundary=x"}]  # fmt: skip
    elif spec.request_media == "application/octet-stream" or method in ("put", "post"):
        bodies = [{"content": PROBE_DATA}, {}]
        if spec.request is None:  # a protocol of its own over JSON (MCP's JSON-RPC)
            bodies.append({"json": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}})
    if spec.max_body is not None:
        bodies.append({"content": b"\0" * (spec.max_body + 1)})  # over the route's cap
    # Each URL and parameter variation with a plain body, then each body with the plain URL.
    first = sorted(urls)[0]
    combos = [(u, v, bodies[0]) for u in sorted(urls) for v in variants]
    combos += [(first, variants[0], b) for b in bodies[1:]]
    for url, (params, head), body in combos:
        kind = body.get("type")
        all_headers = {**head, **({"Content-Type": kind} if kind else {})}
        yield Probe(method, url, params, all_headers, body.get("content"), body.get("json"))


def refused_stream(method: str, path: str, probe: Probe) -> bool:
    """False for a probe that would open an endless stream (not refused before it starts)."""
    if (method, path) not in ENDLESS:
        return True
    return probe.params.get("cursor") in REFUSED_CURSORS and not probe.headers


async def run(client: httpx.AsyncClient, probe: Probe, token: str | None) -> int:
    # An MCP client accepts both; the other routes ignore it.
    headers = {"Accept": "application/json, text/event-stream", **probe.headers}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with asyncio.timeout(30):  # an answer that never ends fails here, not the suite
        reply = await client.request(
            probe.method, probe.url, params=probe.params, headers=headers,
            content=probe.content, json=probe.json,
        )  # fmt: skip
    return reply.status_code


def documented_statuses(document: dict[str, Any], path: str, method: str) -> set[int]:
    return {int(s) for s in document["paths"][path][method]["responses"]}


async def test_every_status_an_operation_answers_is_documented(world: World) -> None:
    reply = await world.client.get("/openapi.json")
    assert reply.status_code == 200
    document = reply.json()
    undocumented: dict[tuple[str, str, int], str] = {}
    seen: dict[tuple[str, str], set[int]] = {}
    for method, path, spec in described():
        documented = documented_statuses(document, path, method)
        owner, reader, agent = await world.tokens()
        tokens: list[str | None] = [None, "garbage", reader, agent, owner]
        every = list(probes(method, path, spec, world.ids))
        for token in tokens:
            # Without a valid token every probe stops at the same gate: a few suffice.
            for probe in every if token not in (None, "garbage") else every[:2] + every[-2:]:
                if token not in (None, "garbage") and not refused_stream(method, path, probe):
                    continue
                status = await run(world.client, probe, token)
                seen.setdefault((method, path), set()).add(status)
                if status not in documented or status >= 500:
                    undocumented.setdefault((method, path, status), probe.describe())
    lines = [f"{m.upper()} {p} answered {s} (documented: "
             f"{sorted(documented_statuses(document, p, m))}) to {example}"
             for (m, p, s), example in sorted(undocumented.items())]  # fmt: skip
    assert not lines, "\n".join(lines)
    # The probes reached the operations, not only the gates in front of them.
    reached = {key for key, statuses in seen.items() if any(s < 400 for s in statuses)}
    unreached = set(seen) - reached - NEEDS_MORE_THAN_A_PROBE
    assert not unreached, "\n".join(map(str, sorted(unreached)))


def test_the_errors_every_request_can_meet_are_documented_everywhere() -> None:
    """Static: what the shared layers raise is in every operation it applies to."""
    document = build_document(all_routes(), "test")
    for method, path, spec in described():
        responses = document["paths"][path][method]["responses"]
        documented = {int(s) for s in responses}
        needed = {"rate_limited", "unavailable"}
        if spec.auth:
            needed.add("unauthenticated")
        if spec.request is not None and spec.request_media == "application/json":
            needed |= {"bad_request", "unsupported_media_type"}
        if any(p.type in ("integer", "boolean") for p in spec.params if p.where == "query"):
            needed.add("bad_request")
        if spec.max_body is not None:
            needed.add("payload_too_large")
        needed |= set(spec.errors)
        missing = {c for c in needed if ERROR_TABLE[c].status not in documented}
        assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
        assert set(error_codes(spec)) >= needed
    ws = document["paths"]["/sync/ws"]["get"]["responses"]
    assert {int(s) for s in ws} >= {101, *(ERROR_TABLE[c].status for c in WEBSOCKET_ERRORS)}


def test_the_approval_page_documents_its_html_errors() -> None:
    document = build_document(all_routes(), "test")
    signin = document["paths"]["/device"]["post"]["responses"]
    assert {"400", "401", "403", "404", "429"} <= set(signin)
    assert "text/html" in signin["403"]["content"]
    decide = document["paths"]["/device/decide"]["post"]["responses"]
    assert "text/html" in decide["403"]["content"]
