"""``meshfs-server``: run the server (:mod:`.serve`) and administer it (:mod:`.auth`,
:mod:`.admin`); :mod:`.common` holds what the commands share.

With no sub-command it serves, so ``meshfs-server`` alone starts the embedded default.
"""

from __future__ import annotations

from meshfs_server.cli.admin import admin
from meshfs_server.cli.auth import approve, keys
from meshfs_server.cli.serve import main

main.add_command(approve)
main.add_command(keys)
main.add_command(admin)

__all__ = ["main"]
