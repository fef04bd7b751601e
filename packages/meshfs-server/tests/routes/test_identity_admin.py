"""``meshfs-server admin ...`` on a temporary data directory, then the effect through the API."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import AuthHarness, cli_env

from meshfs_server.auth import accounts
from meshfs_server.auth.storage import identity_database
from meshfs_server.cli import main
from meshfs_server.settings import Settings


def run_admin(data: Path, *args: str, password: str | None = None, env: Any = None) -> Result:
    return CliRunner(env=env).invoke(
        main, ["admin", *args, "--data-dir", str(data)],
        input=None if password is None else password + "\n",
    )  # fmt: skip


@pytest.fixture
def on_backend(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    """The settings of a server on each backend (for commands and for reading back)."""
    return Settings(data_dir=tmp_path, **backend)


async def rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    async with identity_database(settings) as db, db.read() as conn:
        return await conn.fetchall(sql)


def test_accounts_tenants_and_members(tmp_path: Path, on_backend: Settings) -> None:
    admin = partial(run_admin, env=cli_env(on_backend))

    made = admin(tmp_path, "create-user", "alice", "--password-stdin", "--tenant", "acme",
                 password="s3cret-pass")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "owner of acme" in made.output
    assert admin(tmp_path, "create-user", "bob", "--no-password").exit_code == 0
    assert (
        admin(tmp_path, "create-tenant", "labs", "--plan", "pro", "--owner", "bob").exit_code == 0
    )
    assert admin(tmp_path, "add-member", "acme", "bob", "--role", "reader").exit_code == 0

    users = admin(tmp_path, "list-users")
    assert users.exit_code == 0
    lines = {line.split("\t")[0]: line for line in users.output.splitlines()}
    assert "acme:owner" in lines["alice"]
    assert "password" in lines["alice"].split("\t")
    assert "acme:reader" in lines["bob"]
    assert "labs:owner" in lines["bob"]
    assert "no-password" in lines["bob"]
    tenants = admin(tmp_path, "list-tenants").output
    assert "labs" in tenants
    assert "\tpro\t" in tenants

    # Conflicts and unknown names fail with one line and exit code 1.
    again = admin(tmp_path, "create-user", "alice", "--no-password")
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert admin(tmp_path, "add-member", "nope", "bob").exit_code == 1
    assert admin(tmp_path, "add-member", "acme", "bob", "--role", "god").exit_code == 2
    short = admin(tmp_path, "create-user", "carol", "--password-stdin", password="short")
    assert short.exit_code == 1
    assert "at least 8" in short.output

    # The password is stored as an argon2id hash and verifies.
    [(stored,)] = asyncio.run(
        rows(on_backend, "SELECT password_hash FROM users WHERE username = 'alice'")
    )
    assert stored.startswith("$argon2id$")
    assert accounts.verify_password(stored, "s3cret-pass")
    assert not accounts.verify_password(stored, "wrong")
    actions = {row[0] for row in asyncio.run(rows(on_backend, "SELECT action FROM audit"))}
    assert {"admin.create_user", "admin.create_tenant", "admin.add_member"} <= actions


def test_create_user_without_tenant_gets_a_tenant_of_their_own(
    tmp_path: Path, on_backend: Settings
) -> None:
    """A user who belongs to no tenant could not approve a login on /device."""
    admin = partial(run_admin, env=cli_env(on_backend))
    made = admin(tmp_path, "create-user", "dana", "--no-password")
    assert made.exit_code == 0, made.output
    assert "owner of dana" in made.output
    users = {
        line.split("\t")[0]: line for line in admin(tmp_path, "list-users").output.splitlines()
    }
    assert users["dana"].split("\t")[4] == "dana:owner"

    # A tenant of that name belongs to someone else: refused, naming the command to run, and
    # nothing is created.
    assert admin(tmp_path, "create-tenant", "erin").exit_code == 0
    clash = admin(tmp_path, "create-user", "erin", "--no-password")
    assert clash.exit_code == 1
    assert "meshfs-server admin create-user erin --tenant NAME" in clash.output
    assert "erin" not in {
        line.split("\t")[0] for line in admin(tmp_path, "list-users").output.splitlines()
    }
    joined = admin(tmp_path, "create-user", "erin", "--no-password", "--tenant", "erins")
    assert joined.exit_code == 0, joined.output
    assert "owner of erins" in joined.output


async def test_disable_user_stops_sessions_at_once(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    data = auth.settings.resolved_data_dir
    async with auth.client_for(tokens.access_token) as alice:
        assert (await alice.get("/auth/whoami")).status_code == 200
        env = cli_env(auth.settings)
        result = await asyncio.to_thread(run_admin, data, "disable-user", "alice", env=env)
        assert result.exit_code == 0, result.output
        assert (await alice.get("/auth/whoami")).status_code == 401
        refreshed = await auth.client.post(
            "/auth/refresh", json={"refresh_token": tokens.refresh_token}
        )
        assert refreshed.status_code == 400
        assert (
            await asyncio.to_thread(run_admin, data, "disable-user", "alice", "--enable", env=env)
        ).exit_code == 0
        assert (await alice.get("/auth/whoami")).status_code == 200


async def test_set_plan_is_admin_only_and_changes_limits(auth: AuthHarness) -> None:
    tokens = await auth.login("alice")
    data = auth.settings.resolved_data_dir
    async with auth.client_for(tokens.access_token) as alice:
        before = (await alice.get("/plans/current")).json()
        result = await asyncio.to_thread(
            run_admin, data, "set-plan", "alice", "team", env=cli_env(auth.settings)
        )
        assert result.exit_code == 0, result.output
        auth.services.identity.plans._cache.clear()
        after = (await alice.get("/plans/current")).json()
    assert before["plan"] == "free"
    assert after["plan"] == "team"
    assert after["plan_retention"] == {"max_versions": 1000, "max_days": 180, "grace_days": 60}
    assert after["storage"]["quota"] == 100 * before["storage"]["quota"]
    assert after["rate_limit_per_minute"] == 5 * before["rate_limit_per_minute"]


def test_admin_commands_never_start_an_empty_data_directory(tmp_path: Path) -> None:
    """Only create-user and create-tenant may start one (to prepare accounts before `serve`)."""
    elsewhere = tmp_path / "typo"
    env = {"MESHFS_DATABASE_URL": None}
    for args in (["list-users"], ["list-tenants"], ["disable-user", "bob"],
                 ["add-member", "acme", "bob"], ["set-plan", "acme", "pro"]):  # fmt: skip
        result = run_admin(elsewhere, *args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert str(elsewhere) in result.output
        assert not elsewhere.exists()
    assert run_admin(elsewhere, "create-tenant", "acme", env=env).exit_code == 0
    assert elsewhere.exists()
