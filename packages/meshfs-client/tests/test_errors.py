"""Error envelopes become typed exceptions; exceptions become documented exit codes."""

from __future__ import annotations

import email.utils
import errno

import pytest

from meshfs_client._retry import ServerUnreachableError
from meshfs_client._transport import error_from_reply, parse_retry_after
from meshfs_client.cli._errors import exit_code_for
from meshfs_common.errors import (
    AlreadyExistsError,
    AuthError,
    DeviceFlowError,
    InternalError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    UnavailableError,
)


def test_envelope_becomes_typed_error_with_message_and_detail() -> None:
    body = b'{"error": "not_found", "error_description": "no such file: /a", "detail": {"p": 1}}'
    exc = error_from_reply(404, {}, body)
    assert isinstance(exc, NotFoundError)
    assert exc.message == "no such file: /a"
    assert exc.detail == {"p": 1}


def test_rate_limit_uses_retry_after_header() -> None:
    body = b'{"error": "rate_limited", "error_description": "slow down"}'
    exc = error_from_reply(429, {"Retry-After": "7"}, body)
    assert isinstance(exc, RateLimitedError)
    assert exc.retry_after == 7.0


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_non_json_gateway_error_is_unavailable() -> None:
    exc = error_from_reply(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(exc, UnavailableError)
    assert exc.retryable


def test_unknown_500_is_internal_and_not_retryable() -> None:
    exc = error_from_reply(500, {}, b"")
    assert isinstance(exc, InternalError)
    assert not exc.retryable


def test_device_flow_codes() -> None:
    exc = error_from_reply(400, {}, b'{"error": "slow_down", "error_description": "x"}')
    assert isinstance(exc, DeviceFlowError)
    assert exc.code == "slow_down"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthError("x"), 3),
        (DeviceFlowError("access_denied", "x"), 3),
        (NotFoundError("x"), 4),
        (AlreadyExistsError("x"), 5),
        (ServerUnreachableError("x"), 6),
        (RateLimitedError("x"), 6),
        (QuotaExceededError("x"), 8),
        (InternalError("x"), 1),
        (FileNotFoundError(errno.ENOENT, "No such file", "/tmp/x"), 4),
        (PermissionError(errno.EACCES, "denied"), 7),
    ],
)
def test_exit_codes(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code
