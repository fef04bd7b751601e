"""`GET /auth/whoami` says what kind of token is speaking: a device or an agent token, with the
agent token's name, prefix, access and expiry (the CLI's `meshfs whoami` shows them)."""

from __future__ import annotations

import time
from datetime import datetime

from conftest import AuthHarness


async def test_whoami_describes_device_sessions_and_agent_tokens(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        me = (await alice.get("/auth/whoami")).json()
        assert (me["kind"], me["path_prefix"], me["access"]) == ("device", "/", "write")
        await alice.post("/files/mkdir", json={"path": "/agents"})
        made = await alice.post(
            "/auth/agents",
            json={"name": "bot", "path_prefix": "/agents", "access": "read", "expires_in": 7200},
        )
        assert made.status_code == 201, made.text
    async with auth.client_for(made.json()["token"]) as bot:
        reply = await bot.get("/auth/whoami")
    assert reply.status_code == 200, reply.text
    me = reply.json()
    assert me["kind"] == "agent"
    assert me["session_name"] == "bot"
    assert (me["path_prefix"], me["access"]) == ("/agents", "read")
    expires = datetime.fromisoformat(me["expires_at"]).timestamp()
    assert abs(expires - (time.time() + 7200)) < 120
