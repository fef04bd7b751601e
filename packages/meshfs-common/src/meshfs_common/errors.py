"""The MeshFS error table and the exceptions built from it.

Every failure that crosses a process boundary has a *code*. This module is the single table that
maps each code to its HTTP status, the errno a filesystem mount reports, and whether a client may
retry the request unchanged. The server raises these exceptions and renders them as the error
envelope; the client parses the envelope back into the same exception types; the mount turns
them into errnos. Nothing else decides these things.

The envelope is the OAuth 2.0 error shape (RFC 6749 section 5.2), used for every endpoint so that
device-flow polling (RFC 8628) and file operations fail the same way::

    {"error": "not_found", "error_description": "no such file: /a/b", "detail": {...}}
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one error code travels: HTTP status, errno and retryability."""

    code: str
    status: int
    errno: int
    retryable: bool


def _spec(code: str, status: int, err: int, retryable: bool = False) -> ErrorSpec:
    return ErrorSpec(code, status, err, retryable)


ERROR_TABLE: dict[str, ErrorSpec] = {
    spec.code: spec
    for spec in (
        _spec("bad_request", 400, _errno.EINVAL),
        _spec("invalid_path", 400, _errno.EINVAL),
        _spec("unauthenticated", 401, _errno.EACCES),
        _spec("forbidden", 403, _errno.EACCES),
        _spec("read_only", 403, _errno.EROFS),
        _spec("not_found", 404, _errno.ENOENT),
        _spec("method_not_allowed", 405, _errno.EINVAL),
        _spec("already_exists", 409, _errno.EEXIST),
        _spec("not_a_directory", 409, _errno.ENOTDIR),
        _spec("is_a_directory", 409, _errno.EISDIR),
        _spec("directory_not_empty", 409, _errno.ENOTEMPTY),
        _spec("invalid_move", 409, _errno.EINVAL),
        _spec("not_a_file", 409, _errno.EINVAL),
        _spec("name_too_long", 400, _errno.ENAMETOOLONG),
        _spec("upload_incomplete", 409, _errno.EIO),
        _spec("precondition_failed", 412, _errno.ESTALE),
        _spec("payload_too_large", 413, _errno.EFBIG),
        _spec("unsupported_media_type", 415, _errno.EINVAL),
        _spec("range_not_satisfiable", 416, _errno.EINVAL),
        _spec("hash_mismatch", 422, _errno.EIO, retryable=True),
        _spec("rate_limited", 429, _errno.EAGAIN, retryable=True),
        _spec("quota_exceeded", 507, _errno.EDQUOT),
        _spec("internal", 500, _errno.EIO),
        _spec("unavailable", 503, _errno.EAGAIN, retryable=True),
        _spec("timeout", 504, _errno.ETIMEDOUT, retryable=True),
        _spec("not_permitted", 403, _errno.EPERM),
        _spec("xattr_not_found", 404, _errno.ENODATA),
        _spec("xattr_space_full", 409, _errno.ENOSPC),
        _spec("xattr_too_large", 413, _errno.E2BIG),
        _spec("not_supported", 400, _errno.ENOTSUP),
        # RFC 8628 / RFC 6749 token endpoint answers.
        _spec("authorization_pending", 400, _errno.EAGAIN),
        _spec("slow_down", 400, _errno.EAGAIN),
        _spec("access_denied", 400, _errno.EACCES),
        _spec("expired_token", 400, _errno.EACCES),
        _spec("invalid_grant", 400, _errno.EACCES),
    )
}


def spec_for(code: str) -> ErrorSpec:
    """The table row for *code*; unknown codes are treated as internal errors."""
    return ERROR_TABLE.get(code, ERROR_TABLE["internal"])


class MeshFSError(Exception):
    """Base of every MeshFS error; ``code`` selects the row of :data:`ERROR_TABLE`."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    @property
    def spec(self) -> ErrorSpec:
        return spec_for(self.code)

    @property
    def status(self) -> int:
        return self.spec.status

    @property
    def errno(self) -> int:
        return self.spec.errno

    @property
    def retryable(self) -> bool:
        return self.spec.retryable

    def to_envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "error_description": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class BadRequestError(MeshFSError):
    code = "bad_request"


class InvalidPathError(BadRequestError):
    code = "invalid_path"


class AuthError(MeshFSError):
    code = "unauthenticated"


class ForbiddenError(MeshFSError):
    code = "forbidden"


class ReadOnlyError(ForbiddenError):
    code = "read_only"


class NotFoundError(MeshFSError):
    code = "not_found"


class MethodNotAllowedError(MeshFSError):
    code = "method_not_allowed"


class ConflictError(MeshFSError):
    code = "already_exists"


class AlreadyExistsError(ConflictError):
    code = "already_exists"


class NotADirError(ConflictError):
    code = "not_a_directory"


class IsADirError(ConflictError):
    code = "is_a_directory"


class DirectoryNotEmptyError(ConflictError):
    code = "directory_not_empty"


class InvalidMoveError(ConflictError):
    code = "invalid_move"


class NotAFileError(ConflictError):
    """Content was asked of (or written to) a node that is not a regular file: a symbolic
    link (never followed by the server), a FIFO, socket or device."""

    code = "not_a_file"


class NameTooLongError(InvalidPathError):
    """A name, path or symbolic link target longer than the limit (ENAMETOOLONG)."""

    code = "name_too_long"


class UploadIncompleteError(ConflictError):
    code = "upload_incomplete"


class NotPermittedError(ForbiddenError):
    """An operation POSIX refuses whatever the caller's rights (EPERM): a hard link to a
    directory, setting a read-only ``meshfs.*`` extended attribute."""

    code = "not_permitted"


class XattrNotFoundError(NotFoundError):
    """The node has no extended attribute of that name (ENODATA)."""

    code = "xattr_not_found"


class XattrSpaceFullError(ConflictError):
    """The node's extended attributes are at their limit of names or bytes (ENOSPC)."""

    code = "xattr_space_full"


class NotSupportedError(BadRequestError):
    """Something MeshFS does not support, such as POSIX ACLs or extended attributes outside
    the ``user.`` namespace (ENOTSUP)."""

    code = "not_supported"


class PreconditionFailedError(MeshFSError):
    code = "precondition_failed"


class PayloadTooLargeError(MeshFSError):
    code = "payload_too_large"


class XattrTooLargeError(PayloadTooLargeError):
    """An extended attribute's value is over its size limit (E2BIG)."""

    code = "xattr_too_large"


class UnsupportedMediaTypeError(MeshFSError):
    code = "unsupported_media_type"


class RangeNotSatisfiableError(MeshFSError):
    code = "range_not_satisfiable"


class HashMismatchError(MeshFSError):
    code = "hash_mismatch"


class RateLimitedError(MeshFSError):
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float = 1.0, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, detail={"retry_after": retry_after, **(detail or {})})
        self.retry_after = retry_after


class QuotaExceededError(MeshFSError):
    code = "quota_exceeded"


class InternalError(MeshFSError):
    code = "internal"


class UnavailableError(MeshFSError):
    code = "unavailable"


class GatewayTimeoutError(MeshFSError):
    code = "timeout"


class DeviceFlowError(MeshFSError):
    """An RFC 8628 polling answer; ``code`` is set per instance."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self._code = code

    @property
    def code(self) -> str:  # type: ignore[override]
        return self._code


_BY_CODE: dict[str, type[MeshFSError]] = {}
for _cls in list(globals().values()):
    if (
        isinstance(_cls, type)
        and issubclass(_cls, MeshFSError)
        and _cls not in (MeshFSError, DeviceFlowError)
    ):
        _BY_CODE.setdefault(_cls.code, _cls)
_BY_CODE["already_exists"] = AlreadyExistsError
_DEVICE_FLOW_CODES = {
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
    "invalid_grant",
}
missing = set(ERROR_TABLE) - set(_BY_CODE) - _DEVICE_FLOW_CODES
assert not missing, f"error codes without an exception class: {missing}"
del missing


def error_from_envelope(
    status: int, body: dict[str, Any] | None, *, retry_after: float | None = None
) -> MeshFSError:
    """Rebuild the typed exception a server sent as an error envelope."""
    body = body or {}
    code = str(body.get("error") or "")
    message = str(body.get("error_description") or f"HTTP {status}")
    detail = body.get("detail") if isinstance(body.get("detail"), dict) else None
    if code in _DEVICE_FLOW_CODES:
        return DeviceFlowError(code, message)
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = _class_for_status(status)
    if cls is RateLimitedError:
        after = retry_after
        if after is None and detail and isinstance(detail.get("retry_after"), int | float):
            after = float(detail["retry_after"])
        return RateLimitedError(message, retry_after=after if after is not None else 1.0)
    return cls(message, detail=detail)


def _class_for_status(status: int) -> type[MeshFSError]:
    for spec in ERROR_TABLE.values():
        if spec.status == status and spec.code in _BY_CODE:
            return _BY_CODE[spec.code]
    if 400 <= status < 500:
        return BadRequestError
    return UnavailableError if status in (502, 503, 504) else InternalError
