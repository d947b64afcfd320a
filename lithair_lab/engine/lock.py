"""One writer per data directory: an advisory ``flock`` on ``.lithair_lab.lock``.

The kernel releases the lock when the holding process dies (even by SIGKILL),
so a crash never leaves a directory locked. The file's text names the holder
(pid, host, since when) for the error another writer gets.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import StoreLockedError

LOCK_NAME = ".lithair_lab.lock"


class DirectoryLock:
    """An exclusive, non-blocking write lock on a data directory."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreLockedError(directory, holder) from None
        except BaseException:
            os.close(fd)
            raise
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock (idempotent). The file stays: deleting it could race a new holder."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    return text or "another process (holder unknown)"
