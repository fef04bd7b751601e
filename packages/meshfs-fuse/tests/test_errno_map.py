"""Every error that reaches the FUSE edge becomes the errno the error table names."""

from __future__ import annotations

import errno
import logging

import pyfuse3
import pytest
import trio

from meshfs_common.errors import (
    ERROR_TABLE,
    MeshFSError,
    NotFoundError,
    RateLimitedError,
    error_from_envelope,
)
from meshfs_fuse import errno_for, fuse_error, fuse_errors


def _error_with_code(code: str) -> MeshFSError:
    # Built the way the client builds it: from a server's error envelope.
    exc = error_from_envelope(ERROR_TABLE[code].status, {"error": code, "error_description": "x"})
    assert exc.code == code
    return exc


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_table_row_maps_to_its_errno(code: str) -> None:
    exc = _error_with_code(code)
    assert errno_for(exc) == ERROR_TABLE[code].errno
    assert fuse_error(exc).errno == ERROR_TABLE[code].errno


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
async def test_decorated_handler_answers_the_table_errno(code: str) -> None:
    @fuse_errors
    async def handler() -> None:
        await trio.lowlevel.checkpoint()
        raise _error_with_code(code)

    with pytest.raises(pyfuse3.FUSEError) as info:
        await handler()
    assert info.value.errno == ERROR_TABLE[code].errno


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NotFoundError("/a"), errno.ENOENT),
        (RateLimitedError("later", retry_after=3), errno.EAGAIN),
        (pyfuse3.FUSEError(errno.ENOTSUP), errno.ENOTSUP),
        (FileNotFoundError(errno.ENOENT, "cache file"), errno.ENOENT),
        (OSError(errno.ENOSPC, "cache disk full"), errno.ENOSPC),
        (PermissionError(errno.EACCES, "cache dir"), errno.EACCES),
        (TimeoutError(), errno.ETIMEDOUT),
        (OSError("no errno"), errno.EIO),
        (ValueError("a bug"), errno.EIO),
        (KeyError("a bug"), errno.EIO),
        (RuntimeError(), errno.EIO),
    ],
)
def test_other_exceptions(exc: BaseException, expected: int) -> None:
    assert errno_for(exc) == expected
    assert fuse_error(exc).errno == expected


def test_fuse_error_passes_through_unchanged() -> None:
    original = pyfuse3.FUSEError(errno.EXDEV)
    assert fuse_error(original) is original


async def test_decorated_handler_returns_its_value() -> None:
    @fuse_errors
    async def lookup(name: str, *, flag: bool = False) -> tuple[str, bool]:
        await trio.lowlevel.checkpoint()
        return name, flag

    assert await lookup("a", flag=True) == ("a", True)
    assert lookup.__name__ == "lookup"


async def test_unexpected_exception_is_logged_and_becomes_eio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @fuse_errors
    async def read() -> bytes:
        raise ZeroDivisionError("bug")

    with (
        caplog.at_level(logging.ERROR, logger="meshfs_fuse.errno_map"),
        pytest.raises(pyfuse3.FUSEError) as info,
    ):
        await read()
    assert info.value.errno == errno.EIO
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "unexpected error in" in caplog.text
    assert "ZeroDivisionError" in caplog.text  # the traceback is there


async def test_expected_errors_are_not_logged_as_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @fuse_errors
    async def getattr_() -> None:
        raise NotFoundError("no such file: /a")

    with caplog.at_level(logging.ERROR), pytest.raises(pyfuse3.FUSEError):
        await getattr_()
    assert caplog.records == []


async def test_cancellation_is_not_turned_into_an_errno() -> None:
    reached_end = False

    @fuse_errors
    async def slow_read() -> None:
        nonlocal reached_end
        await trio.sleep_forever()
        reached_end = True

    with trio.move_on_after(0.01) as scope:
        await slow_read()
    # trio.Cancelled went through the decorator to the cancel scope, not into a FUSEError.
    assert scope.cancelled_caught
    assert not reached_end
