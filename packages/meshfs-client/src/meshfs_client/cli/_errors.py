"""CLI exit codes and the one-line error report.

========  =========================================================================
code      meaning
========  =========================================================================
0         success
1         any other error
2         usage error (bad option or argument, invalid path)
3         not logged in, session expired, login denied or expired
4         not found (remote path, version, or local file)
5         conflict: already exists, not a directory, directory not empty, ...
6         server unreachable, unavailable, timed out or rate limiting us
7         permission denied (forbidden, read-only)
8         quota exceeded or file too large
130       interrupted (Ctrl-C)
========  =========================================================================
"""

from __future__ import annotations

import errno as _errno

import click

from meshfs_common.errors import MeshFSError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_UNAVAILABLE = 6
EXIT_PERMISSION = 7
EXIT_QUOTA = 8
EXIT_INTERRUPTED = 130

_BY_CODE = {
    "bad_request": EXIT_USAGE,
    "invalid_path": EXIT_USAGE,
    "unauthenticated": EXIT_AUTH,
    "access_denied": EXIT_AUTH,
    "expired_token": EXIT_AUTH,
    "invalid_grant": EXIT_AUTH,
    "not_found": EXIT_NOT_FOUND,
    "already_exists": EXIT_CONFLICT,
    "not_a_directory": EXIT_CONFLICT,
    "is_a_directory": EXIT_CONFLICT,
    "directory_not_empty": EXIT_CONFLICT,
    "invalid_move": EXIT_CONFLICT,
    "upload_incomplete": EXIT_CONFLICT,
    "precondition_failed": EXIT_CONFLICT,
    "unavailable": EXIT_UNAVAILABLE,
    "timeout": EXIT_UNAVAILABLE,
    "rate_limited": EXIT_UNAVAILABLE,
    "forbidden": EXIT_PERMISSION,
    "read_only": EXIT_PERMISSION,
    "quota_exceeded": EXIT_QUOTA,
    "payload_too_large": EXIT_QUOTA,
}

_BY_ERRNO = {
    _errno.ENOENT: EXIT_NOT_FOUND,
    _errno.EEXIST: EXIT_CONFLICT,
    _errno.ENOTDIR: EXIT_CONFLICT,
    _errno.EISDIR: EXIT_CONFLICT,
    _errno.ENOTEMPTY: EXIT_CONFLICT,
    _errno.EACCES: EXIT_PERMISSION,
    _errno.EPERM: EXIT_PERMISSION,
    _errno.EROFS: EXIT_PERMISSION,
    _errno.ENOSPC: EXIT_QUOTA,
    _errno.EDQUOT: EXIT_QUOTA,
}


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error."""
    if isinstance(exc, MeshFSError):
        return _BY_CODE.get(exc.code, EXIT_ERROR)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _BY_ERRNO.get(exc.errno, EXIT_ERROR)
    if isinstance(exc, ValueError):
        return EXIT_USAGE  # a malformed argument the client itself rejected (e.g. server URL)
    return EXIT_ERROR


def describe(exc: BaseException) -> str:
    """One line for a person: what failed, no traceback."""
    if isinstance(exc, MeshFSError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    return str(exc) or type(exc).__name__


# A local failure reported with the code of the table row (meshfs_common.errors) that means it.
_CODE_BY_ERRNO = {
    _errno.ENOENT: "not_found",
    _errno.EEXIST: "already_exists",
    _errno.ENOTDIR: "not_a_directory",
    _errno.EISDIR: "is_a_directory",
    _errno.ENOTEMPTY: "directory_not_empty",
    _errno.EACCES: "forbidden",
    _errno.EPERM: "forbidden",
    _errno.EROFS: "read_only",
    _errno.ENOSPC: "quota_exceeded",
    _errno.EDQUOT: "quota_exceeded",
    _errno.EFBIG: "payload_too_large",
    _errno.ETIMEDOUT: "timeout",
}


def error_code(exc: BaseException) -> str:
    """The error-table code (:data:`meshfs_common.errors.ERROR_TABLE`) for ``--json`` reports.

    Server errors carry their own; a local file error maps by errno; a rejected argument is
    ``bad_request``; anything else is ``internal``.
    """
    if isinstance(exc, MeshFSError):
        return exc.code
    if isinstance(exc, OSError):
        return _CODE_BY_ERRNO.get(exc.errno or 0, "internal")
    if isinstance(exc, ValueError | click.UsageError):
        return "bad_request"
    return "internal"
