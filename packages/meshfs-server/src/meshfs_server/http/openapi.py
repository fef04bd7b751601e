"""The OpenAPI 3.1 document, built from the routes' :class:`Endpoint` descriptions and the
msgspec wire models (so the document cannot drift from what the server parses)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from meshfs_common.errors import ERROR_TABLE
from meshfs_common.models import ErrorBody, StreamMessage
from meshfs_server.http.codec import Endpoint, endpoint, respond

REF = "#/components/schemas/{name}"


def build_document(routes: list[BaseRoute], version: str) -> dict[str, Any]:
    described: list[tuple[str, str, Endpoint]] = []
    models: set[type[Any]] = {ErrorBody, StreamMessage}
    for route in routes:
        if isinstance(route, Route):
            spec: Endpoint | None = getattr(route.endpoint, "openapi", None)
            if spec is None:
                continue
            for method in sorted((route.methods or set()) - {"HEAD"} or {"GET"}):
                described.append((route.path, method.lower(), spec))
            for model in (spec.request, spec.response):
                if isinstance(model, type) and issubclass(model, msgspec.Struct):
                    models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, components = msgspec.json.schema_components(ordered, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, spec in described:
        paths.setdefault(path, {})[method] = _operation(path, method, spec)
    for route in routes:
        if isinstance(route, WebSocketRoute):
            paths.setdefault(route.path, {})["get"] = {
                "summary": "WebSocket of StreamMessage (upgrade); see docs/http-api.md",
                "tags": ["sync"],
                "parameters": [_param("cursor", "query", "integer", False, "resume after")],
                "responses": {
                    "101": {"description": "switching protocols"},
                    **{
                        str(ERROR_TABLE[code].status): {
                            "description": code,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": REF.format(name="ErrorBody")}
                                }
                            },
                        }
                        for code in WEBSOCKET_ERRORS
                    },
                },
                "security": [{"bearer": []}],
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MeshFS",
            "version": version,
            "description": "Cloud filesystem shared by people and agents. Errors use the "
            "envelope ErrorBody; codes and statuses: "
            + ", ".join(f"{c}={s.status}" for c, s in ERROR_TABLE.items()),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _param(name: str, where: str, kind: str, required: bool, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": {"type": kind},
        "description": description,
    }


def _content(model: Any, media: str) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, msgspec.Struct):
        return {media: {"schema": {"$ref": REF.format(name=model.__name__)}}}
    if model is bytes:
        return {media: {"schema": {"type": "string", "format": "binary"}}}
    return {media: {"schema": {"type": "string"}}}


def error_codes(spec: Endpoint) -> list[str]:
    """Every error code an operation can answer with: its own (``spec.errors``) and those
    of the layers every request goes through, so no operation can leave them out."""
    codes = list(spec.errors)
    if spec.auth:
        codes.append("unauthenticated")
    if spec.request is not None and spec.request_media == "application/json":
        codes += ["bad_request", "unsupported_media_type"]  # parse_json
    if any(p.type in ("integer", "boolean") and p.where != "path" for p in spec.params):
        codes.append("bad_request")  # query_int / query_bool
    if spec.max_body is not None:
        codes.append("payload_too_large")  # BodyLimit: every body is capped
    # Every operation can be rate limited, and answers 503 while a backend is down.
    codes += ["rate_limited", "unavailable"]
    return list(dict.fromkeys(codes))


#: How a WebSocket handshake can be refused (an HTTP answer before the upgrade).
WEBSOCKET_ERRORS = ("bad_request", "unauthenticated", "rate_limited", "unavailable")


def _operation(path: str, method: str, spec: Endpoint) -> dict[str, Any]:
    params = [_param(p.name, p.where, p.type, p.required, p.description) for p in spec.params]
    named = {p.name for p in spec.params}
    for name in re.findall(r"{(\w+)}", path):
        if name not in named:
            params.append(_param(name, "path", "string", True, ""))
    responses: dict[str, Any] = {
        str(spec.status): {
            "description": "success",
            **({"content": _content(spec.response, spec.response_media)} if spec.response else {}),
        }
    }
    for status, text in spec.extra_responses.items():
        responses[str(status)] = {"description": text}
    error_ref: dict[str, Any] = {
        "application/json": {"schema": {"$ref": REF.format(name="ErrorBody")}}
    }
    if spec.error_media != "application/json":  # a page: its own errors are pages too
        error_ref = {spec.error_media: {"schema": {"type": "string"}}, **error_ref}
    for code in error_codes(spec):
        row = ERROR_TABLE[code]
        entry = responses.setdefault(str(row.status), {"description": "", "content": error_ref})
        entry["description"] = ", ".join(filter(None, [entry.get("description"), code]))
        entry.setdefault("content", error_ref)
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": method + "_" + re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_"),
        "tags": list(spec.tags),
        "parameters": params,
        "responses": responses,
    }
    if spec.request is not None:
        operation["requestBody"] = {
            "required": spec.request_media != "application/json"
            or method != "post"
            or spec.request.__name__ not in ("RestoreRequest",),
            "content": _content(spec.request, spec.request_media),
        }
    elif spec.request_media == "application/octet-stream":
        operation["requestBody"] = {
            "required": True,
            "content": _content(bytes, spec.request_media),
        }
    operation["security"] = [{"bearer": []}] if spec.auth else []
    return operation


@endpoint(Endpoint("This OpenAPI document", auth=False, tags=("service",)))
async def openapi(request: Request) -> Response:
    from meshfs_server import __version__

    cached = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = build_document(request.app.routes, __version__)
        request.app.state.openapi = cached
    return respond(cached)


routes = [Route("/openapi.json", openapi, methods=["GET"])]
