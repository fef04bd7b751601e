"""The error table and the envelope round trip (meshfs_common.errors)."""

from __future__ import annotations

import errno

import pytest

from meshfs_common import errors
from meshfs_common.errors import (
    ERROR_TABLE,
    DeviceFlowError,
    MeshFSError,
    RateLimitedError,
    error_from_envelope,
    spec_for,
)
from meshfs_common.models import ErrorBody, decode, encode

DEVICE_FLOW_CODES = [
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "invalid_grant",
]


def _all_error_classes() -> list[type[MeshFSError]]:
    found: list[type[MeshFSError]] = []
    todo: list[type[MeshFSError]] = [MeshFSError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == errors.__name__ and c is not DeviceFlowError]


ERROR_CLASSES = _all_error_classes()


def _make(code: str) -> MeshFSError:
    """An instance carrying *code*, built from the most specific class for it."""
    if code in DEVICE_FLOW_CODES:
        return DeviceFlowError(code, f"device flow: {code}")
    candidates = [c for c in ERROR_CLASSES if c.code == code and c is not MeshFSError]
    # The most derived class: the one no other candidate inherits from.
    leaf = [c for c in candidates if not any(o is not c and issubclass(o, c) for o in candidates)]
    assert leaf, f"no exception class for {code}"
    return leaf[0](f"failure {code}", detail={"path": "/a", "n": 1})


def _round_trip(exc: MeshFSError) -> MeshFSError:
    """Through the wire exactly as server and client do it: envelope -> JSON -> envelope."""
    body = decode(encode(ErrorBody(**exc.to_envelope())), ErrorBody)
    raw = {
        k: v
        for k, v in (
            ("error", body.error),
            ("error_description", body.error_description),
            ("detail", body.detail),
        )
        if v is not None
    }
    return error_from_envelope(exc.status, raw)


def test_table_rows_are_consistent() -> None:
    for code, spec in ERROR_TABLE.items():
        assert spec.code == code
        assert 400 <= spec.status <= 599
        assert spec.errno in errno.errorcode
    # Retrying unchanged must be safe only where the server promises it.
    retryable = {c for c, s in ERROR_TABLE.items() if s.retryable}
    assert retryable == {"hash_mismatch", "rate_limited", "unavailable", "timeout"}


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_code_round_trips_through_the_envelope(code: str) -> None:
    original = _make(code)
    assert original.code == code
    back = _round_trip(original)
    assert type(back) is type(original)
    assert back.code == code
    assert back.status == ERROR_TABLE[code].status == original.status
    assert back.errno == ERROR_TABLE[code].errno
    assert back.retryable == ERROR_TABLE[code].retryable
    assert back.message == original.message
    if not isinstance(original, DeviceFlowError | RateLimitedError):
        assert back.detail == original.detail


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_class_has_a_table_row_and_survives_the_wire(cls: type[MeshFSError]) -> None:
    assert cls.code in ERROR_TABLE
    exc = cls("boom")
    back = _round_trip(exc)
    # ConflictError shares already_exists with AlreadyExistsError; the base class stands for
    # "internal": the client gets a class that is-a the one raised, with the same code.
    assert isinstance(back, type(exc)) or issubclass(type(exc), type(back))
    assert back.code == exc.code


def test_internal_envelope_is_internal_error() -> None:
    back = error_from_envelope(500, {"error": "internal", "error_description": "x"})
    assert type(back) is errors.InternalError


def test_envelope_shape() -> None:
    exc = errors.NotFoundError("no such file or directory: /a", detail={"path": "/a"})
    assert exc.to_envelope() == {
        "error": "not_found",
        "error_description": "no such file or directory: /a",
        "detail": {"path": "/a"},
    }
    assert errors.NotFoundError("x").to_envelope() == {
        "error": "not_found",
        "error_description": "x",
    }
    assert str(exc) == "no such file or directory: /a"


def test_rate_limited_retry_after_from_detail_and_header() -> None:
    exc = RateLimitedError("slow down", retry_after=2.5)
    assert exc.retry_after == 2.5
    assert exc.to_envelope()["detail"] == {"retry_after": 2.5}
    back = _round_trip(exc)
    assert isinstance(back, RateLimitedError)
    assert back.retry_after == 2.5
    # The Retry-After header, when the client passes it, wins over the body.
    header = error_from_envelope(429, exc.to_envelope(), retry_after=7.0)
    assert isinstance(header, RateLimitedError)
    assert header.retry_after == 7.0
    bare = error_from_envelope(429, {"error": "rate_limited"})
    assert isinstance(bare, RateLimitedError)
    assert bare.retry_after == 1.0
    assert bare.retryable


def test_device_flow_codes_keep_their_code() -> None:
    for code in DEVICE_FLOW_CODES:
        back = error_from_envelope(400, {"error": code, "error_description": "wait"})
        assert isinstance(back, DeviceFlowError)
        assert back.code == code
        assert back.status == 400
        assert back.to_envelope()["error"] == code


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthError),
        (403, errors.ForbiddenError),
        (404, errors.NotFoundError),
        (409, errors.AlreadyExistsError),
        (412, errors.PreconditionFailedError),
        (413, errors.PayloadTooLargeError),
        (418, errors.BadRequestError),  # any other 4xx
        (429, RateLimitedError),
        (500, errors.InternalError),
        (502, errors.UnavailableError),
        (503, errors.UnavailableError),
        (504, errors.GatewayTimeoutError),
        (507, errors.QuotaExceededError),
        (599, errors.InternalError),
    ],
)
def test_unknown_code_falls_back_by_status(status: int, expected: type[MeshFSError]) -> None:
    for body in ({"error": "some_future_code", "error_description": "?"}, None, {}):
        exc = error_from_envelope(status, body)
        assert type(exc) is expected
    assert error_from_envelope(status, None).message == f"HTTP {status}"


def test_malformed_detail_is_dropped() -> None:
    exc = error_from_envelope(404, {"error": "not_found", "detail": ["not", "a", "dict"]})
    assert type(exc) is errors.NotFoundError
    assert exc.detail == {}


def test_unknown_code_spec_is_internal() -> None:
    assert spec_for("nope") == ERROR_TABLE["internal"]
