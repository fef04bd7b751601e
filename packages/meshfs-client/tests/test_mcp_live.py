"""The MCP server with the SDK's own client, against a REAL meshfs-server, over both transports:
stdio (``meshfs mcp`` started as a subprocess, as an agent host does) and streamable HTTP (the
server's ``/mcp``). Each test runs on both; the agent acts with its own agent token."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from meshfs_client_testkit import Account

from meshfs_client import MeshFSClient
from meshfs_client._credentials import CredentialStore

pytestmark = pytest.mark.live

Connect = Callable[[str], AbstractAsyncContextManager[Client]]

ALL_TOOLS = {
    "read", "write", "edit", "list", "tree", "search", "stat", "mkdir", "move", "delete",
    "versions", "restore", "diff", "changes_since",
}  # fmt: skip
WRITING_TOOLS = {"write", "edit", "mkdir", "move", "delete", "restore"}


async def agent_token(
    account: Account, name: str, *, prefix: str = "/", access: str = "write"
) -> str:
    """A new agent token of *account* (``POST /auth/agents`` as the signed-in owner)."""
    stored = CredentialStore(account.settings.credentials_path).load(account.server.url)
    assert stored is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            account.server.url + "/auth/agents",
            json={"name": name, "path_prefix": prefix, "access": access},
            headers={"Authorization": f"Bearer {stored.access_token}"},
        ) as answer,
    ):
        assert answer.status == 201, await answer.text()
        token: str = (await answer.json())["token"]
        return token


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, account: Account, tmp_path: Path) -> Connect:
    """Opens an MCP client session acting with a given token, over the transport under test."""

    @asynccontextmanager
    async def stdio(token: str) -> AsyncIterator[Client]:
        command = Path(sys.executable).with_name("meshfs")
        env = {
            "MESHFS_SERVER": account.server.url,
            "MESHFS_TOKEN": token,
            "MESHFS_CONFIG_DIR": str(tmp_path / "agent-config"),
        }
        params = StdioServerParameters(command=str(command), args=["mcp"], env=env)
        async with Client(params, read_timeout_seconds=60) as client:
            yield client

    @asynccontextmanager
    async def http(token: str) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as session:
            transport = streamable_http_client(account.server.url + "/mcp", http_client=session)
            async with Client(transport, read_timeout_seconds=60) as client:
                yield client

    return stdio if request.param == "stdio" else http


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result)}"
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail as a tool error (a result with isError, not an exception)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded: {result.structured_content}"
    return text_of(result)


async def test_tools_are_listed_with_annotations_and_schemas(
    account: Account, connect: Connect
) -> None:
    async with connect(await agent_token(account, "lister")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= ALL_TOOLS
    for name, tool in tools.items():
        notes = tool.annotations
        assert notes is not None, name
        assert notes.read_only_hint is (name not in WRITING_TOOLS), name
        assert notes.destructive_hint is not None, name
        assert notes.idempotent_hint is not None, name
        assert tool.input_schema["type"] == "object", name
        assert tool.output_schema is not None, name
        assert tool.output_schema["type"] == "object", name
        assert tool.description
    assert tools["delete"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert tools["mkdir"].annotations.destructive_hint is False  # type: ignore[union-attr]
    assert tools["edit"].annotations.idempotent_hint is False  # type: ignore[union-attr]
    assert "path" in tools["read"].input_schema["required"]


async def test_every_tool_through_an_agent_token(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    await client.mkdir("/proj")
    async with connect(await agent_token(account, "builder", prefix="/proj")) as agent:
        made = await ok(agent, "mkdir", {"path": "/proj/src"})
        assert made["entry"]["kind"] == "dir"
        first = await ok(
            agent, "write", {"path": "/proj/src/app.py", "content": "a = 1\nb = 2\nc = 3\n"}
        )
        assert first["created_version"] is True

        window = await ok(agent, "read", {"path": "/proj/src/app.py", "start_line": 2,
                                          "end_line": 3})  # fmt: skip
        assert window["text"] == "b = 2\nc = 3\n"
        assert (window["start_line"], window["end_line"], window["total_lines"]) == (2, 3, 3)
        assert window["version_id"] == first["version_id"]

        edited = await ok(
            agent, "edit", {"path": "/proj/src/app.py", "old_text": "b = 2", "new_text": "b = 20"}
        )
        assert edited["replacements"] == 1
        assert "-b = 2\n+b = 20\n" in edited["diff"]
        assert edited["diff"].startswith("--- a/proj/src/app.py\n+++ b/proj/src/app.py\n")
        assert await client.read_bytes("/proj/src/app.py") == b"a = 1\nb = 20\nc = 3\n"

        stale = await refused(agent, "write", {"path": "/proj/src/app.py", "content": "x",
                                               "if_match": first["version_id"]})  # fmt: skip
        assert "precondition_failed" in stale

        stat = await ok(agent, "stat", {"path": "/proj/src/app.py"})
        assert stat["entry"]["version_id"] == edited["version_id"]
        listing = await ok(agent, "list", {"path": "/proj"})
        assert [e["name"] for e in listing["entries"]] == ["src"]
        drawn = await ok(agent, "tree", {"path": "/proj", "depth": 2})
        assert drawn["text"] == "/proj\n  src/\n    app.py\n"

        await ok(agent, "write", {"path": "/proj/README.md", "content": "b = 20 is documented\n"})
        named = await ok(agent, "search", {"path": "/proj", "name": "*.py"})
        assert [m["path"] for m in named["matches"]] == ["/proj/src/app.py"]
        grepped = await ok(agent, "search", {"path": "/proj", "text": "b = 20"})
        assert {(m["path"], m["line"]) for m in grepped["matches"]} == {
            ("/proj/src/app.py", 2),
            ("/proj/README.md", 1),
        }
        capped = await ok(agent, "search", {"path": "/proj", "text": "=", "max_results": 2})
        assert len(capped["matches"]) == 2
        assert capped["truncated"] is True

        history = await ok(agent, "versions", {"path": "/proj/src/app.py"})
        assert [v["version_id"] for v in history["versions"]] == [
            edited["version_id"],
            first["version_id"],
        ]
        assert {v["writer"]["agent_name"] for v in history["versions"]} == {"builder"}

        restored = await ok(
            agent, "restore", {"path": "/proj/src/app.py", "version_id": first["version_id"]}
        )
        assert restored["version_id"] not in (first["version_id"], edited["version_id"])
        assert await client.read_bytes("/proj/src/app.py") == b"a = 1\nb = 2\nc = 3\n"

        moved = await ok(agent, "move", {"path": "/proj/src/app.py", "new_path": "/proj/main.py"})
        assert moved["entry"]["path"] == "/proj/main.py"
        gone = await ok(agent, "delete", {"path": "/proj/src"})
        assert gone["deleted_nodes"] == 1
        assert not await client.exists("/proj/src")
        await refused(agent, "stat", {"path": "/proj/src"})

        listed = await agent.list_resources()
        assert [(r.uri, r.size) for r in listed.resources] == [
            ("meshfs:///proj/README.md", 21),
            ("meshfs:///proj/main.py", 18),
        ]
        resource = await agent.read_resource("meshfs:///proj/main.py")
        (contents,) = resource.contents
        assert isinstance(contents, types.TextResourceContents)
        assert contents.text == "a = 1\nb = 2\nc = 3\n"


async def test_diff_and_changes_since_show_what_the_agent_did(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    await client.mkdir("/proj")
    first = await client.upload("/proj/a.txt", b"one\ntwo\n")
    await client.upload("/proj/old.txt", b"old\n")
    cursor = await client.current_cursor()
    async with connect(await agent_token(account, "differ", prefix="/proj")) as agent:
        edited = await ok(agent, "edit", {"path": "/proj/a.txt", "old_text": "two",
                                          "new_text": "2"})  # fmt: skip
        await ok(agent, "write", {"path": "/proj/new.txt", "content": "fresh\n"})
        await ok(agent, "delete", {"path": "/proj/old.txt"})

        last = await agent.call_tool("diff", {"path": "/proj/a.txt"})
        assert not last.is_error, text_of(last)
        assert last.structured_content is not None
        assert last.structured_content["new"]["version_id"] == edited["version_id"]
        assert "-two\n+2\n" in last.structured_content["unified"]
        assert "-two\n+2\n" in text_of(last)
        assert (last.structured_content["added"], last.structured_content["removed"]) == (1, 1)
        between = await ok(agent, "diff", {"path": "/proj/a.txt", "v1": first.version.version_id,
                                           "v2": edited["version_id"]})  # fmt: skip
        assert between["unified"] == last.structured_content["unified"]

        summary = await ok(agent, "changes_since", {"path": "/proj", "since_cursor": cursor})
        status = {change["path"]: change["status"] for change in summary["changes"]}
        assert status == {
            "/proj/a.txt": "modified",
            "/proj/new.txt": "created",
            "/proj/old.txt": "deleted",
        }
        for change in summary["changes"]:
            assert [w["agent_name"] for w in change["writers"]] == ["differ"]
        since = {"path": "/proj", "since_time": "2000-01-01T00:00:00Z"}
        by_time = await ok(agent, "changes_since", since)
        # From before the tree existed: the net effect (old.txt came and went).
        files = {c["path"]: c["status"] for c in by_time["changes"] if c["kind"] == "file"}
        assert files == {"/proj/a.txt": "created", "/proj/new.txt": "created"}
        assert "since_cursor" in await refused(agent, "changes_since", {"path": "/proj"})


async def test_versions_written_through_mcp_record_the_agent(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    async with connect(await agent_token(account, "scribe")) as agent:
        await ok(agent, "write", {"path": "/notes.md", "content": "by the agent\n"})
    (version,) = [v async for v in client.versions("/notes.md")]
    assert version.writer is not None
    assert version.writer.agent_name == "scribe"


async def test_an_agent_limited_to_a_prefix_cannot_reach_outside_it(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    await client.upload("/secret/plan.txt", b"private\n")
    await client.mkdir("/proj")
    async with connect(await agent_token(account, "boxed", prefix="/proj")) as agent:
        for tool, arguments in [
            ("read", {"path": "/secret/plan.txt"}),
            ("stat", {"path": "/secret/plan.txt"}),
            ("list", {"path": "/"}),
            ("search", {"path": "/", "text": "private"}),
            ("versions", {"path": "/secret/plan.txt"}),
            ("write", {"path": "/secret/plan.txt", "content": "overwritten"}),
            ("edit", {"path": "/secret/plan.txt", "old_text": "private", "new_text": "public"}),
            ("move", {"path": "/secret/plan.txt", "new_path": "/proj/plan.txt"}),
            ("delete", {"path": "/secret/plan.txt"}),
            ("mkdir", {"path": "/elsewhere"}),
        ]:
            message = await refused(agent, tool, arguments)
            assert "forbidden" in message, (tool, message)
            assert "/proj" in message, (tool, message)
        with pytest.raises(Exception, match="forbidden"):
            await agent.read_resource("meshfs:///secret/plan.txt")
        # Inside the prefix the same token works.
        await ok(agent, "write", {"path": "/proj/ok.txt", "content": "fine"})
    assert await client.read_bytes("/secret/plan.txt") == b"private\n"
    assert not await client.exists("/elsewhere")


async def test_a_read_only_token_reads_but_every_change_is_a_tool_error(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    first = await client.upload("/doc.txt", b"first\n")
    await client.upload("/doc.txt", b"second\n")
    async with connect(await agent_token(account, "reader", access="read")) as agent:
        assert (await ok(agent, "read", {"path": "/doc.txt"}))["text"] == "second\n"
        for tool, arguments in [
            ("write", {"path": "/doc.txt", "content": "changed"}),
            ("edit", {"path": "/doc.txt", "old_text": "second", "new_text": "third"}),
            ("delete", {"path": "/doc.txt"}),
            ("move", {"path": "/doc.txt", "new_path": "/moved.txt"}),
            ("restore", {"path": "/doc.txt", "version_id": first.version.version_id}),
            ("mkdir", {"path": "/new"}),
        ]:
            message = await refused(agent, tool, arguments)
            assert "read_only" in message, (tool, message)
    assert await client.read_bytes("/doc.txt") == b"second\n"
    assert [e.name for e in await client.listdir("/")] == ["doc.txt"]


async def test_edit_of_text_that_is_not_unique_fails_clearly(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    await client.upload("/list.txt", b"item\nother\nitem\n")
    async with connect(await agent_token(account, "editor")) as agent:
        message = await refused(agent, "edit", {"path": "/list.txt", "old_text": "item",
                                                "new_text": "thing"})  # fmt: skip
        assert "not unique" in message
        assert "2 times" in message
        assert "lines 1, 3" in message
        missing = await refused(agent, "edit", {"path": "/list.txt", "old_text": "absent",
                                                "new_text": "x"})  # fmt: skip
        assert "not found" in missing
        both = await ok(agent, "edit", {"path": "/list.txt", "old_text": "item",
                                        "new_text": "thing", "replace_all": True})  # fmt: skip
        assert both["replacements"] == 2
    assert await client.read_bytes("/list.txt") == b"thing\nother\nthing\n"
    assert len([v async for v in client.versions("/list.txt")]) == 2


async def test_binary_files_come_back_as_a_resource_or_a_refusal_with_size_and_type(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    small = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    await client.upload("/img/logo.png", small)
    await client.upload("/img/huge.png", b"\x89PNG\x00" + b"\x00" * (2 * 1024 * 1024))
    async with connect(await agent_token(account, "viewer", access="read")) as agent:
        result = await agent.call_tool("read", {"path": "/img/logo.png"})
        assert not result.is_error
        assert result.structured_content is not None
        assert result.structured_content["binary"] is True
        assert result.structured_content["mime_type"] == "image/png"
        (blob,) = [b for b in result.content if isinstance(b, types.EmbeddedResource)]
        assert isinstance(blob.resource, types.BlobResourceContents)
        assert blob.resource.uri == "meshfs:///img/logo.png"
        assert base64.b64decode(blob.resource.blob) == small

        message = await refused(agent, "read", {"path": "/img/huge.png"})
        assert "image/png" in message
        assert str(2 * 1024 * 1024 + 5) in message


async def test_bad_arguments_and_unknown_tools_are_tool_errors(
    account: Account, connect: Connect
) -> None:
    async with connect(await agent_token(account, "clumsy")) as agent:
        assert "unknown field `file`" in await refused(agent, "read", {"file": "/x"})
        assert "start_line" in await refused(agent, "read", {"path": "/x", "start_line": 0})
        assert "unknown tool" in await refused(agent, "format_disk", {})
        assert "not_found" in await refused(agent, "read", {"path": "/missing.txt"})
        assert "invalid_path" in await refused(agent, "write", {"path": "/a/../b", "content": ""})
        with pytest.raises(Exception, match="meshfs:///path"):
            await agent.read_resource("file:///etc/passwd")
        # The session is still usable after those errors.
        await ok(agent, "list", {"path": "/"})


async def test_every_tool_call_is_audited_with_the_agent(
    account: Account, client: MeshFSClient, connect: Connect
) -> None:
    async with connect(await agent_token(account, "audited")) as agent:
        await ok(agent, "write", {"path": "/a.txt", "content": "hello\n"})
        await ok(agent, "read", {"path": "/a.txt"})
        await refused(agent, "read", {"path": "/nope.txt"})
    page = await client.audit_page(action="mcp.tool.*")
    rows = [(r["action"], r["target"], r["outcome"], r["agent_name"]) for r in page["entries"]]
    assert rows == [
        ("mcp.tool.read", "/nope.txt", "error:not_found", "audited"),
        ("mcp.tool.read", "/a.txt", "ok", "audited"),
        ("mcp.tool.write", "/a.txt", "ok", "audited"),
    ]


async def test_http_endpoint_needs_a_valid_token(account: Account) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        missing = await http.post(account.server.url + "/mcp", json=body, headers=headers)
        wrong = await http.post(
            account.server.url + "/mcp",
            json=body,
            headers={**headers, "Authorization": "Bearer not-a-token"},
        )
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthenticated"
    assert wrong.status_code == 401


async def test_stdio_server_acts_with_the_stored_login_without_a_token(
    account: Account, client: MeshFSClient
) -> None:
    params = StdioServerParameters(
        command=str(Path(sys.executable).with_name("meshfs")), args=["mcp"], env=account.env()
    )
    async with Client(params, read_timeout_seconds=60) as agent:
        await ok(agent, "write", {"path": "/from-login.txt", "content": "hi\n"})
    (version,) = [v async for v in client.versions("/from-login.txt")]
    assert version.writer is not None
    assert version.writer.agent_name is None
    assert version.writer.device_name == "meshfs-client-tests"


def test_stdio_server_without_a_login_exits_with_one_clear_line(
    account: Account, tmp_path: Path
) -> None:
    env = account.env() | {"MESHFS_CONFIG_DIR": str(tmp_path / "empty")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("meshfs")), "mcp"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stdout == b""
    assert b"not logged in" in done.stderr
    assert b"Traceback" not in done.stderr
