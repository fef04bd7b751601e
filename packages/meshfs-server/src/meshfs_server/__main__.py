"""``python -m meshfs_server`` is ``meshfs-server``."""

from meshfs_server.cli import main

main()
