"""Device login (RFC 8628), refresh rotation, logout and whoami through a real ASGI client."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import AuthHarness, cli_env

from meshfs_server.auth.keys import KEYS_FILE
from meshfs_server.cli import main
from meshfs_server.settings import Settings


async def start(auth: AuthHarness, client_name: str = "laptop") -> dict[str, object]:
    reply = await auth.client.post("/auth/device/start", json={"client_name": client_name})
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


async def poll(auth: AuthHarness, device_code: object) -> tuple[int, dict[str, object]]:
    reply = await auth.client.post("/auth/device/poll", json={"device_code": device_code})
    return reply.status_code, reply.json()


async def test_start_answers_rfc8628_fields(auth: AuthHarness) -> None:
    body = await start(auth)
    base = auth.settings.base_url
    assert body["verification_uri"] == f"{base}/device"
    assert body["verification_uri_complete"] == f"{base}/device?user_code={body['user_code']}"
    code = str(body["user_code"])
    assert len(code) == 9
    assert code[4] == "-"
    assert not set(code.replace("-", "")) & set("AEIOU01LY")
    assert body["interval"] == 5
    assert body["expires_in"] == 600


async def test_full_device_flow_then_whoami(auth: AuthHarness) -> None:
    body = await start(auth, "my-laptop")
    status, answer = await poll(auth, body["device_code"])
    assert (status, answer["error"]) == (400, "authorization_pending")

    # A signed-in user approves the code for their own tenant through the API.
    owner = await auth.login("alice")
    async with auth.client_for(owner.access_token) as alice:
        approved = await alice.post("/auth/device/activate", json={"user_code": body["user_code"]})
        assert approved.json() == {"status": "approved"}
    # The code was polled a moment ago: wait out the interval without sleeping.
    async with auth.services.identity.db.write() as conn:
        await conn.execute("UPDATE device_codes SET last_polled_at = last_polled_at - 60")
    status, tokens = await poll(auth, body["device_code"])
    assert status == 200, tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["tenant_id"] == owner.tenant_id
    assert tokens["user_id"] == owner.user_id
    assert tokens["session_id"] != owner.session_id

    async with auth.client_for(str(tokens["access_token"])) as device:
        me = (await device.get("/auth/whoami")).json()
    assert me["username"] == "alice"
    assert me["tenant_name"] == "alice"
    assert me["session_id"] == tokens["session_id"]

    # Single use: the device code cannot be exchanged again.
    status, again = await poll(auth, body["device_code"])
    assert (status, again["error"]) == (400, "invalid_grant")


async def test_slow_down_when_polled_faster_than_interval(auth: AuthHarness) -> None:
    body = await start(auth)
    assert (await poll(auth, body["device_code"]))[1]["error"] == "authorization_pending"
    status, answer = await poll(auth, body["device_code"])
    assert (status, answer["error"]) == (400, "slow_down")
    async with auth.services.identity.db.read() as conn:
        (interval,) = await conn.fetchone("SELECT interval FROM device_codes")
    assert interval == 10  # grew by 5 s as RFC 8628 3.5 requires


async def test_denied_and_expired_and_unknown_codes(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    denied = await start(auth)
    async with auth.client_for(owner.access_token) as alice:
        reply = await alice.post(
            "/auth/device/activate", json={"user_code": denied["user_code"], "approve": False}
        )
        assert reply.json() == {"status": "denied"}
        # A decided code cannot be flipped to approved.
        again = await alice.post("/auth/device/activate", json={"user_code": denied["user_code"]})
        assert again.status_code in (400, 404)
    assert (await poll(auth, denied["device_code"]))[1]["error"] == "access_denied"

    expired = await start(auth)
    clock = time.time
    auth.services.identity.clock = lambda: clock() + 601
    assert (await poll(auth, expired["device_code"]))[1]["error"] == "expired_token"
    auth.services.identity.clock = clock

    status, unknown = await poll(auth, "mfd_not-a-real-code")
    assert (status, unknown["error"]) == (400, "invalid_grant")


async def test_activate_requires_a_signed_in_user(auth: AuthHarness) -> None:
    body = await start(auth)
    reply = await auth.client.post("/auth/device/activate", json={"user_code": body["user_code"]})
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_activate_accepts_code_as_typed(auth: AuthHarness) -> None:
    owner = await auth.login("alice")
    body = await start(auth)
    typed = str(body["user_code"]).replace("-", "").lower()
    async with auth.client_for(owner.access_token) as alice:
        reply = await alice.post("/auth/device/activate", json={"user_code": typed})
    assert reply.json() == {"status": "approved"}


async def test_refresh_rotates_and_reuse_revokes_the_family(auth: AuthHarness) -> None:
    first = await auth.login("alice")
    reply = await auth.client.post("/auth/refresh", json={"refresh_token": first.refresh_token})
    assert reply.status_code == 200, reply.text
    second = reply.json()
    assert second["refresh_token"] != first.refresh_token
    assert second["session_id"] == first.session_id
    async with auth.client_for(second["access_token"]) as device:
        assert (await device.get("/auth/whoami")).status_code == 200

    # The old refresh token is spent: presenting it again is treated as theft.
    reused = await auth.client.post("/auth/refresh", json={"refresh_token": first.refresh_token})
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    # ...which revokes the whole session: the newest tokens stop working too.
    newest = await auth.client.post(
        "/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert newest.status_code == 400
    async with auth.client_for(second["access_token"]) as device:
        assert (await device.get("/auth/whoami")).status_code == 401
    async with auth.services.identity.db.read() as conn:
        actions = [r[0] for r in await conn.fetchall("SELECT action FROM audit ORDER BY audit_id")]
    assert "auth.refresh_reuse" in actions


async def test_logout_revokes_the_session_at_once(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    other = await auth.login("alice")
    async with auth.client_for(tokens.access_token) as device:
        assert (await device.get("/auth/whoami")).status_code == 200
        assert (await device.post("/auth/logout", json={})).status_code == 204
        assert (await device.get("/auth/whoami")).status_code == 401
    refreshed = await auth.client.post(
        "/auth/refresh", json={"refresh_token": tokens.refresh_token}
    )
    assert refreshed.status_code == 400
    # Another session of the same user is unaffected.
    async with auth.client_for(other.access_token) as device:
        assert (await device.get("/auth/whoami")).status_code == 200


async def test_logout_with_only_a_refresh_token(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    reply = await auth.client.post("/auth/logout", json={"refresh_token": tokens.refresh_token})
    assert reply.status_code == 204
    async with auth.client_for(tokens.access_token) as device:
        assert (await device.get("/auth/whoami")).status_code == 401


async def test_whoami_without_or_with_garbage_token(auth: AuthHarness) -> None:
    assert (await auth.client.get("/auth/whoami")).status_code == 401
    async with auth.client_for("not-a-jwt") as bad:
        reply = await bad.get("/auth/whoami")
    assert (reply.status_code, reply.json()["error"]) == (401, "unauthenticated")


async def test_tokens_work_on_file_endpoints(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    async with auth.client_for(tokens.access_token) as device:
        made = await device.post("/files/mkdir", json={"path": "/docs"})
        assert made.status_code == 201, made.text
        listing = await device.get("/files/list", params={"path": "/"})
        assert [e["name"] for e in listing.json()["entries"]] == ["docs"]


async def test_dev_auto_approve(tmp_path: Path, backend: dict[str, Any]) -> None:
    import httpx
    from asgi_lifespan import LifespanManager
    from meshfs_server_backends import STARTUP_SECONDS

    from meshfs_server.app import create_app

    settings = Settings(data_dir=tmp_path / "d", dev_auto_approve=True, **backend)
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = (await client.post("/auth/device/start", json={})).json()
            reply = await client.post(
                "/auth/device/poll", json={"device_code": started["device_code"]}
            )
            assert reply.status_code == 200, reply.text
            me = await client.get(
                "/auth/whoami", headers={"Authorization": f"Bearer {reply.json()['access_token']}"}
            )
    assert (me.json()["username"], me.json()["tenant_name"]) == ("dev", "dev")


async def test_signing_key_is_persisted_privately(auth: AuthHarness) -> None:
    """SQLite: a private key file. Postgres: the signing_keys table (shared by every process),
    and nothing on the local disk."""
    path = auth.settings.keys_path / KEYS_FILE
    if auth.settings.database_url is None:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        current = json.loads(path.read_text())["current"]
    else:
        assert not path.exists()
        async with auth.services.identity.db.read() as conn:
            (current,) = await conn.fetchone(
                "SELECT kid FROM signing_keys ORDER BY generation DESC LIMIT 1"
            )
    tokens = await auth.login("alice")
    head = tokens.access_token.split(".")[0]
    decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    assert decoded["kid"] == current
    assert decoded["alg"] == "Ed25519"


# --- the approve CLI ----------------------------------------------------------------------------


def test_approve_cli_creates_account_and_approves(tmp_path: Path, backend: dict[str, Any]) -> None:
    import asyncio

    import httpx
    from asgi_lifespan import LifespanManager
    from meshfs_server_backends import STARTUP_SECONDS

    from meshfs_server.app import create_app

    data = tmp_path / "data"
    settings = Settings(data_dir=data, **backend)

    async def scenario() -> dict[str, object]:
        app = create_app(settings, background=False)
        async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                started = (await client.post("/auth/device/start", json={})).json()
                # While the server runs, an administrator approves from the shell.
                result = await asyncio.to_thread(
                    CliRunner().invoke, main,
                    ["approve", started["user_code"], "--user", "bob", "--data-dir", str(data)],
                    env=cli_env(settings),
                )  # fmt: skip
                assert result.exit_code == 0, result.output
                assert "approved" in result.output
                assert "bob" in result.output
                polled = await client.post(
                    "/auth/device/poll", json={"device_code": started["device_code"]}
                )
                assert polled.status_code == 200, polled.text
                me = await client.get(
                    "/auth/whoami",
                    headers={"Authorization": f"Bearer {polled.json()['access_token']}"},
                )
                body: dict[str, object] = me.json()
                return body

    me = asyncio.run(scenario())
    assert me["username"] == "bob"
    assert me["tenant_name"] == "bob"


def test_approve_cli_unknown_code_fails_with_one_line(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    result = CliRunner().invoke(
        main, ["approve", "BCDF-GHJK", "--user", "bob", "--data-dir", str(tmp_path)],
        env=cli_env(Settings(data_dir=tmp_path, **backend)),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no pending login" in result.output


def test_approve_cli_never_creates_a_data_directory(tmp_path: Path) -> None:
    """Run under another HOME (or --data-dir), approve says where it looked and leaves no
    empty data directory behind."""
    elsewhere = tmp_path / "not-the-servers"
    result = CliRunner().invoke(
        main, ["approve", "BCDF-GHJK", "--data-dir", str(elsewhere)],
        env={"MESHFS_DATABASE_URL": None},
    )  # fmt: skip
    assert result.exit_code == 1
    assert str(elsewhere) in result.output
    assert "--data-dir" in result.output
    assert "Traceback" not in result.output
    assert not elsewhere.exists()


def test_approve_cli_lists_pending_codes_and_shows_client_names_safely(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    import asyncio

    import httpx
    from asgi_lifespan import LifespanManager
    from meshfs_server_backends import STARTUP_SECONDS

    from meshfs_server.app import create_app

    data = tmp_path / "data"
    settings = Settings(data_dir=data, **backend)
    hostile = "laptop\x1b[2J\x1b]0;pwned\x07\u202e\r\nforged line" + "x" * 500

    def approve(code: str) -> Any:
        return CliRunner().invoke(
            main, ["approve", code, "--user", "bob", "--data-dir", str(data)],
            env=cli_env(settings),
        )  # fmt: skip

    async def scenario() -> tuple[Any, Any, str]:
        app = create_app(settings, background=False)
        async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                started = await client.post("/auth/device/start", json={"client_name": hostile})
                code = started.json()["user_code"]
                wrong = await asyncio.to_thread(approve, "BCDF-GHJK")
                right = await asyncio.to_thread(approve, code)
                return wrong, right, code

    wrong, right, code = asyncio.run(scenario())
    assert wrong.exit_code == 1
    assert "no pending login with code BCDF-GHJK" in wrong.output
    where = str(data) if settings.database_url is None else "Postgres database"
    assert where in wrong.output
    assert code in wrong.output  # the pending code, to pick from
    assert right.exit_code == 0, right.output
    for output in (wrong.output, right.output):
        assert not any(c in output for c in "\x1b\x07\r\u202e")
        assert "\nforged line" not in output
        assert max(len(line) for line in output.splitlines()) < 200
    assert "laptop" in right.output


def test_approve_never_joins_someone_elses_tenant_by_its_name(
    tmp_path: Path, backend: dict[str, Any]
) -> None:
    import asyncio

    import httpx
    from asgi_lifespan import LifespanManager
    from meshfs_server_backends import STARTUP_SECONDS

    from meshfs_server.app import create_app

    data = tmp_path / "data"
    settings = Settings(data_dir=data, **backend)
    made = CliRunner().invoke(
        main, ["admin", "create-tenant", "bob", "--data-dir", str(data)], env=cli_env(settings)
    )
    assert made.exit_code == 0, made.output

    async def scenario() -> Any:
        app = create_app(settings, background=False)
        async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                started = (await client.post("/auth/device/start", json={})).json()
                return await asyncio.to_thread(
                    CliRunner().invoke, main,
                    ["approve", started["user_code"], "--user", "bob", "--data-dir", str(data)],
                    env=cli_env(settings),
                )  # fmt: skip

    refused = asyncio.run(scenario())
    assert refused.exit_code == 1
    assert "--tenant NAME" in refused.output
    users = CliRunner().invoke(
        main, ["admin", "list-users", "--data-dir", str(data)], env=cli_env(settings)
    )
    assert "bob" not in users.output  # nothing was created


def test_keys_rotate_keeps_old_keys(tmp_path: Path, backend: dict[str, Any]) -> None:
    runner = CliRunner(env=cli_env(Settings(data_dir=tmp_path, **backend)))
    first = runner.invoke(main, ["keys", "rotate", "--data-dir", str(tmp_path)])
    second = runner.invoke(main, ["keys", "rotate", "--data-dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "3 key(s)" in second.output  # the generated one plus two rotations


@pytest.mark.parametrize("secret", ["x" * 40])
async def test_shared_secret_signs_hs256(
    tmp_path: Path, secret: str, backend: dict[str, Any]
) -> None:
    import httpx
    from asgi_lifespan import LifespanManager
    from meshfs_server_backends import STARTUP_SECONDS

    from meshfs_server.app import create_app

    settings = Settings(
        data_dir=tmp_path / "d", jwt_secret=secret, dev_auto_approve=True, **backend
    )
    app = create_app(settings, background=False)
    async with LifespanManager(app, startup_timeout=STARTUP_SECONDS) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            started = (await client.post("/auth/device/start", json={})).json()
            tokens = (
                await client.post("/auth/device/poll", json={"device_code": started["device_code"]})
            ).json()
            me = await client.get(
                "/auth/whoami", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
    assert me.status_code == 200
    assert not (settings.keys_path / KEYS_FILE).exists()
