"""Who an authenticated token speaks for: the domain's :class:`Actor` plus what auth needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshfs_server.auth.accounts import Role
from meshfs_server.domain.actor import Actor

SessionKind = Literal["device", "agent"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the domain's :class:`Actor` plus what identity needs."""

    actor: Actor
    role: Role
    kind: SessionKind
    scope: str

    @property
    def is_owner(self) -> bool:
        return self.role == "owner" and self.kind == "device"
