"""Every server call of the mount has a deadline; a rejected login is logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from meshfs_common.errors import AuthError
from meshfs_fuse.bridge import AsyncioBridge
from meshfs_fuse.remote import Deadlines, Remote


class Stuck:
    """A client whose server never answers, and one whose login was revoked."""

    def __init__(self) -> None:
        self.cancelled = 0

    async def meta(self, path: str | None = None, *, node_id: str | None = None) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def whoami(self) -> None:
        raise AuthError("session revoked")


@pytest.fixture
def bridge() -> Iterator[AsyncioBridge]:
    with AsyncioBridge() as running:
        yield running


async def test_a_call_that_gets_no_answer_times_out(bridge: AsyncioBridge) -> None:
    client = Stuck()
    remote = Remote(bridge, client, Deadlines(metadata=0.05))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError, match="did not answer within"):
        await remote.meta("/a")
    assert client.cancelled == 1  # the request itself was cancelled, not left running


async def test_a_rejected_login_is_logged_once(
    bridge: AsyncioBridge, caplog: pytest.LogCaptureFixture
) -> None:
    remote = Remote(bridge, Stuck())  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="meshfs_fuse.remote"):
        for _ in range(3):
            with pytest.raises(AuthError):
                await remote.call_whoami()
    assert len(caplog.records) == 1
    assert "meshfs login" in caplog.records[0].getMessage()
