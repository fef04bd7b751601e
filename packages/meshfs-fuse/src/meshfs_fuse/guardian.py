"""A small watcher process that unmounts the mount point if the daemon dies.

libfuse's ``auto_unmount`` does this through ``fusermount3``, but on this machine it sometimes
leaves the dead mount ("Transport endpoint is not connected") after a ``kill -9``. So the
daemon also starts a guardian in its own session: it holds the read end of a pipe whose only
write end is the daemon's. When the pipe reports end-of-file the daemon is gone (however it
ended); if the mount it watched - the same device at the same mount point - is still there,
the guardian detaches it (``fusermount3 -uz``). A new mount at the same place has another
device and is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["mount_device", "start_guardian"]

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_device(target: str, mountinfo: str) -> str | None:
    """The ``major:minor`` of the topmost mount at *target* in a mountinfo text, if any."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == target:
            found = fields[2]
    return found


def start_guardian(target: Path) -> subprocess.Popen[bytes] | None:
    """Start the guardian of the mount now at *target*; close its stdin to release it."""
    device = mount_device(str(target), MOUNTINFO.read_text())
    if device is None:
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "meshfs_fuse.guardian", str(target), device],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _watch(target: str, device: str) -> None:
    os.read(0, 1)  # returns b"" when the daemon is gone, however it ended
    if mount_device(target, MOUNTINFO.read_text()) != device:
        return  # unmounted cleanly, or another mount is there now
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    command = [tool, "-u", "-z", "-q", target] if tool else ["umount", "-l", target]
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    _watch(sys.argv[1], sys.argv[2])
