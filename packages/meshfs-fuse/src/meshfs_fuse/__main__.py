"""``python -m meshfs_fuse``: the same as ``meshfs-mount``."""

from __future__ import annotations

from meshfs_fuse.cli import main

main(prog_name="meshfs-mount")
