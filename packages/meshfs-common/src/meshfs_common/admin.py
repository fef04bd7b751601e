"""Wire models of tenant administration: the plan and its quota, retention, the audit log,
sessions and agent tokens.

Re-exported by :mod:`meshfs_common.models`; the server encodes its answers with them and the
client decodes into them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from meshfs_common._model import Model

Access = Literal["read", "write"]

AGENT_TOKEN_SECONDS = 30 * 86400
"""How long an agent token lives when its request does not say."""


class AdminModel(Model):
    """Base of the administration models.

    The client returned these answers as dicts before they had models, so they also answer
    ``answer["field"]`` and ``answer.get("field", default)``: code written then keeps working.
    """

    def __getitem__(self, field: str) -> Any:
        if field not in self.__struct_fields__:
            raise KeyError(field)
        return getattr(self, field)

    def get(self, field: str, default: Any = None) -> Any:
        """The field's value, or *default* when it has none (absent or ``None``)."""
        value = getattr(self, field, None) if field in self.__struct_fields__ else None
        return default if value is None else value


# --- plan, quota and retention ------------------------------------------------------------------


class RetentionPolicy(AdminModel):
    """How long history is kept: versions beyond ``max_versions`` per file or older than
    ``max_days`` are pruned (never a file's current version); deleted files are purged
    ``grace_days`` after deletion."""

    max_versions: int
    max_days: int
    grace_days: int


class StorageInfo(AdminModel, omit_defaults=True):
    """Quota accounting in bytes (``used`` is deduplicated: identical content counts once).

    ``used`` and ``reserved`` describe the whole tenant, so a token limited to a path prefix is
    not told them (they are absent).
    """

    quota: int
    used: int | None = None
    reserved: int | None = None


class PlanInfo(AdminModel):
    """The tenant's plan and what it grants (``GET /plans/current``)."""

    tenant_id: str
    tenant_name: str
    plan: str
    retention: RetentionPolicy
    plan_retention: RetentionPolicy
    rate_limit_per_minute: int
    storage: StorageInfo


class RetentionReport(AdminModel):
    """What one run of retention removed (``POST /retention/apply``)."""

    pruned_versions: int
    purged_nodes: int
    deleted_chunks: int
    pruned_events: int = 0


# --- audit --------------------------------------------------------------------------------------


class AuditEntry(AdminModel, omit_defaults=True):
    """One audit row as ``GET /audit/recent`` returns it."""

    audit_id: int
    at: datetime
    action: str
    outcome: str
    user_id: str | None = None
    session_id: str | None = None
    device_name: str | None = None
    agent_name: str | None = None
    client_address: str | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None


class AuditPage(AdminModel):
    """Newest first; pass ``next_before`` as ``before`` for the next page."""

    entries: list[AuditEntry]
    has_more: bool = False
    next_before: int | None = None


# --- sessions and agent tokens ------------------------------------------------------------------


class SessionInfo(AdminModel):
    """A signed-in device or an agent token."""

    session_id: str
    kind: Literal["device", "agent"]
    name: str
    user_id: str
    username: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    path_prefix: str = "/"
    access: Access = "write"
    current: bool = False


class SessionList(AdminModel):
    """``GET /auth/sessions``: newest first."""

    sessions: list[SessionInfo]


class AgentTokenRequest(AdminModel):
    """A named, expiring bearer token for an agent, confined to ``path_prefix``."""

    name: str
    path_prefix: str = "/"
    access: Access = "read"
    expires_in: int = AGENT_TOKEN_SECONDS


class AgentToken(AdminModel):
    """The token is shown once; the server keeps only its hash."""

    token: str
    session_id: str
    name: str
    path_prefix: str
    access: Access
    expires_at: datetime


class DeviceActivateResponse(AdminModel):
    """The decision recorded for a user code."""

    status: Literal["approved", "denied"]
