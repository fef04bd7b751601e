"""Who is acting: the authenticated principal as the domain sees it."""

from __future__ import annotations

from dataclasses import dataclass

from meshfs_common import paths
from meshfs_common.errors import ForbiddenError, ReadOnlyError
from meshfs_common.models import Writer


@dataclass(frozen=True, slots=True)
class Actor:
    """A user (through a device session or an agent token) acting in one tenant.

    ``path_prefix`` confines every path the actor names (agent tokens); ``can_write`` is false
    for readers and read-only tokens.
    """

    tenant_id: str
    user_id: str
    session_id: str | None = None
    device_name: str | None = None
    agent_name: str | None = None
    can_write: bool = True
    path_prefix: str = paths.ROOT

    @property
    def writer(self) -> Writer:
        return Writer(
            user_id=self.user_id,
            session_id=self.session_id,
            device_name=self.device_name,
            agent_name=self.agent_name,
        )

    def check_read(self, path: str) -> None:
        """Refuse paths outside the actor's prefix."""
        if not paths.is_within(path, self.path_prefix):
            raise ForbiddenError(f"this token is limited to {self.path_prefix}")

    def check_write(self, path: str) -> None:
        """Refuse writes for read-only actors and paths outside the prefix."""
        if not self.can_write:
            raise ReadOnlyError("this token or role is read-only")
        self.check_read(path)
