"""One writer per part: an exclusive ``flock`` on ``<split>/part-K-of-N.lock``."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from stvg.errors import InputError


class PartLocked(InputError):
    """Another live process is writing this part."""


def lock_part(path: Path, part: Path) -> int:
    """Take an exclusive ``flock`` on ``path`` and write our pid into it; return the fd.

    The lock dies with the process (also on ``kill -9``), so a stale lock file never blocks a
    rerun. ``flock`` works on local file systems and NFSv4; Lustre needs the ``flock`` mount
    option. Raises :class:`PartLocked` naming the holder when another process has it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip() or "unknown"
        os.close(fd)
        raise PartLocked(
            f"another writer is writing this part (lock held by pid/host {holder})",
            file=part,
            hint="Wait for it to finish, or give this run another shard (--shard K/N)",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd
