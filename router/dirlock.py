"""One owner per data directory: an exclusive lock on `<data-dir>/LOCK`.

Two servers on one data directory would both run and the last to stop would overwrite the
other's snapshots. The lock is `fcntl.flock(LOCK_EX | LOCK_NB)`: an advisory lock on the open
file, which the kernel releases when the process dies however it dies, so a `kill -9` or a
crash leaves no stale lock to clean up by hand (a lock *file* whose existence is the lock
would). flock, unlike POSIX `fcntl` record locks, belongs to the open file description, not to
the process, so a second server in the same process (two EmbeddedServers) is refused too.

The file holds the owner (`pid 1234 on host x, since <iso time>`), for the message a second
server prints; the lock itself, not the text, decides who owns the directory. The file is
never removed: unlinking a flock'd file lets a second process lock a new inode under the same
name while the first still holds the old one.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = "LOCK"


class DirLocked(Exception):
    """Another open file (another process, or another server in this one) holds the lock."""

    def __init__(self, path: Path, owner: str):
        super().__init__(f"{path} is locked by {owner}")
        self.path = path
        self.owner = owner


def _owner_line() -> str:
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"pid {os.getpid()} on host {socket.gethostname()}, since {since}"


class DirLock:
    """Held from `acquire` until `release` (idempotent) or the process's death."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path) -> "DirLock":
        """Lock `directory/LOCK` or raise DirLocked naming the owner; OSError if the file cannot be opened."""
        path = Path(directory) / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)  # no O_TRUNC: it would erase the owner
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DirLocked(path, _read_owner(fd)) from None
            os.fchmod(fd, 0o600)  # an older file may have been created under another umask
            os.ftruncate(fd, 0)
            os.pwrite(fd, (_owner_line() + "\n").encode(), 0)
        except BaseException:
            os.close(fd)  # closing the only descriptor also drops a lock taken above
            raise
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the file (no stale owner for humans to read) and unlock it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the lock still goes with the close below
        finally:
            os.close(fd)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    # Empty when the owner has just locked and not yet written, or wrote it elsewhere.
    return " ".join(text.split()) or "another process (owner not recorded)"
