"""Every route of the app x {owner, writer, reader, agent rw, agent ro, other tenant}, with real
tokens over a real socket: each answers as its role allows, a token limited to ``/p/x`` never
learns anything outside it (paths, node and version ids, content, its hash, snapshots), another
tenant never learns anything of this one, and read-only callers are refused on every route that
changes files. The route table is walked: a route added without a probe fails the test."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import httpx
import pytest
from asgi_lifespan import LifespanManager
from conftest import AuthHarness
from meshfs_server_backends import STARTUP_SECONDS
from meshfs_server_live import serving

from meshfs_common.hashing import chunk_hash, content_hash_of
from meshfs_server.app import all_routes, create_app
from meshfs_server.auth.ratelimit import RateLimiter
from meshfs_server.settings import Settings

ROLES = ("owner", "writer", "reader", "agent_rw", "agent_ro", "other")
AGENTS = ("agent_rw", "agent_ro")
OK = frozenset({200, 201, 204})
DENIED = frozenset({403})
HIDDEN = frozenset({403, 404})
ANY = frozenset(range(200, 500))
SECRET = b"the tenant's secret, outside the agent's prefix"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
# Mutating routes that change no files: sign-in steps, the caller's own session, the record of
# an MCP tool call, and the MCP transport itself (whose tools call the file routes).
NOT_FILE_CHANGES = {
    ("POST", "/auth/device/start"), ("POST", "/auth/device/poll"), ("POST", "/auth/refresh"),
    ("POST", "/auth/device/activate"), ("POST", "/auth/logout"), ("POST", "/device"),
    ("POST", "/device/decide"), ("DELETE", "/auth/sessions/{session_id}"),
    ("POST", "/audit/tool-calls"), ("POST", "/mcp"),
    ("POST", "/files/bulk/read"),  # a read: the list of paths is the body
}  # fmt: skip


def each(codes: frozenset[int]) -> dict[str, frozenset[int]]:
    return dict.fromkeys(ROLES, codes)


def roles(default: frozenset[int], **override: frozenset[int]) -> dict[str, frozenset[int]]:
    return {role: override.get(role, default) for role in ROLES}


WRITE_IN = roles(OK, reader=DENIED, agent_ro=DENIED, other=ANY)
WRITE_OUT = roles(OK, reader=DENIED, agent_rw=DENIED, agent_ro=DENIED, other=ANY)
READ_IN = roles(OK, other=ANY)
READ_OUT = roles(OK, agent_rw=HIDDEN, agent_ro=HIDDEN, other=ANY)
BY_ID_IN = roles(OK, other=HIDDEN)
BY_ID_OUT = roles(OK, agent_rw=HIDDEN, agent_ro=HIDDEN, other=HIDDEN)
WRITE_BY_ID_IN = roles(OK, reader=DENIED, agent_ro=DENIED, other=HIDDEN)
WRITE_BY_ID_OUT = roles(OK, reader=DENIED, agent_rw=HIDDEN, agent_ro=HIDDEN, other=HIDDEN)
OWNERS_ONLY = roles(DENIED, owner=OK, other=OK)  # the other tenant's owner, in its own tenant


@dataclass
class Answer:
    status: int
    text: str
    sent: str  # what the caller itself sent (echoing it back is no leak)


@dataclass
class World:
    url: str
    auth: AuthHarness
    tokens: dict[str, str]
    ids: dict[str, str]
    direct: bool
    agent_secrets: set[str] = field(default_factory=set)
    tenant_secrets: set[str] = field(default_factory=set)
    sessions: dict[str, str] = field(default_factory=dict)

    def client(self, role: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=30
        )


Call = Callable[[httpx.AsyncClient, World, str], Awaitable[Any]]
Expect = dict[str, frozenset[int]] | Callable[[World], dict[str, frozenset[int]]]


@dataclass
class Probe:
    method: str
    path: str
    call: Call
    expect: Expect
    check: Callable[[World, str, Answer], None] | None = None

    def expected(self, world: World) -> dict[str, frozenset[int]]:
        return self.expect(world) if callable(self.expect) else self.expect


async def answer_of(reply: httpx.Response) -> Answer:
    sent = unquote(str(reply.request.url)) + reply.request.content.decode("latin-1")
    return Answer(reply.status_code, reply.text, sent)


async def owner_put(world: World, path: str, data: bytes) -> dict[str, Any]:
    async with world.client("owner") as owner:
        reply = await owner.put("/files/content", params={"path": path}, content=data)
        assert reply.status_code in (200, 201), reply.text
        entry: dict[str, Any] = reply.json()["entry"]
        return entry


async def owner_call(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with world.client("owner") as owner:
        reply = await owner.request(method, path, **kwargs)
        assert reply.status_code < 300, reply.text
        return reply


def init_body(path: str, data: bytes) -> dict[str, Any]:
    names = [chunk_hash(data)]
    return {"path": path, "size": len(data), "content_hash": content_hash_of(names),
            "chunks": names}  # fmt: skip


# --- probes that need preparing (by the owner) or several steps ----------------------------------


async def rename_inside(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/p/x/mv-{role}.txt", b"m")
    return await c.post(
        "/files/rename", json={"path": f"/p/x/mv-{role}.txt", "new_path": f"/p/x/mv2-{role}.txt"}
    )


async def rename_in(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/private/in-{role}.txt", b"m")
    return await c.post(
        "/files/rename",
        json={"path": f"/private/in-{role}.txt", "new_path": f"/p/x/stolen-{role}.txt"},
    )


async def rename_out(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/p/x/ex-{role}.txt", b"m")
    return await c.post(
        "/files/rename", json={"path": f"/p/x/ex-{role}.txt", "new_path": f"/private/ex-{role}.txt"}
    )


async def delete_at(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    await owner_put(w, f"{where}/del-{role}.txt", b"d")
    return await c.delete("/files", params={"path": f"{where}/del-{role}.txt"})


async def restore_in(c: httpx.AsyncClient, w: World, role: str) -> Any:
    return await c.post(f"/files/{w.ids['in_node']}/versions/{w.ids['in_v1']}/restore")


async def restore_out_into_prefix(c: httpx.AsyncClient, w: World, role: str) -> Any:
    entry = await owner_put(w, f"/private/gone-{role}.txt", f"deleted, of {role}".encode())
    await owner_call(w, "DELETE", "/files", params={"path": f"/private/gone-{role}.txt"})
    return await c.post(
        f"/files/{entry['node_id']}/versions/{entry['version_id']}/restore",
        json={"path": f"/p/x/back-{role}.txt"},
    )


async def snapshot_delete(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    name = f"del{where.replace('/', '-')}-{role}"
    await owner_call(w, "POST", "/snapshots", json={"path": where, "name": name})
    return await c.delete(f"/snapshots/{name}")


async def snapshot_restore(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    area = f"{where}/area-{role}"
    name = f"area{where.replace('/', '-')}-{role}"
    await owner_put(w, f"{area}/f.txt", b"before")
    await owner_call(w, "POST", "/snapshots", json={"path": area, "name": name})
    await owner_put(w, f"{area}/f.txt", b"after")
    return await c.post(f"/snapshots/{name}/restore")


async def link_in(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/private/ln-{role}.txt", b"m")
    return await c.post(
        "/files/link",
        json={"path": f"/private/ln-{role}.txt", "new_path": f"/p/x/stolen-ln-{role}.txt"},
    )


async def xattr_set(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    params = {"path": f"{where}/in.txt" if where == "/p/x" else f"{where}/secret.txt",
              "name": f"user.{role}"}  # fmt: skip
    return await c.put("/files/xattr", params=params, content=b"v")


async def xattr_remove(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    path = f"{where}/xattr-{role}.txt"
    await owner_put(w, path, b"x")
    await owner_call(w, "PUT", "/files/xattr", params={"path": path, "name": "user.k"},
                     content=b"v")  # fmt: skip
    return await c.delete("/files/xattr", params={"path": path, "name": "user.k"})


async def upload_init(c: httpx.AsyncClient, w: World, role: str, where: str) -> Any:
    return await c.post("/files/upload/init", json=init_body(f"{where}/up-{role}.bin", SECRET))


async def partial_init(c: httpx.AsyncClient, w: World, role: str) -> Any:
    """A partial write of a file inside whose new content is stored only outside."""
    base = await owner_put(w, f"/p/x/partial-{role}.txt", b"base")
    body = init_body(f"/p/x/partial-{role}.txt", SECRET)
    body |= {"chunks": [], "base_version": base["version_id"], "replace": {"0": body["chunks"][0]}}
    return await c.post("/files/upload/init", json=body)


async def copy_in(c: httpx.AsyncClient, w: World, role: str) -> Any:
    """A copy from outside the prefix into it (of content that is no secret: the owner may
    copy it, and what lands inside is then the agents' to see)."""
    await owner_put(w, f"/private/cp-src-{role}.txt", b"outside")
    return await c.post(
        "/files/copy",
        json={"path": f"/private/cp-src-{role}.txt", "new_path": f"/p/x/cp-out-{role}.txt"},
    )


async def exchange_inside(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/p/x/ex-a-{role}.txt", b"a")
    await owner_put(w, f"/p/x/ex-b-{role}.txt", b"b")
    return await c.post(
        "/files/rename",
        json={
            "path": f"/p/x/ex-a-{role}.txt",
            "new_path": f"/p/x/ex-b-{role}.txt",
            "exchange": True,
        },
    )


async def exchange_out(c: httpx.AsyncClient, w: World, role: str) -> Any:
    await owner_put(w, f"/p/x/ex-in-{role}.txt", b"in")
    await owner_put(w, f"/private/ex-out-{role}.txt", b"out")
    return await c.post(
        "/files/rename",
        json={
            "path": f"/p/x/ex-in-{role}.txt",
            "new_path": f"/private/ex-out-{role}.txt",
            "exchange": True,
        },
    )


def statfs_hides_usage(world: World, role: str, answer: Answer) -> None:
    stats = json.loads(answer.text)
    assert stats["total_bytes"] > 0, (role, stats)
    # A token limited to /p/x gets the quota and the counts of its prefix, never the usage.
    hidden = role in AGENTS
    assert (stats["used_bytes"] is None) == hidden, (role, stats)
    assert (stats["free_bytes"] is None) == hidden, (role, stats)


def init_hides_outside_content(world: World, role: str, answer: Answer) -> None:
    # The same bytes are stored under /private: only callers who see it may learn that.
    if answer.status == 200:
        expected = [] if role in ("owner", "writer") else [0]
        assert json.loads(answer.text)["missing"] == expected, (role, answer.text)


async def own_upload(c: httpx.AsyncClient, w: World, role: str) -> str:
    """An upload of the caller's own, or (for callers who cannot start one) the owner's."""
    if role in ("reader", "agent_ro", "other"):
        return w.ids["pending_upload"]
    data = f"part of {role}".encode()
    init = await c.post("/files/upload/init", json=init_body(f"/p/x/part-{role}.bin", data))
    assert init.status_code == 200, init.text
    upload_id: str = init.json()["upload_id"]
    return upload_id


async def upload_part(c: httpx.AsyncClient, w: World, role: str) -> Any:
    upload_id = await own_upload(c, w, role)
    data = f"part of {role}".encode() if upload_id != w.ids["pending_upload"] else b"pending"
    return await c.put(
        "/files/upload/part", params={"upload_id": upload_id, "index": 0}, content=data
    )


async def upload_commit(c: httpx.AsyncClient, w: World, role: str) -> Any:
    reply = await upload_part(c, w, role)
    if reply.status_code != 200:  # refused: commit the owner's upload, which must be refused too
        return await c.post("/files/upload/commit", json={"upload_id": w.ids["pending_upload"]})
    return await c.post("/files/upload/commit", json={"upload_id": reply.json()["upload_id"]})


async def sse(c: httpx.AsyncClient, w: World, role: str) -> Answer:
    url = f"{w.url}/sync/stream?cursor=0&access_token={w.tokens[role]}"
    lines: list[str] = []
    async with aiohttp.ClientSession() as session, session.get(url) as stream:
        if stream.status != 200:
            return Answer(stream.status, await stream.text(), url)
        while "event: caught_up" not in lines:
            lines.append((await stream.content.readline()).decode().rstrip("\n"))
    return Answer(200, "\n".join(lines), url)


async def websocket(c: httpx.AsyncClient, w: World, role: str) -> Answer:
    url = f"{w.url}/sync/ws?cursor=0&access_token={w.tokens[role]}"
    messages: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while not messages or messages[-1]["type"] != "caught_up":
            messages.append(await ws.receive_json(timeout=10))
    return Answer(200, json.dumps(messages), url)


def only_own_session(world: World, role: str, answer: Answer) -> None:
    if role in AGENTS:
        listed = [s["session_id"] for s in json.loads(answer.text)["sessions"]]
        assert listed == [world.sessions[role]], (role, listed)


def only_own_audit_rows(world: World, role: str, answer: Answer) -> None:
    if role in AGENTS:
        rows = json.loads(answer.text)["entries"]
        assert {r.get("session_id") for r in rows} <= {world.sessions[role]}, (role, rows)


def no_tenant_usage(world: World, role: str, answer: Answer) -> None:
    storage = json.loads(answer.text)["storage"]
    assert ("used" in storage) == (role not in AGENTS), (role, storage)


async def bulk_put(c: httpx.AsyncClient, role: str, where: str) -> Any:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(f"bulk-{role}.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"b"))
    return await c.post("/files/bulk", params={"path": where}, content=out.getvalue(),
                        headers={"Content-Type": "application/x-tar"})  # fmt: skip


def bulk_read_hides_outside(world: World, role: str, answer: Answer) -> None:
    # Through a scope, paths outside it are members carrying "forbidden" and nothing else.
    if role in AGENTS:
        assert "MESHFS.error=forbidden" in answer.text, (role, answer.text[:300])
        assert "not_found" not in answer.text, (role, answer.text[:300])


def direct(expect: dict[str, frozenset[int]]) -> Callable[[World], dict[str, frozenset[int]]]:
    """Presigned downloads: as *expect* where direct transfers are on, else 400 for everyone."""
    return lambda world: expect if world.direct else each(frozenset({400}))


def get(route: str, **params: Any) -> Call:
    return lambda c, w, role: c.get(route, params={k: v.format(**w.ids) for k, v in params.items()})


def post(route: str, body: Any = None) -> Call:
    return lambda c, w, role: c.post(route, json=body)


MCP_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
POLICY = {"max_versions": 5, "max_days": 7, "grace_days": 7}


def probes() -> list[Probe]:
    """One or more probes per route; /audit/recent first (later probes audit the callers' own
    attempts) and logout last (it ends the caller's session)."""
    return [
        Probe("GET", "/audit/recent", get("/audit/recent", limit="1000"), each(OK),
              only_own_audit_rows),
        Probe("GET", "/healthz", get("/healthz"), each(OK)),
        Probe("GET", "/readyz", get("/readyz"), each(OK)),
        Probe("GET", "/openapi.json", get("/openapi.json"), each(OK)),
        Probe("POST", "/auth/device/start", post("/auth/device/start", {}), each(OK)),
        Probe("POST", "/auth/device/poll", post("/auth/device/poll", {"device_code": "no"}),
              each(frozenset({400}))),
        Probe("POST", "/auth/device/activate",
              post("/auth/device/activate", {"user_code": "BCDF-GHJK"}),
              roles(frozenset({404}), agent_rw=DENIED, agent_ro=DENIED)),
        Probe("POST", "/auth/refresh", post("/auth/refresh", {"refresh_token": "mfr_no"}),
              each(frozenset({400}))),
        Probe("GET", "/device", get("/device"), each(OK)),
        Probe("POST", "/device", lambda c, w, r: c.post("/device", data={"user_code": "X"}),
              each(frozenset({400, 403}))),
        Probe("POST", "/device/decide",
              lambda c, w, r: c.post("/device/decide", data={"approve": "1"}),
              each(frozenset({400, 403}))),
        Probe("GET", "/auth/whoami", get("/auth/whoami"), each(OK)),
        Probe("GET", "/auth/sessions", get("/auth/sessions", include_revoked="1"), each(OK),
              only_own_session),
        Probe("DELETE", "/auth/sessions/{session_id}",
              lambda c, w, r: c.delete(f"/auth/sessions/{w.ids['spare_' + r]}"),
              roles(frozenset({404}), owner=OK)),
        Probe("POST", "/auth/agents", post("/auth/agents", {"name": "m", "path_prefix": "/p/x"}),
              roles(DENIED, owner=OK, writer=OK, other=OK)),
        Probe("GET", "/plans/current", get("/plans/current"), each(OK), no_tenant_usage),
        Probe("GET", "/retention/policy", get("/retention/policy"), each(OK)),
        Probe("PUT", "/retention/policy",
              lambda c, w, r: c.put("/retention/policy", json=POLICY), OWNERS_ONLY),
        Probe("POST", "/retention/apply", post("/retention/apply"), OWNERS_ONLY),
        Probe("POST", "/mcp", lambda c, w, r: c.post(
            "/mcp", json=MCP_LIST, headers={"Accept": "application/json, text/event-stream"}),
            each(OK)),
        Probe("POST", "/audit/tool-calls",
              post("/audit/tool-calls", {"tool": "read", "target": "/p/x/in.txt"}), each(OK)),
        # files
        Probe("POST", "/files/mkdir",
              lambda c, w, r: c.post("/files/mkdir", json={"path": f"/p/x/mk-{r}"}), WRITE_IN),
        Probe("POST", "/files/mkdir",
              lambda c, w, r: c.post("/files/mkdir", json={"path": f"/private/mk-{r}"}),
              WRITE_OUT),
        Probe("GET", "/files/list", get("/files/list", path="/p/x"), READ_IN),
        Probe("GET", "/files/list", get("/files/list", path="/private", include_deleted="1"),
              READ_OUT),
        Probe("GET", "/files/list", get("/files/list", path="/"), READ_OUT),
        Probe("GET", "/files/meta", get("/files/meta", node_id="{in_node}"), BY_ID_IN),
        Probe("GET", "/files/meta", get("/files/meta", path="/private/secret.txt"), READ_OUT),
        Probe("GET", "/files/meta", get("/files/meta", node_id="{out_node}"), BY_ID_OUT),
        Probe("GET", "/files/meta", get("/files/meta", node_id="{gone_node}"), BY_ID_OUT),
        Probe("POST", "/files/rename", rename_inside, WRITE_IN),
        Probe("POST", "/files/rename", rename_in, WRITE_OUT),
        Probe("POST", "/files/rename", rename_out, WRITE_OUT),
        Probe("DELETE", "/files", lambda c, w, r: delete_at(c, w, r, "/p/x"), WRITE_IN),
        Probe("DELETE", "/files", lambda c, w, r: delete_at(c, w, r, "/private"), WRITE_OUT),
        Probe("GET", "/files/{node_id}/versions",
              lambda c, w, r: c.get(f"/files/{w.ids['in_node']}/versions"), BY_ID_IN),
        Probe("GET", "/files/{node_id}/versions",
              lambda c, w, r: c.get(f"/files/{w.ids['out_node']}/versions"), BY_ID_OUT),
        Probe("POST", "/files/{node_id}/versions/{version_id}/restore", restore_in,
              WRITE_BY_ID_IN),
        Probe("POST", "/files/{node_id}/versions/{version_id}/restore", restore_out_into_prefix,
              WRITE_BY_ID_OUT),
        Probe("GET", "/files/diff", get("/files/diff", path="/p/x/in.txt"), READ_IN),
        Probe("GET", "/files/diff", get("/files/diff", path="/private/secret.txt"), READ_OUT),
        Probe("GET", "/files/changes", get("/files/changes", path="/p/x", since_cursor="0"),
              READ_IN),
        Probe("GET", "/files/changes", get("/files/changes", path="/", since_cursor="0"),
              READ_OUT),
        Probe("POST", "/snapshots", lambda c, w, r: c.post(
            "/snapshots", json={"path": "/p/x", "name": f"in-{r}"}), WRITE_IN),
        Probe("POST", "/snapshots", lambda c, w, r: c.post(
            "/snapshots", json={"path": "/private", "name": f"out-{r}"}), WRITE_OUT),
        Probe("GET", "/snapshots", get("/snapshots"), each(OK)),
        Probe("GET", "/snapshots/{ref}", get("/snapshots/inside-snap"), BY_ID_IN),
        Probe("GET", "/snapshots/{ref}", get("/snapshots/outside-snap"), BY_ID_OUT),
        Probe("GET", "/snapshots/{ref}/diff", get("/snapshots/inside-snap/diff"), BY_ID_IN),
        Probe("GET", "/snapshots/{ref}/diff", get("/snapshots/outside-snap/diff"), BY_ID_OUT),
        Probe("DELETE", "/snapshots/{ref}", lambda c, w, r: snapshot_delete(c, w, r, "/p/x"),
              WRITE_BY_ID_IN),
        Probe("DELETE", "/snapshots/{ref}",
              lambda c, w, r: snapshot_delete(c, w, r, "/private"), WRITE_BY_ID_OUT),
        Probe("POST", "/snapshots/{ref}/restore",
              lambda c, w, r: snapshot_restore(c, w, r, "/p/x"), WRITE_BY_ID_IN),
        Probe("POST", "/snapshots/{ref}/restore",
              lambda c, w, r: snapshot_restore(c, w, r, "/private"), WRITE_BY_ID_OUT),
        Probe("POST", "/files/link", lambda c, w, r: c.post(
            "/files/link", json={"path": "/p/x/in.txt", "new_path": f"/p/x/ln-{r}.txt"}),
            WRITE_IN),
        Probe("POST", "/files/link", link_in, WRITE_OUT),
        Probe("GET", "/files/xattrs", get("/files/xattrs", path="/p/x/in.txt"), READ_IN),
        Probe("GET", "/files/xattrs", get("/files/xattrs", path="/private/secret.txt"),
              READ_OUT),
        Probe("GET", "/files/xattr",
              get("/files/xattr", path="/p/x/in.txt", name="meshfs.node_id"), READ_IN),
        Probe("GET", "/files/xattr",
              get("/files/xattr", path="/private/secret.txt", name="meshfs.content_hash"),
              READ_OUT),
        Probe("PUT", "/files/xattr", lambda c, w, r: xattr_set(c, w, r, "/p/x"), WRITE_IN),
        Probe("PUT", "/files/xattr", lambda c, w, r: xattr_set(c, w, r, "/private"), WRITE_OUT),
        Probe("DELETE", "/files/xattr", lambda c, w, r: xattr_remove(c, w, r, "/p/x"),
              WRITE_IN),
        Probe("DELETE", "/files/xattr", lambda c, w, r: xattr_remove(c, w, r, "/private"),
              WRITE_OUT),
        Probe("POST", "/files/attributes",
              post("/files/attributes", {"path": "/p/x/in.txt", "mode": 0o640}), WRITE_IN),
        Probe("POST", "/files/attributes",
              post("/files/attributes", {"path": "/private/secret.txt", "mode": 0o600}),
              WRITE_OUT),
        Probe("POST", "/files/symlink", lambda c, w, r: c.post(
            "/files/symlink", json={"path": f"/p/x/ln-{r}", "target": "in.txt"}), WRITE_IN),
        Probe("POST", "/files/symlink", lambda c, w, r: c.post(
            "/files/symlink", json={"path": f"/private/ln-{r}", "target": "secret.txt"}),
            WRITE_OUT),
        Probe("POST", "/files/mknod", lambda c, w, r: c.post(
            "/files/mknod", json={"path": f"/p/x/fifo-{r}", "kind": "fifo"}), WRITE_IN),
        Probe("POST", "/files/mknod", lambda c, w, r: c.post(
            "/files/mknod", json={"path": f"/private/fifo-{r}", "kind": "fifo"}), WRITE_OUT),
        Probe("POST", "/files/copy", lambda c, w, r: c.post("/files/copy", json={
            "path": "/p/x/in.txt", "new_path": f"/p/x/cp-{r}.txt"}), WRITE_IN),
        Probe("POST", "/files/copy", copy_in, WRITE_OUT),
        Probe("POST", "/files/copy", lambda c, w, r: c.post("/files/copy", json={
            "path": "/p/x/in.txt", "new_path": f"/private/cp-{r}.txt"}), WRITE_OUT),
        Probe("POST", "/files/rename", exchange_inside, WRITE_IN),
        Probe("POST", "/files/rename", exchange_out, WRITE_OUT),
        Probe("GET", "/files/statfs", get("/files/statfs"), each(OK), statfs_hides_usage),
        Probe("GET", "/files/chunks", get("/files/chunks", path="/p/x/in.txt"), READ_IN),
        Probe("GET", "/files/chunks", get("/files/chunks", path="/private/secret.txt"),
              READ_OUT),
        Probe("GET", "/files/chunks", get("/files/chunks", node_id="{out_node}",
                                          version_id="{out_v1}"), BY_ID_OUT),
        Probe("POST", "/files/upload/init", partial_init, WRITE_IN, init_hides_outside_content),
        Probe("POST", "/files/upload/init", lambda c, w, r: upload_init(c, w, r, "/p/x"),
              WRITE_IN, init_hides_outside_content),
        Probe("POST", "/files/upload/init", lambda c, w, r: upload_init(c, w, r, "/private"),
              WRITE_OUT),
        Probe("PUT", "/files/upload/part", upload_part, WRITE_BY_ID_IN),
        Probe("POST", "/files/upload/commit", upload_commit, WRITE_BY_ID_IN),
        Probe("PUT", "/files/content", lambda c, w, r: c.put(
            "/files/content", params={"path": f"/p/x/put-{r}.txt"}, content=b"p"), WRITE_IN),
        Probe("PUT", "/files/content", lambda c, w, r: c.put(
            "/files/content", params={"path": f"/private/put-{r}.txt"}, content=b"p"),
            WRITE_OUT),
        Probe("POST", "/files/bulk", lambda c, w, r: bulk_put(c, r, "/p/x"), WRITE_IN),
        Probe("POST", "/files/bulk", lambda c, w, r: bulk_put(c, r, "/private"), WRITE_OUT),
        Probe("GET", "/files/bulk", get("/files/bulk", path="/p/x", meta="true"), READ_IN),
        Probe("GET", "/files/bulk", get("/files/bulk", path="/private"), READ_OUT),
        Probe("GET", "/files/bulk", get("/files/bulk", path="/", meta="true"), READ_OUT),
        Probe("POST", "/files/bulk/read",
              post("/files/bulk/read", {"paths": ["/p/x/in.txt"]}), READ_IN),
        Probe("POST", "/files/bulk/read",
              post("/files/bulk/read", {"paths": ["/p/x/in.txt", "/private/secret.txt"]}),
              READ_OUT),
        Probe("POST", "/files/bulk/read", lambda c, w, r: c.post(
            "/files/bulk/read", params={"meta": "true"},
            json={"paths": ["/p/x/in.txt", "/private/secret.txt", "/private/gone.txt"]}),
            READ_IN, bulk_read_hides_outside),
        Probe("GET", "/files/download", get("/files/download", path="/p/x/in.txt"), READ_IN),
        Probe("GET", "/files/download", get("/files/download", node_id="{out_node}"),
              BY_ID_OUT),
        Probe("GET", "/files/download",
              get("/files/download", node_id="{out_node}", version_id="{out_v1}"), BY_ID_OUT),
        Probe("GET", "/files/download", get("/files/download", node_id="{gone_node}",
                                            version_id="{gone_v}"), BY_ID_OUT),
        Probe("GET", "/files/download/direct",
              get("/files/download/direct", path="/p/x/in.txt"), direct(READ_IN)),
        Probe("GET", "/files/download/direct",
              get("/files/download/direct", node_id="{out_node}"), direct(BY_ID_OUT)),
        Probe("GET", "/sync/pull", get("/sync/pull", cursor="0"), each(OK)),
        Probe("GET", "/sync/stream", sse, each(OK)),
        Probe("WS", "/sync/ws", websocket, each(OK)),
        Probe("POST", "/auth/logout", post("/auth/logout", {}), each(frozenset({204}))),
    ]  # fmt: skip


def route_table() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD goes with GET; WS for WebSockets)."""
    found: set[tuple[str, str]] = set()
    for route in all_routes():
        methods = getattr(route, "methods", None) or {"WS"}
        found |= {(m, route.path) for m in methods if m != "HEAD"}  # type: ignore[attr-defined]
    return found


def test_every_route_is_probed_and_read_only_callers_change_nothing() -> None:
    probed = {(p.method, p.path) for p in probes()}
    assert route_table() == probed, (route_table() - probed, probed - route_table())
    for probe in probes():
        if probe.method in MUTATING and (probe.method, probe.path) not in NOT_FILE_CHANGES:
            for role in ("reader", "agent_ro"):
                expect = probe.expect
                assert isinstance(expect, dict), (probe.method, probe.path)
                assert not expect[role] & OK, (probe.method, probe.path, role)


# --- the world the probes run in ----------------------------------------------------------------


@pytest.fixture
async def matrix_auth(tmp_path: Path, backend: dict[str, Any]) -> AsyncIterator[AuthHarness]:
    settings = Settings(data_dir=tmp_path / "matrix", gc_grace_seconds=0,
                        rate_limit_per_minute=1_000_000, **backend)  # fmt: skip
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meshfs.test") as client:
            harness = AuthHarness(app, transport, client, app.state.services, settings)
            limits = harness.services.identity.limits
            limits.auth_addresses = RateLimiter(1_000_000, 60.0)
            limits.guesses = RateLimiter(1_000_000, 60.0)
            yield harness


async def build_world(auth: AuthHarness, url: str) -> World:
    owner = await auth.login("alice")
    writer = await auth.login("wes", tenant="alice", role="writer")
    reader = await auth.login("rita", tenant="alice", role="reader")
    other = await auth.login("mallory")
    tokens = {"owner": owner.access_token, "writer": writer.access_token,
              "reader": reader.access_token, "other": other.access_token}  # fmt: skip
    world = World(url, auth, tokens, {}, direct=auth.settings.object_store_direct_transfers)
    async with world.client("owner") as alice:
        for name, access in (("agent_rw", "write"), ("agent_ro", "read")):
            made = await alice.post(
                "/auth/agents", json={"name": name, "path_prefix": "/p/x", "access": access}
            )
            assert made.status_code == 201, made.text
            tokens[name] = made.json()["token"]
            world.sessions[name] = made.json()["session_id"]
        inside = [await owner_put(world, "/p/x/in.txt", f"inside {i}".encode()) for i in (1, 2)]
        outside = [await owner_put(world, "/private/secret.txt", s) for s in (b"old", SECRET)]
        gone = await owner_put(world, "/private/gone.txt", b"deleted secret")
        await alice.delete("/files", params={"path": "/private/gone.txt"})
        for name, where in (("inside-snap", "/p/x"), ("outside-snap", "/private")):
            await alice.post("/snapshots", json={"path": where, "name": name})
        snap = (await alice.get("/snapshots/outside-snap")).json()
        pending = await alice.post("/files/upload/init",
                                   json=init_body("/p/x/pending.bin", b"pending"))  # fmt: skip
    for role in ROLES:  # a session of the owner's for each role to try to revoke
        spare = await auth.login("alice", client_name=f"spare-{role}")
        world.ids[f"spare_{role}"] = spare.session_id
    world.ids.update(
        in_node=inside[1]["node_id"], in_v1=inside[0]["version_id"],
        out_node=outside[1]["node_id"], out_v1=outside[0]["version_id"],
        gone_node=gone["node_id"], gone_v=gone["version_id"],
        pending_upload=pending.json()["upload_id"],
    )  # fmt: skip
    world.agent_secrets = {
        "/private", SECRET.decode(), chunk_hash(SECRET), content_hash_of([chunk_hash(SECRET)]),
        outside[0]["node_id"], outside[0]["version_id"], outside[1]["version_id"],
        gone["node_id"], gone["version_id"], "outside-snap", snap["snapshot_id"],
    }  # fmt: skip
    world.tenant_secrets = {
        owner.tenant_id, owner.session_id, writer.session_id, reader.session_id,
        inside[1]["node_id"], inside[0]["version_id"], inside[1]["version_id"],
        "inside 1", "inside 2", *world.agent_secrets - {"/private"},
        *world.sessions.values(),
    }  # fmt: skip
    return world


async def test_every_route_for_every_role(matrix_auth: AuthHarness) -> None:
    async with serving(matrix_auth.transport.app) as url:
        world = await build_world(matrix_auth, url)
        failures: list[str] = []
        for probe in probes():
            for role in ROLES:
                async with world.client(role) as client:
                    got = await probe.call(client, world, role)
                answer = got if isinstance(got, Answer) else await answer_of(got)
                where = f"{probe.method} {probe.path} as {role}"
                expected = probe.expected(world)[role]
                if answer.status not in expected:
                    failures.append(f"{where}: {answer.status} {answer.text[:200]}")
                    continue
                secrets = (
                    world.agent_secrets if role in AGENTS
                    else world.tenant_secrets if role == "other" else set()
                )  # fmt: skip
                for secret in secrets:
                    if secret in answer.text and secret not in answer.sent:
                        failures.append(f"{where}: shows {secret!r}: {answer.text[:300]}")
                if probe.check is not None:
                    try:
                        probe.check(world, role, answer)
                    except AssertionError as exc:
                        failures.append(f"{where}: {exc}")
    assert not failures, "\n".join(failures)
