"""HTTP plumbing: one aiohttp session, auth headers, the error envelope, retries, timeouts.

Every request goes through :meth:`Transport.request` (answers read whole) or
:meth:`Transport.open` (answers streamed). Both

* send the bearer token and, on a 401, renew it once and resend,
* turn error envelopes into :mod:`meshfs_common.errors` exceptions and network failures into
  :class:`~meshfs_common.errors.UnavailableError` (or :class:`ServerUnreachableError`),
* retry per :func:`meshfs_client._retry.should_retry`; the caller says whether the request is
  idempotent, because only the endpoint's contract can tell.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import msgspec

from meshfs_client._auth import TokenSource
from meshfs_client._retry import (
    RetryListener,
    RetryPolicy,
    ServerUnreachableError,
    call_with_retry,
)
from meshfs_client._settings import Timeouts
from meshfs_common.errors import (
    GatewayTimeoutError,
    InternalError,
    MeshFSError,
    UnavailableError,
    error_from_envelope,
)
from meshfs_common.models import ErrorBody, encode

T = TypeVar("T")

Params = Mapping[str, str | int | bool | None]
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete HTTP answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def decode(self, model: type[T]) -> T:
        """The JSON body as *model*."""
        return decode_body(self.body, model)


def decode_body(body: bytes, model: type[T]) -> T:
    """Decode a JSON answer; a malformed one is the server's fault, not the caller's."""
    try:
        return msgspec.json.decode(body, type=model)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InternalError(f"unexpected answer from the server: {exc}") from exc


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_reply(status: int, headers: Mapping[str, str], body: bytes) -> MeshFSError:
    """The typed exception for an error answer (envelope or not)."""
    envelope: dict[str, Any] | None = None
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        parsed = msgspec.json.decode(body, type=ErrorBody)
        envelope = msgspec.structs.asdict(parsed)
    return error_from_envelope(
        status, envelope, retry_after=parse_retry_after(headers.get("Retry-After"))
    )


def network_error(exc: BaseException, what: str) -> MeshFSError:
    """Map an aiohttp/asyncio failure to the MeshFS error a caller can handle."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ServerUnreachableError(f"cannot connect to the server for {what}: {exc}")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return GatewayTimeoutError(f"timed out during {what}")
    return UnavailableError(f"connection to the server failed during {what}: {exc}")


class Transport:
    """Sends MeshFS requests to one server."""

    def __init__(
        self,
        server: str,
        session: aiohttp.ClientSession,
        auth: TokenSource,
        *,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> None:
        self.server = server
        self.session = session
        self.auth = auth
        self.retry = retry
        self.timeouts = timeouts
        self.retry_listeners: list[RetryListener] = []

    def _waiting(self, exc: MeshFSError, seconds: float) -> None:
        for listener in list(self.retry_listeners):
            listener(exc, seconds)

    def tell_waiting(self, exc: MeshFSError, seconds: float) -> None:
        """Tell the retry listeners about a wait their caller makes itself (a bulk transfer
        resuming after the server's rate limit stopped it)."""
        self._waiting(exc, seconds)

    def url(self, path: str) -> str:
        """Absolute URL of an endpoint path."""
        return self.server + path

    async def _headers(
        self, extra: Mapping[str, str] | None, authenticated: bool
    ) -> dict[str, str]:
        headers = dict(extra or {})
        if authenticated:
            token = await self.auth.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    @contextlib.asynccontextmanager
    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Params | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
        limits: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One attempt (plus one resend after a token renewal); yields a successful answer."""
        query = _query(params)
        for renewed in (False, True):
            sent = await self._headers(headers, authenticated)
            try:
                response = await self.session.request(
                    method, self.url(path), params=query, data=body, headers=sent, timeout=limits
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise network_error(exc, f"{method} {path}") from exc
            try:
                if response.status == 401 and authenticated and not renewed:
                    rejected = sent.get("Authorization", "").removeprefix("Bearer ") or None
                    if await self.auth.renew(rejected):
                        continue
                if response.status >= 400:
                    try:
                        error_body = await response.content.read(_ERROR_BODY_LIMIT)
                    except (aiohttp.ClientError, TimeoutError):
                        error_body = b""
                    raise error_from_reply(response.status, response.headers, error_body)
                yield response
                return
            finally:
                response.release()
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        authenticated: bool = True,
        retry: RetryPolicy | None = None,
    ) -> Reply:
        """Send a request and read the whole answer, retrying per the policy."""
        send_headers = dict(headers or {})
        body = data
        if json is not None:
            body = encode(json)
            send_headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            send_headers.setdefault("Content-Type", "application/octet-stream")
        limits = self.timeouts.for_transfer() if data is not None else self.timeouts.for_request()

        async def attempt() -> Reply:
            async with self._exchange(
                method,
                path,
                params=params,
                body=body,
                headers=send_headers,
                authenticated=authenticated,
                limits=limits,
            ) as response:
                try:
                    payload = await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise network_error(exc, f"{method} {path}") from exc
                return Reply(response.status, response.headers, payload)

        return await call_with_retry(
            attempt, retry or self.retry, idempotent=idempotent, on_wait=self._waiting
        )

    async def call(
        self,
        method: str,
        path: str,
        model: type[T],
        *,
        params: Params | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        authenticated: bool = True,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Send a request and decode its JSON answer as *model*."""
        reply = await self.request(
            method,
            path,
            params=params,
            json=json,
            data=data,
            headers=headers,
            idempotent=idempotent,
            authenticated=authenticated,
            retry=retry,
        )
        return reply.decode(model)

    async def put_external(self, url: str, data: bytes, headers: Mapping[str, str]) -> None:
        """PUT bytes to a presigned object-store URL (direct transfer; no MeshFS token).

        Idempotent: the URL names one immutable chunk.
        """

        async def attempt() -> None:
            try:
                async with self.session.put(
                    url, data=data, headers=dict(headers), timeout=self.timeouts.for_transfer()
                ) as response:
                    body = await response.read()
                    if response.status >= 400:
                        raise error_from_reply(response.status, response.headers, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise network_error(exc, "direct upload") from exc

        await call_with_retry(attempt, self.retry, idempotent=True, on_wait=self._waiting)

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streamed answer (GET/HEAD only: retried until the status line arrives).

        Failures while reading the body are the caller's to handle (see ``_download``).
        """
        stack = contextlib.AsyncExitStack()

        async def attempt() -> aiohttp.ClientResponse:
            cm = self._exchange(
                method,
                path,
                params=params,
                body=None,
                headers=headers,
                authenticated=True,
                limits=self.timeouts.for_transfer(),
            )
            return await stack.enter_async_context(cm)

        async with stack:
            yield await call_with_retry(attempt, self.retry, idempotent=True, on_wait=self._waiting)

    async def websocket(
        self, path: str, *, params: Params | None = None, heartbeat: float = 30.0
    ) -> aiohttp.ClientWebSocketResponse:
        """Open a WebSocket (no retries: the caller owns reconnecting)."""
        for renewed in (False, True):
            sent = await self._headers(None, True)
            try:
                return await self.session.ws_connect(
                    self.url(path),
                    params=_query(params),
                    headers=sent,
                    heartbeat=heartbeat,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self.timeouts.connect),
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401 and not renewed:
                    rejected = sent.get("Authorization", "").removeprefix("Bearer ") or None
                    if await self.auth.renew(rejected):
                        continue
                raise error_from_envelope(
                    exc.status,
                    {"error_description": f"WebSocket refused: HTTP {exc.status} {exc.message}"},
                ) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise network_error(exc, f"WebSocket {path}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _query(params: Params | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out
