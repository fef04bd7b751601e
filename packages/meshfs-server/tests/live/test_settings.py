"""Settings: defaults, environment, flags; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshfs_server.settings import Settings, SettingsError


def test_defaults_match_the_documented_surface() -> None:
    s = Settings.from_env({})
    assert s.bind == "127.0.0.1:8787"
    assert s.token_ttl_seconds == 3600
    assert s.refresh_token_ttl_seconds == 2592000
    assert s.rate_limit_per_minute == 1200
    assert s.tenant_storage_quota_bytes == 10 * 1024**3
    assert s.jwt_secret is None
    assert s.dev_auto_approve is False
    assert s.sqlite_path.parts[-3:] == ("meshfs", "control-plane", "metadata.db")


def test_environment_and_flags(tmp_path: Path) -> None:
    env = {"MESHFS_BIND_ADDR": "0.0.0.0:9000", "MESHFS_DATA_DIR": str(tmp_path)}
    s = Settings.from_env(env, bind="127.0.0.1:9001")
    assert s.bind == "127.0.0.1:9001"  # a flag wins over the environment
    assert s.sqlite_path == tmp_path / "control-plane" / "metadata.db"
    assert s.content_path == tmp_path / "content"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MESHFS_BIND_ADDR", "localhost"),
        ("MESHFS_BIND_ADDR", "127.0.0.1:99999"),
        ("MESHFS_BIND_ADDR", "127.0.0.1:\u00b2"),
        ("MESHFS_TOKEN_TTL_SECONDS", "soon"),
        ("MESHFS_TOKEN_TTL_SECONDS", "0"),
        ("MESHFS_TOKEN_TTL_SECONDS", "+-5"),
        ("MESHFS_TOKEN_TTL_SECONDS", "\u0661"),
        ("MESHFS_DEV_AUTO_APPROVE", "perhaps"),
        ("MESHFS_LOG_LEVEL", "loud"),
        ("MESHFS_TYPO", "1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: ") as caught:
        Settings.from_env({name: value})
    assert "invalid literal" not in str(caught.value)  # says what is expected, in words


def test_flags_are_checked_like_their_variables() -> None:
    with pytest.raises(SettingsError, match=r"^--bind: expected HOST:PORT"):
        Settings.from_env({}, bind="localhost")


@pytest.mark.parametrize("value", ["short", "x" * 31])
def test_a_short_jwt_secret_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^MESHFS_JWT_SECRET: must be at least 32 bytes") as e:
        Settings.from_env({"MESHFS_JWT_SECRET": value})
    assert value not in str(e.value)
    assert Settings.from_env({"MESHFS_JWT_SECRET": "s" * 32}).jwt_secret == "s" * 32
    assert Settings.from_env({"MESHFS_JWT_SECRET": ""}).jwt_secret is None


@pytest.mark.parametrize(
    ("command", "name", "value"),
    [
        ([], "MESHFS_JWT_SECRET", "too-short"),
        (["serve"], "MESHFS_TOKEN_TTL_SECONDS", "soon"),
        (["serve"], "MESHFS_GC_GRACE_SECONDS", "-5"),
        (["serve"], "MESHFS_OBJECT_STORE_BACKEND", "gcs"),
        (["migrate"], "MESHFS_DATABASE_URL", "mysql://db/x"),
        (["collect"], "MESHFS_OBJECT_STORE_TIMEOUT_SECONDS", "never"),
        (["admin", "list-users"], "MESHFS_TYPO", "1"),
        (["keys", "rotate"], "MESHFS_JWT_SECRET", "short"),
        (["approve", "ABCD-EFGH"], "MESHFS_BIND_ADDR", "localhost"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    tmp_path: Path, command: list[str], name: str, value: str
) -> None:
    """What an administrator sees: the program, the variable, what is wrong; no traceback,
    nothing started or created."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_DATA_DIR": str(tmp_path / "data"), name: value}
    done = subprocess.run(
        [sys.executable, "-m", "meshfs_server", *command],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"meshfs-server: {name}: "), lines[0]
    if name == "MESHFS_JWT_SECRET":
        assert value not in lines[0]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("bind", ["0.0.0.0:8787", "[::]:8787"])
def test_listening_everywhere_needs_the_public_url(bind: str) -> None:
    """Without it, login links would name http://0.0.0.0:8787, which no client can open."""
    with pytest.raises(SettingsError, match="MESHFS_PUBLIC_URL"):
        Settings.from_env({"MESHFS_BIND_ADDR": bind})
    given = Settings.from_env(
        {"MESHFS_BIND_ADDR": bind, "MESHFS_PUBLIC_URL": "https://files.example.com/"}
    )
    assert given.base_url == "https://files.example.com"
    with pytest.raises(SettingsError, match="MESHFS_PUBLIC_URL"):
        Settings.from_env({"MESHFS_PUBLIC_URL": "files.example.com"})


def _broken_keys(data: Path) -> Path:
    keys = data / "control-plane" / "keys"
    keys.mkdir(parents=True)
    (keys / "signing.json").write_text("not json")
    return data


def _under_a_file(data: Path) -> Path:
    data.mkdir()
    (data / "file").write_text("")
    return data / "file" / "data"


@pytest.mark.parametrize(
    ("prepare", "says"),
    [(_broken_keys, "cannot read signing keys from"), (_under_a_file, "Not a directory")],
)
def test_a_server_that_cannot_start_says_why_in_one_line(
    tmp_path: Path, prepare: object, says: str
) -> None:
    import os
    import socket
    import subprocess
    import sys

    assert callable(prepare)
    data = prepare(tmp_path / "data")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHFS_")}
    env |= {"MESHFS_DATA_DIR": str(data), "MESHFS_BIND_ADDR": f"127.0.0.1:{port}"}
    done = subprocess.run(
        [sys.executable, "-m", "meshfs_server", "serve"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("meshfs-server: cannot start: "), done.stderr
    assert says in last
