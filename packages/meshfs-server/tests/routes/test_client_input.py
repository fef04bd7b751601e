"""No client input is a 5xx: integers beyond 64 bits or in other scripts' digits are a 400, and
arbitrary bytes, text and numbers in every query parameter and header the API reads (walked
from the route table and its OpenAPI descriptions) never make the server fail."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import pytest
from conftest import AuthHarness, Harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route, WebSocketRoute

from meshfs_server.app import all_routes
from meshfs_server.http.codec import Endpoint
from meshfs_server.settings import Settings

TOO_BIG = str(2**63)


@pytest.fixture
def auth_settings(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    return Settings(
        data_dir=tmp_path / "auth-data", gc_grace_seconds=0, rate_limit_per_minute=10**9,
        **backend,
    )  # fmt: skip


# --- the reported cases ---------------------------------------------------------------------


async def test_audit_before_beyond_64_bits_is_400(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    async with auth.client_for(tokens.access_token) as client:
        for before in (TOO_BIG, "-" + TOO_BIG, "9" * 5000):
            answer = await client.get("/audit/recent", params={"before": before})
            assert answer.status_code == 400, answer.text
            assert "before" in answer.json()["error_description"]
        assert (await client.get("/audit/recent", params={"before": 2**63 - 1})).status_code == 200
        too_many = await client.get("/audit/recent", params={"limit": 1001})
        assert too_many.status_code == 400


@pytest.mark.parametrize("value", [TOO_BIG, "²", "٣", "1_000", "1e3", "0x10", "\uff11\uff12"])
async def test_integer_query_parameters_take_ascii_digits_in_range(
    client: httpx.AsyncClient, value: str
) -> None:
    for route, name in (
        ("/sync/pull", "cursor"),
        ("/sync/pull", "limit"),
        ("/files/list", "limit"),
    ):
        answer = await client.get(route, params={name: value})
        assert answer.status_code == 400, (route, name, value, answer.text)
        assert answer.json()["error"] == "bad_request"
        assert f"query parameter {name} must be an integer" in answer.json()["error_description"]


async def test_largest_cursor_is_answered(client: httpx.AsyncClient) -> None:
    answer = await client.get("/sync/pull", params={"cursor": 2**63 - 1})
    assert answer.status_code == 200
    assert answer.json()["reset"] is True


@pytest.mark.parametrize("value", [b"\xb2", "²".encode(), b"\xd9\xa3", TOO_BIG.encode(), b"x1"])
async def test_last_event_id_takes_ascii_digits(harness: Harness, value: bytes) -> None:
    answer = await harness.client.get("/sync/stream", headers={"Last-Event-ID": value})
    assert answer.status_code == 400
    assert "Last-Event-ID" in answer.json()["error_description"]


# --- every query parameter and header, arbitrary values -------------------------------------

#: Headers read on every route or by the layers in front of them (body limits, sign-in, the
#: approval page's origin check), besides each operation's documented ones.
COMMON_HEADERS = ("authorization", "content-type", "origin", "host")


def _operations() -> list[tuple[str, str, Endpoint | None]]:
    found: list[tuple[str, str, Endpoint | None]] = []
    for route in all_routes():
        if isinstance(route, Route):
            spec = getattr(route.endpoint, "openapi", None)
            for method in sorted(route.methods or {"GET"}):
                found.append((route.path, method, spec))
        elif isinstance(route, WebSocketRoute):
            found.append((route.path, "WEBSOCKET", None))
    return found


OPERATIONS = _operations()

NUMBERS = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**63 - 2, max_value=2**80).map(str),
    st.sampled_from(["²", "٣", "1_000", " 7", "+1", "-1", "1e3", "0x1f", "", "9" * 5000, "\uff11"]),
)


def _header_bytes(raw: bytes) -> bytes:
    """*raw* as a field value an HTTP/1.1 server passes on (no controls, no outer space)."""
    return bytes(b for b in raw if b == 9 or (b >= 0x20 and b != 0x7F)).strip(b" \t")


QUERY_VALUES = st.one_of(
    NUMBERS.map(lambda s: quote(s, safe="")),
    st.text(max_size=60).map(lambda s: quote(s, safe="")),
    st.binary(max_size=60).map(lambda b: quote_from_bytes(b, safe="")),
)
#: Integer parameters get numbers (of every size and script) most of the time.
INTEGER_QUERY_VALUES = st.one_of(NUMBERS.map(lambda s: quote(s, safe="")), QUERY_VALUES)
HEADER_VALUES = st.one_of(
    NUMBERS.map(str.encode),
    # Latin-1 bytes that Python calls digits ("\xb2" is "²").
    st.lists(st.sampled_from(b"\xb2\xb3\xb90123456789"), min_size=1, max_size=25).map(bytes),
    st.text(max_size=60).map(lambda s: _header_bytes(s.encode())),
    st.binary(max_size=60).map(_header_bytes),
)
PATH_SEGMENTS = st.text(  # as a server decodes them: UTF-8, so no lone surrogates
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=40
)


def _scope(method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict:
    websocket = method == "WEBSOCKET"
    scope: dict[str, Any] = {
        "type": "websocket" if websocket else "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws" if websocket else "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8787),
        "extensions": {"websocket.http.response": {}} if websocket else {},
    }
    if not websocket:
        scope["method"] = method
    return scope


async def answer_of(app: Any, scope: dict[str, Any]) -> tuple[int, int | None]:
    """Drive *app* with *scope* (no body); the status it answers (101 for an accepted
    WebSocket) and the WebSocket close code, if any. The client leaves once the answer starts
    (so a stream ends), and anything the app raises propagates."""
    started = asyncio.Event()
    answer: list[int] = []
    closed: list[int] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            if scope["type"] == "websocket":
                return {"type": "websocket.connect"}
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        if scope["type"] == "websocket":
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            answer.append(int(message["status"]))
        elif kind == "websocket.accept":
            answer.append(101)
        elif kind == "websocket.close":
            closed.append(int(message.get("code", 1000)))
            answer.append(answer[0] if answer else 403)
        started.set()

    await asyncio.wait_for(app(scope, receive, send), 30)
    assert answer, "the app ended without answering"
    return answer[0], closed[0] if closed else None


@pytest.mark.parametrize(("path", "method", "spec"), OPERATIONS, ids=lambda v: str(v)[:40])
@settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(data=st.data())
async def test_no_query_or_header_value_is_a_server_error(
    auth: AuthHarness, path: str, method: str, spec: Endpoint | None, data: st.DataObject
) -> None:
    token = getattr(auth, "_fuzz_token", None)
    if token is None:
        token = (await auth.login("fuzz")).access_token
        auth._fuzz_token = token  # type: ignore[attr-defined]
    documented = spec.params if spec is not None else ()
    integers = {p.name for p in documented if p.where == "query" and p.type == "integer"}
    query_names = {p.name for p in documented if p.where == "query"} | {"access_token"}
    header_names = {p.name.lower() for p in documented if p.where == "header"}
    header_names |= set(COMMON_HEADERS)
    if path == "/sync/stream" or method == "WEBSOCKET":
        header_names.add("last-event-id")

    concrete = re.sub(r"{\w+}", lambda _: data.draw(PATH_SEGMENTS), path)
    # One parameter in focus always gets a hostile value; the others come along now and then
    # (so that one of them refused first does not hide the focus from the parser).
    focus = data.draw(st.sampled_from(sorted(query_names)), label="focus")
    query = {
        name: data.draw(INTEGER_QUERY_VALUES if name in integers else QUERY_VALUES, label=name)
        for name in sorted(query_names)
        if name != focus and data.draw(st.integers(0, 3), label=f"send {name}") == 0
    }
    query[focus] = data.draw(
        NUMBERS.map(lambda s: quote(s, safe="")) if focus in integers else QUERY_VALUES,
        label=focus,
    )
    if method == "WEBSOCKET" and "access_token" not in query and data.draw(st.booleans()):
        query["access_token"] = token
    headers: list[tuple[bytes, bytes]] = []
    for name in sorted(header_names):
        if name == "authorization" and data.draw(st.booleans(), label="signed in"):
            headers.append((b"authorization", f"Bearer {token}".encode()))
        elif data.draw(st.booleans(), label=f"send {name}"):
            headers.append((name.encode(), data.draw(HEADER_VALUES, label=name)))
    query_string = "&".join(f"{k}={v}" for k, v in query.items()).encode()

    status, close_code = await answer_of(
        auth.transport.app, _scope(method, concrete, query_string, headers)
    )
    assert status < 500, (method, concrete, query_string, headers, status)
    assert close_code is None or close_code != 1011
