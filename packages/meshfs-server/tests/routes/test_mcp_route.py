"""The MCP routes through the app: /mcp's authentication, body cap and description, and the
audit of tool calls. (The tools themselves run against a real server process in meshfs-client's
test_mcp_live.py: over HTTP they call this server's API on its listening address.)"""

from __future__ import annotations

from typing import Any

import httpx
from conftest import AuthHarness

MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def tools_list(**meta: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}


async def test_mcp_lists_tools_for_a_signed_in_caller_only(auth: AuthHarness) -> None:
    anonymous = await auth.client.post("/mcp", json=tools_list(), headers=MCP_HEADERS)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthenticated"
    token = (await auth.login("alice")).access_token
    async with auth.client_for(token) as alice:
        answer = await alice.post("/mcp", json=tools_list(), headers=MCP_HEADERS)
        assert answer.status_code == 200, answer.text
        tools = {tool["name"]: tool for tool in answer.json()["result"]["tools"]}
        assert {"read", "write", "edit", "search", "restore"} <= set(tools)
        assert tools["read"]["annotations"]["readOnlyHint"] is True
        assert tools["write"]["outputSchema"]["type"] == "object"
        # A request larger than the small-body cap of ordinary routes (a write carries a
        # file's text) is still served; the SDK's own 4 MiB cap is the route's.
        big = await alice.post("/mcp", json=tools_list(pad="x" * 300_000), headers=MCP_HEADERS)
        assert big.status_code == 200, big.text
        huge = await alice.post(
            "/mcp", json=tools_list(pad="x" * (5 * 1024 * 1024)), headers=MCP_HEADERS
        )
        assert huge.status_code == 413
        # Listing tools is not a mutation: no audit row for the transport's POSTs.
        rows = (await alice.get("/audit/recent", params={"limit": 1000})).json()["entries"]
        assert not [row for row in rows if row["action"].startswith("POST /mcp")]


async def test_tool_calls_are_recorded_with_the_caller(auth: AuthHarness) -> None:
    token = (await auth.login("bob")).access_token
    async with auth.client_for(token) as bob:
        done = await bob.post(
            "/audit/tool-calls",
            json={"tool": "edit", "target": "/proj/a.md", "outcome": "error:not_found"},
        )
        assert done.status_code == 204, done.text
        rows = (await bob.get("/audit/recent", params={"action": "mcp.tool.*"})).json()
        (row,) = rows["entries"]
        assert (row["action"], row["target"], row["outcome"]) == (
            "mcp.tool.edit",
            "/proj/a.md",
            "error:not_found",
        )
        assert row["user_id"] is not None
        everything = (await bob.get("/audit/recent", params={"limit": 1000})).json()["entries"]
        assert not [r for r in everything if r["action"] == "POST /audit/tool-calls"]


async def test_mcp_tool_calls_are_audited_in_process_with_the_callers_address(
    auth: AuthHarness,
) -> None:
    token = (await auth.login("dave")).access_token
    transport = httpx.ASGITransport(app=auth.transport.app, client=("203.0.113.7", 4711))
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://meshfs.test", headers=headers
    ) as dave:
        bad = {"name": "read", "arguments": {"path": "/a.txt", "start_line": 0}}
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": bad}
        answer = await dave.post("/mcp", json=call)
        assert answer.status_code == 200, answer.text
        result = answer.json()["result"]
        assert result["isError"] is True
        assert "start_line" in result["content"][0]["text"]
        rows = (await dave.get("/audit/recent", params={"action": "mcp.tool.*"})).json()
        (row,) = rows["entries"]
    assert (row["action"], row["target"], row["outcome"]) == (
        "mcp.tool.read",
        "/a.txt",
        "error:bad_request",
    )
    assert row["client_address"] == "203.0.113.7"


async def test_tool_call_records_are_checked(auth: AuthHarness) -> None:
    anonymous = await auth.client.post("/audit/tool-calls", json={"tool": "read"})
    assert anonymous.status_code == 401
    token = (await auth.login("carol")).access_token
    async with auth.client_for(token) as carol:
        for body, word in [
            ({"tool": "Read; DROP"}, "tool"),
            ({"tool": "read", "outcome": "fine"}, "outcome"),
            ({"tool": "read", "target": "/" + "a" * 5000}, "target"),
            ({"target": "/a"}, "tool"),
        ]:
            answer = await carol.post("/audit/tool-calls", json=body)
            assert answer.status_code == 400, (body, answer.text)
            assert word in answer.json()["error_description"]


async def test_openapi_describes_the_mcp_routes(auth: AuthHarness) -> None:
    doc = (await auth.client.get("/openapi.json")).json()
    mcp = doc["paths"]["/mcp"]["post"]
    assert {"401", "413", "429", "503"} <= set(mcp["responses"])
    assert mcp["tags"] == ["agents"]
    record = doc["paths"]["/audit/tool-calls"]["post"]
    assert {"204", "400", "401"} <= set(record["responses"])
    assert "ToolCallRecord" in doc["components"]["schemas"]
