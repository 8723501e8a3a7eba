"""One writer per directory (a run, a study).

The writer holds an OS lock (``flock``) on the directory itself, opened for as long as it works.
The kernel releases it when the process ends, however it ends (``kill -9`` included), so a lock is
never stale; and since no file carries it, deleting or replacing a file cannot hand the directory
to a second writer. ``.lock`` only records who holds it (pid, host, since), for the refusal
message. Readers (``zoo bench``, ``zoo export``) take no lock: checkpoints appear by atomic rename
and are read into memory and checked against their manifest (``zoo.runs.Run.snapshot``).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path

from zoo.errors import ZooError

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class RunLockedError(ZooError):
    """The directory is held by another process."""


def holder(path: Path, wait: float = 5.0) -> str:
    """Who holds the lock recorded in ``path`` ("pid N on HOST, since T")."""
    deadline = time.monotonic() + wait
    while True:  # the holder records its pid right after locking: wait a moment for it
        try:
            info = json.loads(path.read_text() or "null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and "pid" in info:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("since", 0)))
            return f"pid {info['pid']} on {info.get('host', '?')}, since {since}"
        if time.monotonic() > deadline:
            return "a process that did not record its pid"
        time.sleep(0.05)


class DirLock:
    """Exclusive, non-blocking lock of a directory; ``release`` (or process exit) frees it.

    ``acquire`` only locks (it writes nothing, so a directory that turns out to be foreign is left
    untouched); ``record`` writes ``.lock`` once the holder knows the directory is its own."""

    busy = "{dir} is held by another process ({holder})"

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.path = self.dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DirLock:
        if fcntl is None:
            raise ZooError(f"locking {self.dir} needs a POSIX system (fcntl.flock); this platform has none")
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ZooError(f"cannot lock {self.dir} ({exc.strerror or exc}); its filesystem may not support "
                               f"flock: choose a directory on a local disk") from exc
            raise RunLockedError(self.busy.format(dir=self.dir, holder=holder(self.path))) from None
        self._fd = fd
        return self

    def record(self) -> None:
        """Write who holds the lock into ``.lock`` (atomically)."""
        from zoo import fileio

        fileio.write_json(self.path, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if self.path.is_file():
                    os.truncate(self.path, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> DirLock:
        self.acquire()
        self.record()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(DirLock):
    """The lock of a run directory: one training at a time."""

    busy = ("another training holds this directory: {dir} is being trained by another process ({holder}); "
            "wait for it to finish or stop it (it resumes from its checkpoints), or choose another --out")


class StudyLock(DirLock):
    """The lock of a study directory: one ``zoo compare`` at a time."""

    busy = ("another zoo compare holds this study: {dir} is being written by another process ({holder}); "
            "wait for it to finish or stop it (rerunning resumes the study), or choose another --out")


class BenchLock:
    """A blocking lock around the read-merge-write of ``bench.json`` in a model directory (its own
    file, ``.bench.lock``, so that a training's lock of the run does not exclude benchmarking)."""

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / ".bench.lock"
        self._fd: int | None = None

    def __enter__(self) -> BenchLock:
        if fcntl is None:
            return self
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only directory: nothing will be written there either
            return self
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
