"""Who is acting: the authenticated principal as the domain sees it."""

from __future__ import annotations

from dataclasses import dataclass

from meshfs_common import paths
from meshfs_common.errors import ReadOnlyError
from meshfs_common.models import Writer
from meshfs_server.domain.scope import Scope


@dataclass(frozen=True, slots=True)
class Actor:
    """A user (through a device session or an agent token) acting in one tenant.

    ``path_prefix`` confines everything the actor names or is told (agent tokens; see
    :class:`~meshfs_server.domain.scope.Scope`); ``can_write`` is false for readers and
    read-only tokens.
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

    @property
    def scope(self) -> Scope:
        """The part of the tenant this actor may see."""
        return Scope(self.path_prefix)

    def check_read(self, path: str) -> None:
        """Refuse paths outside the actor's scope."""
        self.scope.check(path)

    def check_write(self, path: str) -> None:
        """Refuse writes for read-only actors and paths outside the prefix."""
        if not self.can_write:
            raise ReadOnlyError("this token or role is read-only")
        self.check_read(path)
