"""JSON answers carry the headers Starlette would give them, however they are built."""

from __future__ import annotations

import pytest
from starlette.responses import Response

from meshfs_common.models import encode
from meshfs_server.http.codec import JSONResponse


@pytest.mark.parametrize("status", [200, 201, 204, 304, 404, 429, 503])
@pytest.mark.parametrize("headers", [None, {}, {"Retry-After": "2"}, {"Content-Type": "x/y"}])
def test_a_json_answer_has_starlettes_headers(status: int, headers: dict[str, str] | None) -> None:
    model = {"path": "/docs/a.txt", "size": 3}
    built = JSONResponse(model, status_code=status, headers=headers)
    plain = Response(encode(model), status_code=status, headers=headers,
                     media_type="application/json")  # fmt: skip
    assert built.raw_headers == plain.raw_headers
    assert built.body == plain.body
