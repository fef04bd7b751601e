"""PLACEHOLDER until the identity package lands: nobody can authenticate."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from meshfs_common.errors import AuthError

from meshfs_server.domain.actor import Actor


class Identity:
    @classmethod
    async def open(cls, db: Any, settings: Any) -> Identity:
        return cls()

    async def authenticate(self, conn: HTTPConnection) -> Actor:
        raise AuthError("sign in first")

    async def close(self) -> None:
        return None
