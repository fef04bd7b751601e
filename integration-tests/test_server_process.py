"""The server as a user runs it: scripts/serve.sh, device login, restart, clean shutdown."""

from __future__ import annotations

import httpx
from conftest import ServerProcess


def test_serve_login_write_restart(server: ServerProcess) -> None:
    token = server.login()
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    assert api.get("/auth/whoami").json()["tenant_name"] == "acme"
    kept = api.put("/files/content", params={"path": "/notes/keep.txt"}, content=b"kept").json()
    api.put("/files/content", params={"path": "/notes/gone.txt"}, content=b"gone")
    api.delete("/files", params={"path": "/notes/gone.txt"})
    api.put("/files/content", params={"path": "/notes/keep.txt"}, content=b"kept v2")
    cursor = api.get("/sync/pull").json()["cursor"]

    assert server.stop() == 0
    server.start()

    # The signing key persisted, so the token still works; nothing came back or went missing.
    assert api.get("/files/download", params={"path": "/notes/keep.txt"}).content == b"kept v2"
    assert api.get("/files/meta", params={"path": "/notes/gone.txt"}).status_code == 404
    node_id = kept["entry"]["node_id"]
    versions = api.get(f"/files/{node_id}/versions").json()["versions"]
    assert len(versions) == 2
    old = api.get(
        "/files/download", params={"node_id": node_id, "version_id": versions[1]["version_id"]}
    )
    assert old.content == b"kept"
    assert api.get("/sync/pull", params={"cursor": cursor}).json() == {
        "events": [], "cursor": cursor, "has_more": False, "reset": False,
    }  # fmt: skip
    assert api.get("/readyz").json()["checks"] == {"database": "ok", "content": "ok"}


def test_second_tenant_is_isolated(server: ServerProcess) -> None:
    alice = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.login('alice', 'acme')}"}
    )
    bob = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.login('bob', 'globex')}"}
    )
    written = alice.put("/files/content", params={"path": "/secret"}, content=b"a").json()
    bob.put("/files/content", params={"path": "/secret"}, content=b"b")
    assert bob.get("/files/download", params={"path": "/secret"}).content == b"b"
    assert alice.get("/files/download", params={"path": "/secret"}).content == b"a"
    by_id = bob.get("/files/meta", params={"node_id": written["entry"]["node_id"]})
    assert by_id.status_code == 404


def test_bad_settings_exit_with_a_message(server: ServerProcess) -> None:
    import subprocess
    import sys

    env = dict(server.env, MESHFS_TOKEN_TTL_SECONDS="soon")
    result = subprocess.run(
        [sys.executable, "-m", "meshfs_server", "serve"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "MESHFS_TOKEN_TTL_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
