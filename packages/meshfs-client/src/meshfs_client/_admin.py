"""Tenant administration of :class:`~meshfs_client.MeshFSClient`: plan, agent tokens,
sessions and the audit log."""

from __future__ import annotations

from meshfs_client._base import ClientBase
from meshfs_common import paths
from meshfs_common.admin import AGENT_TOKEN_SECONDS
from meshfs_common.models import (
    AgentToken,
    AgentTokenRequest,
    AuditPage,
    PlanInfo,
    SessionInfo,
    SessionList,
    ToolCallRecord,
)


class AdminMethods(ClientBase):
    """``plan``, ``create_agent_token``, ``sessions``, ``revoke_session``, the audit log."""

    # --- tenant administration --------------------------------------------------------------

    async def plan(self) -> PlanInfo:
        """``GET /plans/current``: the tenant's plan, retention, rate limit and storage use."""
        return await self._t.call("GET", "/plans/current", PlanInfo, idempotent=True)

    async def create_agent_token(
        self,
        name: str,
        *,
        path_prefix: str = "/",
        read_only: bool = False,
        expires_in: int = AGENT_TOKEN_SECONDS,
    ) -> AgentToken:
        """``POST /auth/agents``: a named bearer token for an agent, confined to *path_prefix*.

        The answer carries ``token`` (shown once; the server keeps only its hash),
        ``session_id`` (to revoke it), ``name``, ``path_prefix``, ``access`` and ``expires_at``.
        Agent tokens cannot create agent tokens.
        """
        return await self._t.call(
            "POST",
            "/auth/agents",
            AgentToken,
            json=AgentTokenRequest(
                name=name,
                path_prefix=paths.normalise(path_prefix),
                access="read" if read_only else "write",
                expires_in=expires_in,
            ),
            idempotent=False,  # a resend after a lost answer would mint a second token
        )

    async def sessions(
        self, *, everyone: bool = False, include_revoked: bool = False
    ) -> list[SessionInfo]:
        """``GET /auth/sessions``: your signed-in devices and agent tokens, newest first
        (owners: the whole tenant's with *everyone*). Each has ``session_id``, ``kind``
        (``device`` or ``agent``), ``name``, ``path_prefix``, ``access``, ``expires_at``..."""
        answer = await self._t.call(
            "GET",
            "/auth/sessions",
            SessionList,
            params={"all": everyone, "include_revoked": include_revoked},
            idempotent=True,
        )
        return answer.sessions

    async def revoke_session(self, session_id: str) -> None:
        """``DELETE /auth/sessions/{id}``: revoke a device session or an agent token."""
        await self._t.request("DELETE", f"/auth/sessions/{session_id}", idempotent=True)

    async def record_tool_call(
        self, tool: str, *, target: str | None = None, outcome: str = "ok"
    ) -> None:
        """Record an MCP tool call made with this client's token in the audit log
        (``mcp.tool.<tool>``, with the caller's identity)."""
        await self._t.request(
            "POST",
            "/audit/tool-calls",
            json=ToolCallRecord(tool=tool, target=target, outcome=outcome),
            idempotent=False,  # a resend after a lost answer would record the call twice
        )

    async def audit_page(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        action: str | None = None,
        user_id: str | None = None,
        outcome: str | None = None,
    ) -> AuditPage:
        """``GET /audit/recent``: one page of audit rows, newest first.

        Owners see the tenant's log; everyone else sees their own rows. The answer has
        ``entries``, ``has_more`` and ``next_before`` (pass it as *before* for the next page).
        """
        return await self._t.call(
            "GET",
            "/audit/recent",
            AuditPage,
            params={
                "limit": limit,
                "before": before,
                "action": action,
                "user_id": user_id,
                "outcome": outcome,
            },
            idempotent=True,
        )
