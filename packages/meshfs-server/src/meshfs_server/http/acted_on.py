"""What a request acts on, for its audit row: named by the route, or read from the request."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from meshfs_server.http.codec import ACTED_ON


def request_target(conn: HTTPConnection) -> tuple[str, dict[str, str]]:
    """What a request acts on, for its audit row, and details to go with it: what the route
    named (a JSON body's path, the file an upload was committed to), else the ``path`` query
    parameter, else the ids in the URL (the first is the target), else the URL's path."""
    ids = {k: str(v) for k, v in (conn.scope.get("path_params") or {}).items()}
    noted = conn.scope.get(ACTED_ON)
    if noted is not None:
        return noted[0], {**ids, **noted[1]}
    path = conn.query_params.get("path")
    if path:
        return path, ids
    if ids:
        first = next(iter(ids))
        return ids[first], {k: v for k, v in ids.items() if k != first}
    return conn.url.path, {}
