"""While the server is down, cached reads work and closes fail; when it is back, the files
whose close failed are committed without a remount."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from mount_testkit import login, mounted, running_server, wait_for

from meshfs_common.errors import MeshFSError


def test_an_outage_loses_nothing(tmp_path: Path) -> None:
    with running_server(tmp_path / "own") as server:
        account = login(server, tmp_path / "config", "outage", "outage")
        with mounted(account, tmp_path / "mnt", tmp_path / "cache") as mount:
            target = mount.target
            (target / "before.txt").write_bytes(b"cached")
            assert (target / "before.txt").read_bytes() == b"cached"
            assert sorted(os.listdir(target)) == ["before.txt"]

            server.stop()
            assert (target / "before.txt").read_bytes() == b"cached"  # from the caches
            with pytest.raises(OSError) as failed, open(target / "during.txt", "wb") as out:
                out.write(b"written during the outage")
            assert failed.value.errno in (errno.EAGAIN, errno.ETIMEDOUT), failed.value
            # Still there, with its content, while it waits for the server.
            assert (target / "during.txt").read_bytes() == b"written during the outage"

            # The release after the failed close tried again, failed, and handed the file to
            # the daemon's retries.
            wait_for(lambda: "is not committed yet; retrying" in mount.log(), 60, "the hand-over")
            server.restart()

            def committed() -> bool:
                try:
                    with account.client() as api:
                        return api.read_bytes("/during.txt") == b"written during the outage"
                except MeshFSError:
                    return False

            wait_for(committed, 30, "the commit after the outage")
            with account.client() as api:
                assert len(api.versions("/during.txt")) == 1
