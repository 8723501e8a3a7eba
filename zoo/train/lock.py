"""One training per run directory.

``zoo train`` holds an advisory lock (``flock``) on ``<run>/.lock`` for as long as it trains. The
kernel releases it when the process ends, however it ends (``kill -9`` included), so a lock is
never stale; a second training of the same directory is refused with the holder's pid. Readers
(``zoo bench``, ``zoo export``) take no lock: checkpoints appear by atomic rename and are read
into memory and checked against their manifest (``zoo.runs.Run.snapshot``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from zoo.errors import ZooError

LOCK_FILE = ".lock"


class RunLockedError(ZooError):
    """The run directory is being trained by another process."""


def holder(path: Path) -> str:
    """Who holds the lock file at ``path``, as recorded by the holder ("pid N on HOST since T")."""
    for _ in range(100):  # the holder writes its pid right after locking: wait a moment (5 s at most)
        try:
            info = json.loads(path.read_text() or "null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and "pid" in info:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("since", 0)))
            return f"pid {info['pid']} on {info.get('host', '?')}, since {since}"
        time.sleep(0.05)
    return "a process that did not record its pid"


class RunLock:
    """Exclusive, non-blocking lock of a run directory; ``release`` (or process exit) frees it."""

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunLockedError(
                f"{self.run_dir} is being trained by another process ({holder(self.path)}); wait for it to "
                f"finish or stop it (it resumes from its checkpoints), or choose another --out") from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
