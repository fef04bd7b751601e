"""``meshfs://`` against a REAL meshfs-server process: fsspec's own abstract test suite, our
own behaviour (ranges, versions, chunked writes, server-side mv, errors) and pandas/pyarrow."""

from __future__ import annotations

import asyncio
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec  # type: ignore[import-untyped]
import pytest
from fsspec.tests.abstract import (  # type: ignore[import-untyped]
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)
from meshfs_client_testkit import Account, LiveServer, device_login

from meshfs_client._credentials import CredentialStore
from meshfs_client.fsspec import MeshFSFileSystem
from meshfs_common.hashing import CHUNK_SIZE

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def fs_account(
    live_server_process: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Account:
    """One logged-in account for the module (a device login per test would dominate)."""
    suffix = uuid.uuid4().hex[:10]
    config = tmp_path_factory.mktemp("fsspec-config")
    return asyncio.run(device_login(live_server_process, config, f"f{suffix}", f"ft{suffix}"))


def _token(account: Account) -> str:
    stored = CredentialStore(account.settings.credentials_path).load(account.server.url)
    assert stored is not None
    return stored.access_token


@pytest.fixture(scope="module")
def meshfs(fs_account: Account) -> Iterator[MeshFSFileSystem]:
    fs = MeshFSFileSystem(
        server=fs_account.server.url, token=_token(fs_account), skip_instance_cache=True
    )
    yield fs
    if fs._client is not None:
        MeshFSFileSystem.close_session(fs.loop, fs._client)


class MeshFSFixtures(AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, meshfs: MeshFSFileSystem, live_server: LiveServer) -> MeshFSFileSystem:
        return meshfs

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self, meshfs: MeshFSFileSystem) -> Iterator[str]:
        path = f"/abstract-{uuid.uuid4().hex[:8]}"
        meshfs.makedirs(path)
        yield path
        meshfs.rm(path, recursive=True)


class TestMeshFSCopy(AbstractCopyTests, MeshFSFixtures):  # type: ignore[misc]
    pass


class TestMeshFSGet(AbstractGetTests, MeshFSFixtures):  # type: ignore[misc]
    pass


class TestMeshFSPut(AbstractPutTests, MeshFSFixtures):  # type: ignore[misc]
    pass


class TestMeshFSOpen(AbstractOpenTests, MeshFSFixtures):  # type: ignore[misc]
    pass


class TestMeshFSPipe(AbstractPipeTests, MeshFSFixtures):  # type: ignore[misc]
    pass


# --- our own behaviour ------------------------------------------------------------------------


@pytest.fixture
def root(meshfs: MeshFSFileSystem, live_server: LiveServer) -> Iterator[str]:
    path = f"/own-{uuid.uuid4().hex[:8]}"
    meshfs.makedirs(path)
    yield path
    meshfs.rm(path, recursive=True)


def test_registered_through_the_entry_point(fs_account: Account) -> None:
    assert fsspec.get_filesystem_class("meshfs") is MeshFSFileSystem
    fs, path = fsspec.core.url_to_fs(
        "meshfs://data/a.csv", server=fs_account.server.url, token=_token(fs_account)
    )
    assert isinstance(fs, MeshFSFileSystem)
    assert path == "/data/a.csv"
    assert fs.version_aware is False
    fs2, path2 = fsspec.core.url_to_fs(
        "meshfs:///data/a.csv?versionId=v1", server=fs_account.server.url, token="x"
    )
    assert fs2.version_aware is True
    assert fs2.split_path(path2) == ("/data/a.csv", "v1")


def test_server_and_login_from_the_environment(
    fs_account: Account, monkeypatch: pytest.MonkeyPatch, root: str, meshfs: MeshFSFileSystem
) -> None:
    meshfs.pipe(f"{root}/env.txt", b"from env")
    monkeypatch.setenv("MESHFS_SERVER", fs_account.server.url)
    monkeypatch.setenv("MESHFS_CONFIG_DIR", str(fs_account.config_dir))
    monkeypatch.delenv("MESHFS_TOKEN", raising=False)
    with fsspec.open(f"meshfs://{root}/env.txt", "rb", skip_instance_cache=True) as f:
        assert f.read() == b"from env"


def test_ranged_reads_fetch_only_the_range(meshfs: MeshFSFileSystem, root: str) -> None:
    data = os.urandom(CHUNK_SIZE + 12345)
    meshfs.pipe(f"{root}/big.bin", data)
    assert meshfs.cat_file(f"{root}/big.bin", start=10, end=20) == data[10:20]
    assert meshfs.cat_file(f"{root}/big.bin", start=-5) == data[-5:]
    assert meshfs.cat_file(f"{root}/big.bin", start=len(data) + 10) == b""
    with meshfs.open(f"{root}/big.bin", "rb", block_size=1024, cache_type="none") as f:
        f.seek(CHUNK_SIZE - 3)
        assert f.read(6) == data[CHUNK_SIZE - 3 : CHUNK_SIZE + 3]
        f.seek(-4, 2)
        assert f.read() == data[-4:]
    assert meshfs.info(f"{root}/big.bin")["size"] == len(data)


def test_a_reader_keeps_the_version_it_opened(meshfs: MeshFSFileSystem, root: str) -> None:
    meshfs.pipe(f"{root}/v.txt", b"first version!")
    with meshfs.open(f"{root}/v.txt", "rb", block_size=4, cache_type="none") as f:
        assert f.read(5) == b"first"
        meshfs.pipe(f"{root}/v.txt", b"SECOND VERSION")
        assert f.read() == b" version!"


def test_chunked_write_commits_on_close(meshfs: MeshFSFileSystem, root: str) -> None:
    piece = os.urandom(1024 * 1024)
    with meshfs.open(f"{root}/w.bin", "wb") as f:
        for _ in range(9):  # 9 MiB: three 4 MiB chunks through upload/init/part/commit
            f.write(piece)
        assert not meshfs.exists(f"{root}/w.bin")  # nothing visible before close
    assert meshfs.cat_file(f"{root}/w.bin") == piece * 9
    with meshfs.open(f"{root}/w.bin", "ab") as f:
        f.write(b"tail")
    assert meshfs.cat_file(f"{root}/w.bin", start=-4) == b"tail"
    assert meshfs.size(f"{root}/w.bin") == 9 * len(piece) + 4
    with meshfs.open(f"{root}/t.txt", "w") as text:
        text.write("héllo\n")
    assert meshfs.cat_file(f"{root}/t.txt") == "héllo\n".encode()


def test_versions_in_the_s3fs_convention(fs_account: Account, root: str) -> None:
    fs = MeshFSFileSystem(
        server=fs_account.server.url,
        token=_token(fs_account),
        version_aware=True,
        skip_instance_cache=True,
    )
    fs.pipe(f"{root}/doc.txt", b"one")
    fs.pipe(f"{root}/doc.txt", b"two!")
    versions = fs.object_version_info(f"{root}/doc.txt")
    assert [v["Size"] for v in versions] == [4, 3]
    assert [v["IsLatest"] for v in versions] == [True, False]
    old = versions[1]["VersionId"]
    assert fs.info(f"{root}/doc.txt")["VersionId"] == versions[0]["VersionId"]
    assert fs.cat_file(f"{root}/doc.txt?versionId={old}") == b"one"
    assert fs.info(f"{root}/doc.txt?versionId={old}")["size"] == 3
    with fsspec.open(
        f"meshfs://{root}/doc.txt?versionId={old}",
        "rb",
        server=fs_account.server.url,
        token=_token(fs_account),
    ) as f:
        assert f.read() == b"one"
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{root}/doc.txt?versionId=nope")
    with pytest.raises(ValueError, match="reading"):
        fs.open(f"{root}/doc.txt?versionId={old}", "wb")


def test_mv_is_a_server_side_rename(meshfs: MeshFSFileSystem, root: str) -> None:
    meshfs.pipe(f"{root}/a/one.txt", b"1")
    meshfs.pipe(f"{root}/a/sub/two.txt", b"2")
    node = meshfs.info(f"{root}/a")["node_id"]
    meshfs.mv(f"{root}/a", f"{root}/b", recursive=True)
    assert meshfs.info(f"{root}/b")["node_id"] == node  # same node: moved, not copied
    assert meshfs.cat_file(f"{root}/b/sub/two.txt") == b"2"
    assert not meshfs.exists(f"{root}/a")
    file_node = meshfs.info(f"{root}/b/one.txt")["node_id"]
    meshfs.mv(f"{root}/b/one.txt", f"{root}/new/deeper/one.txt")
    assert meshfs.info(f"{root}/new/deeper/one.txt")["node_id"] == file_node
    meshfs.mv(f"{root}/new/deeper/one.txt", f"{root}/b")  # into an existing directory
    assert meshfs.cat_file(f"{root}/b/one.txt") == b"1"


def test_cp_file_copies_content_and_history_stays(meshfs: MeshFSFileSystem, root: str) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 7)
    meshfs.pipe(f"{root}/src.bin", data)
    meshfs.cp_file(f"{root}/src.bin", f"{root}/dst.bin")
    assert meshfs.cat_file(f"{root}/dst.bin") == data
    assert meshfs.info(f"{root}/dst.bin")["node_id"] != meshfs.info(f"{root}/src.bin")["node_id"]
    assert (
        meshfs.info(f"{root}/dst.bin")["content_hash"]
        == (meshfs.info(f"{root}/src.bin")["content_hash"])
    )


def test_errors_are_builtin_os_errors(meshfs: MeshFSFileSystem, root: str) -> None:
    meshfs.pipe(f"{root}/f", b"x")
    with pytest.raises(FileNotFoundError):
        meshfs.info(f"{root}/missing")
    with pytest.raises(FileNotFoundError):
        meshfs.cat_file(f"{root}/missing")
    with pytest.raises(FileNotFoundError):
        meshfs.ls(f"{root}/missing")
    with pytest.raises(FileExistsError):
        meshfs.mkdir(f"{root}/f")
    with pytest.raises(FileExistsError):
        meshfs.makedirs(root)
    meshfs.makedirs(root, exist_ok=True)
    with pytest.raises(NotADirectoryError):
        meshfs.pipe(f"{root}/f/below", b"y")
    with pytest.raises(IsADirectoryError):
        meshfs.open(root, "rb")
    with pytest.raises(FileExistsError):
        meshfs.pipe_file(f"{root}/f", b"z", mode="create")
    with pytest.raises(OSError, match="not empty"):
        meshfs.rm(root)
    assert meshfs.ls(f"{root}/f", detail=False) == [f"{root}/f"]
    assert meshfs.isdir(root)
    assert meshfs.isfile(f"{root}/f")
    assert not meshfs.exists(f"{root}/missing")


def test_unreachable_server_is_a_meshfs_error(tmp_path: Path) -> None:
    from meshfs_client import UnavailableError

    fs = MeshFSFileSystem(server="http://127.0.0.1:1", token="t", skip_instance_cache=True)
    with pytest.raises(UnavailableError):
        fs.ls("/")


def test_pandas_csv_and_parquet_round_trip(fs_account: Account, root: str) -> None:
    import pandas as pd  # the client's test dependency group has pandas and pyarrow

    options: dict[str, Any] = {"server": fs_account.server.url, "token": _token(fs_account)}
    frame = pd.DataFrame({"name": ["a", "b", "ç"], "value": [1, 2, 3], "score": [0.5, 1.5, 2.5]})
    frame.to_csv(f"meshfs://{root}/frame.csv", index=False, storage_options=options)
    back = pd.read_csv(f"meshfs://{root}/frame.csv", storage_options=options)
    pd.testing.assert_frame_equal(back, frame)

    frame.to_parquet(f"meshfs://{root}/frame.parquet", storage_options=options)
    parquet = pd.read_parquet(f"meshfs://{root}/frame.parquet", storage_options=options)
    pd.testing.assert_frame_equal(parquet, frame)
