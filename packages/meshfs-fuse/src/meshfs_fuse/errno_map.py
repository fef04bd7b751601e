"""Turn any exception into the errno a FUSE request answers with.

The FUSE edge may raise only :class:`pyfuse3.FUSEError`: any other exception escaping a request
handler ends the whole session and leaves the mount point as "Transport endpoint is not
connected". So every handler is wrapped in :func:`fuse_errors`, and the errno comes from one
place, the error table in :mod:`meshfs_common.errors` (``not_found`` -> ``ENOENT``,
``precondition_failed`` -> ``ESTALE``, ...). An exception nobody expected is a bug: it is logged
with its traceback and answered with ``EIO`` so the mount stays up.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from meshfs_common.errors import MeshFSError

__all__ = ["errno_for", "fuse_error", "fuse_errors"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def errno_for(exc: BaseException) -> int:
    """The errno to report for *exc*.

    * :class:`pyfuse3.FUSEError`: its own errno.
    * :class:`~meshfs_common.errors.MeshFSError` (raised by the client, or rebuilt from a server's
      error envelope): the ``errno`` column of ``ERROR_TABLE`` for its code.
    * :class:`TimeoutError` (a network call ran out of time): ``ETIMEDOUT``.
    * Any other :class:`OSError` carrying an errno (the local cache's disk): that errno.
    * Anything else: ``EIO``.
    """
    if isinstance(exc, pyfuse3.FUSEError):
        return exc.errno
    if isinstance(exc, MeshFSError):
        return exc.errno
    if isinstance(exc, TimeoutError):
        return errno.ETIMEDOUT
    if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0:
        return exc.errno
    return errno.EIO


def fuse_error(exc: BaseException) -> pyfuse3.FUSEError:
    """A :class:`pyfuse3.FUSEError` carrying :func:`errno_for` of *exc*."""
    if isinstance(exc, pyfuse3.FUSEError):
        return exc
    return pyfuse3.FUSEError(errno_for(exc))


def fuse_errors(
    handler: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorate an async FUSE request handler so that it raises only ``FUSEError``.

    Cancellation and other ``BaseException``\\ s pass through untouched: they belong to the
    nursery that runs the session, not to the request.
    """

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except (MeshFSError, OSError) as exc:
            # Expected failures (missing file, no permission, server down): the errno says it.
            log.debug("%s failed: %s", handler.__qualname__, exc)
            raise fuse_error(exc) from exc
        except Exception as exc:
            log.exception("unexpected error in %s; answering EIO", handler.__qualname__)
            raise fuse_error(exc) from exc

    return wrapper
