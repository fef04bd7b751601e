"""Every client mistake is a 4xx in the shared envelope and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from meshfs_common.errors import ERROR_TABLE
from meshfs_server.app import all_routes


def assert_envelope(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code
    assert body["error_description"]
    assert ERROR_TABLE[code].status == status


async def test_unauthenticated(client: httpx.AsyncClient) -> None:
    r = await client.get("/files/list", params={"path": "/"}, headers={"Authorization": "Bearer x"})
    assert_envelope(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_unknown_endpoint_and_method(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/nope"), 404, "not_found")
    assert_envelope(await client.get("/files/mkdir"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("content", "headers", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, "bad_request"),
        (b'{"path": 5}', {"content-type": "application/json"}, "bad_request"),
        (b"{}", {"content-type": "application/json"}, "bad_request"),
        (
            b"path=/a",
            {"content-type": "application/x-www-form-urlencoded"},
            "unsupported_media_type",
        ),
    ],
)
async def test_bad_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict, code: str
) -> None:
    r = await client.post("/files/mkdir", content=content, headers=headers)
    assert_envelope(r, ERROR_TABLE[code].status, code)
    listing = await client.get("/files/list", params={"path": "/"})
    assert listing.json()["entries"] == []


async def test_bad_query_values(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/sync/pull", params={"cursor": "-1"}), 400, "bad_request")
    assert_envelope(await client.get("/sync/pull", params={"cursor": "x"}), 400, "bad_request")
    assert_envelope(await client.get("/sync/pull", params={"limit": "5000"}), 400, "bad_request")
    r = await client.delete("/files", params={"path": "/a", "recursive": "maybe"})
    assert_envelope(r, 400, "bad_request")


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = (await client.get("/readyz")).json()
    assert ready["checks"] == {"database": "ok", "content": "ok"}


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    app_routes = {getattr(route, "path", None) for route in all_routes()} - {None}
    assert app_routes <= set(doc["paths"]), app_routes - set(doc["paths"])
    put = doc["paths"]["/files/content"]["put"]
    assert "application/octet-stream" in put["requestBody"]["content"]
    assert "412" in put["responses"]
    for schema in ("Entry", "ChangeEvent", "ErrorBody", "UploadInitRequest"):
        assert schema in doc["components"]["schemas"]
