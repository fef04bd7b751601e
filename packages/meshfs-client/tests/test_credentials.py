"""The credential store: private permissions, atomic replacement, one profile per server."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from meshfs_client._credentials import Credentials, CredentialStore


def creds(server: str, refresh: str = "r1", access: str = "a1") -> Credentials:
    return Credentials(server=server, access_token=access, refresh_token=refresh, expires_at=1e10)


def test_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "cfg" / "credentials.json")
    store.save(creds("http://a"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_existing_loose_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    CredentialStore(directory / "credentials.json").save(creds("http://a"))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_profiles_are_per_server_and_default_follows_login(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    store.save(creds("http://a", refresh="ra"))
    store.save(creds("http://b", refresh="rb"), make_default=True)
    assert store.default_server() == "http://b"
    loaded_a = store.load("http://a")
    assert loaded_a is not None
    assert loaded_a.refresh_token == "ra"
    assert store.servers() == ["http://a", "http://b"]
    assert store.delete("http://b")
    assert store.default_server() == "http://b"  # logging out does not switch servers
    assert store.load("http://b") is None
    assert not store.delete("http://b")


def test_rotation_replaces_atomically_without_leftovers(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    store.save(creds("http://a", refresh="r0"))
    inode_before = store.path.stat().st_ino
    store.save(creds("http://a", refresh="r1"))
    loaded = store.load("http://a")
    assert loaded is not None
    assert loaded.refresh_token == "r1"
    # Replaced by rename (new inode), and no temporary file is left behind.
    assert store.path.stat().st_ino != inode_before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "credentials.json"
    ]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    store.save(creds("http://a", refresh="r0"))
    stop = threading.Event()
    seen_bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            data = store.path.read_bytes()
            if not data.rstrip().endswith(b"}"):
                seen_bad.append(data.decode(errors="replace"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            store.save(creds("http://a", refresh=f"r{i}" * 50))
    finally:
        stop.set()
        thread.join()
    assert seen_bad == []


def test_corrupt_file_reads_as_logged_out(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    store = CredentialStore(path)
    assert store.load("http://a") is None
    store.save(creds("http://a"))
    assert store.load("http://a") is not None


def test_lock_file_is_private(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials.json")
    with store.locked():
        lock = tmp_path / "credentials.json.lock"
        assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600


def test_expiry_margin() -> None:
    c = Credentials(server="s", access_token="a", expires_at=1000.0)
    assert c.expires_within(60, now=950)
    assert not c.expires_within(60, now=900)
    assert not Credentials(server="s", access_token="a").expires_within(60)
