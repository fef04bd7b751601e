"""The server restarts while a writer writes through the mount: nothing a close acknowledged
is lost, and the files whose close failed during the restart are committed once it is back."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from mount_testkit import login, mounted, running_server, wait_for

from meshfs_common.errors import MeshFSError


class Writer(threading.Thread):
    """Writes numbered files one after another (create, write, close) until stopped."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.acknowledged: dict[str, bytes] = {}
        """Files whose close returned: committed, so never to be lost."""
        self.refused: dict[str, bytes] = {}
        """Files whose close failed while the server was away (kept and retried)."""
        self.unexpected: list[OSError] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=120)

    def run(self) -> None:
        index = 0
        while not self._halt.is_set():
            name = f"w{index:05d}.txt"
            data = f"file {index} ".encode() * (1 + index % 700)
            try:
                with open(self.directory / name, "wb") as out:
                    out.write(data)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.ETIMEDOUT):
                    self.refused[name] = data
                else:
                    self.unexpected.append(exc)
            else:
                self.acknowledged[name] = data
            index += 1


def test_a_server_restart_during_writes_loses_nothing(tmp_path: Path) -> None:
    with running_server(tmp_path / "own") as server:
        account = login(server, tmp_path / "config", "restart", "restart")
        with mounted(account, tmp_path / "mnt", tmp_path / "cache") as mount:
            (mount.target / "out").mkdir()
            writer = Writer(mount.target / "out")
            writer.start()
            try:
                wait_for(lambda: len(writer.acknowledged) >= 10, 60, "writes before the restart")
                server.stop()
                before = len(writer.acknowledged) + len(writer.refused)
                server.restart()
                wait_for(
                    lambda: len(writer.acknowledged) + len(writer.refused) >= before + 10,
                    90,
                    "writes after the restart",
                )
            finally:
                writer.stop()
            assert not writer.unexpected, writer.unexpected
            expected = writer.acknowledged | writer.refused

            def stored() -> dict[str, bytes]:
                with account.client() as api:
                    return {
                        entry.name: api.read_bytes(f"/out/{entry.name}")
                        for entry in api.listdir("/out")
                    }

            def all_there() -> bool:
                try:
                    return stored() == expected
                except MeshFSError:
                    return False

            # Refused closes are committed by the daemon's retries once the server is back.
            wait_for(all_there, 60, "every written file on the server")
            with account.client() as api:
                for name in writer.acknowledged:
                    assert len(api.versions(f"/out/{name}")) == 1, name
            assert set(os.listdir(mount.target / "out")) == set(expected)
