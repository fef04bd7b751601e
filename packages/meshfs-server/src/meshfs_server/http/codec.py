"""Request parsing and response rendering shared by every route."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from meshfs_common.errors import BadRequestError, UnsupportedMediaTypeError
from meshfs_common.hashing import CHUNK_SIZE
from meshfs_common.models import encode

T = TypeVar("T")
#: Request body caps (bytes), enforced for every route by :class:`~.limits.BodyLimit` before
#: the body is read: small for sign-in and metadata, a chunk list for upload init, one chunk
#: for an upload part. ``None`` (one-shot writes) streams to the store without a cap.
SMALL_BODY = 64 * 1024
CHUNK_LIST_BODY = 4 * 1024 * 1024
PART_BODY = CHUNK_SIZE
#: The largest integer a query parameter or header may carry (the databases' 64-bit integer).
MAX_INTEGER = 2**63 - 1


_JSON = "application/json"


class JSONResponse(Response):
    """A response whose body is a msgspec-encoded model."""

    media_type = _JSON

    def render(self, content: Any) -> bytes:
        return encode(content)

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # Most answers carry no headers of their own: their two are written directly (the
        # ones Starlette's init_headers would write for them).
        status = self.status_code
        if (
            headers is None
            and self.media_type == _JSON
            and status >= 200
            and status not in (204, 304)
        ):
            self.raw_headers = [
                (b"content-length", str(len(self.body)).encode()),
                (b"content-type", b"application/json"),
            ]
            return
        super().init_headers(headers)


def respond(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(model, status_code=status, headers=headers)


async def parse_json(request: Request, model: type[T], *, optional: bool = False) -> T:
    """Decode the JSON body into *model*; a bad body is a 400 that says what is wrong."""
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    body = await request.body()
    if not body and optional:
        return msgspec.json.decode(b"{}", type=model)
    if kind not in ("application/json", ""):
        raise UnsupportedMediaTypeError(f"send application/json, not {kind}")
    try:
        decoded = msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        raise BadRequestError(f"invalid request body: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequestError("request body is not valid JSON") from None
    _note_body_target(request, decoded)
    return decoded


#: Scope key: what a request acts on, for its audit row (see :func:`acted_on`).
ACTED_ON = "meshfs.acted_on"


def acted_on(conn: HTTPConnection, target: str, **detail: str) -> None:
    """Name what this request acts on (a path, or an object's id) for its audit row; *detail*
    adds to the row (a rename's ``new_path``)."""
    conn.scope[ACTED_ON] = (target, detail)


def _note_body_target(conn: HTTPConnection, body: object) -> None:
    """A JSON body that names a path (or an upload, or a named object) is what its request
    acts on: mkdir's and rename's paths travel in the body, not the URL."""
    for name in ("path", "upload_id", "name"):
        value = getattr(body, name, None)
        if isinstance(value, str) and value:
            new_path = getattr(body, "new_path", None)
            extra = {"new_path": new_path} if isinstance(new_path, str) else {}
            acted_on(conn, value, **extra)
            return


#: Scope key: the request's query parameters, parsed once (middleware and route both ask).
QUERY_KEY = "meshfs.query"


def parse_query(raw: bytes) -> dict[str, str]:
    """Query parameters by name, the last value of a repeated one: what Starlette's
    ``query_params.get`` answers. Most queries (``path=/docs/a.txt``) have nothing to unquote
    and are split directly; any ``%`` or ``+`` goes through :func:`urllib.parse.parse_qsl`."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    found: dict[str, str] = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            found[name] = value
    return found


def query_params(conn: HTTPConnection) -> Mapping[str, str]:
    """The query parameters of a request or WebSocket (see :func:`parse_query`), parsed once."""
    scope = conn.scope
    found: dict[str, str] | None = scope.get(QUERY_KEY)
    if found is None:
        found = scope[QUERY_KEY] = parse_query(scope.get("query_string", b""))
    return found


def query_str(request: HTTPConnection, name: str) -> str | None:
    return query_params(request).get(name)


def parse_int(raw: str, what: str, *, minimum: int = 0, maximum: int = MAX_INTEGER) -> int:
    """The integer *raw* spells in ASCII digits (an optional leading ``-``), within
    ``[minimum, maximum]``; anything else is a 400 naming *what*.

    The one parser of client-sent integers: ``int()`` alone would accept other scripts' digits
    (``"²"``, ``"٣"``), underscores and surrounding spaces, and numbers no database stores.
    """
    text = raw.strip(" \t")
    digits = text.removeprefix("-")
    bounds = f"an integer from {minimum} to {maximum}"
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        raise BadRequestError(f"{what} must be {bounds}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadRequestError(f"{what} must be {bounds}")
    return value


def query_int(
    request: HTTPConnection,
    name: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = MAX_INTEGER,
) -> int | None:
    """Integer query parameter *name* (see :func:`parse_int`); *default* when absent or empty."""
    raw = query_params(request).get(name)
    if raw is None or raw == "":
        return default
    return parse_int(raw, f"query parameter {name}", minimum=minimum, maximum=maximum)


def query_bool(request: HTTPConnection, name: str, default: bool = False) -> bool:
    raw = query_params(request).get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no", ""):
        return False
    raise BadRequestError(f"query parameter {name} must be true or false")


def if_match(request: Request) -> str | None:
    """The version (or node) id in ``If-Match``, without quotes or weak prefix."""
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    value = raw.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def if_none_match_any(request: Request) -> bool:
    """True for ``If-None-Match: *`` (create only)."""
    return request.headers.get("if-none-match", "").strip() == "*"


# --- endpoint descriptions for the OpenAPI document ---------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    where: str = "query"  # query | path | header
    type: str = "string"
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class Endpoint:
    """How one route appears in /openapi.json."""

    summary: str
    request: type[Any] | None = None
    request_media: str = "application/json"
    response: type[Any] | None = None
    response_media: str = "application/json"
    status: int = 200
    params: tuple[Param, ...] = ()
    errors: tuple[str, ...] = ()
    auth: bool = True
    tags: tuple[str, ...] = ()
    extra_responses: dict[int, str] = field(default_factory=dict)
    max_body: int | None = SMALL_BODY
    """The request body cap in bytes (413 above it); None: streamed without a cap."""
    error_media: str = "application/json"
    """How the operation renders its own errors (``text/html`` for the approval page)."""


def endpoint(spec: Endpoint) -> Callable[[T], T]:
    def mark(func: T) -> T:
        func.__dict__["openapi"] = spec
        return func

    return mark


PATH_OR_NODE = (
    Param("path", description="file or directory path"),
    Param("node_id", description="node id (instead of path)"),
)
IF_MATCH = Param(
    "If-Match", "header", description="expected head version id (node id for a directory)"
)
IF_NONE_MATCH = Param("If-None-Match", "header", description="'*': only create, never replace")
