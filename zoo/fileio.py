"""Every file the zoo writes goes through here, so that a reader (or a crash) sees the old
version or the new one, never a third.

A whole file is written to a temporary file in the same directory (``.NAME.tmp-PID-RANDOM``),
flushed and fsync'ed, then renamed over the target and the directory fsync'ed (``write_bytes``,
``write_text``, ``write_json``; ``if_changed`` skips a write that would change nothing). A file
made by another library (``save_file``, ``savefig``) is written to such a temporary path inside
``staged``. A log is only ever appended to (``AppendLog``): a record is one ``write`` of a whole
line, and a write cut short (a full disk, a file-size limit) is undone before the error is raised.
A directory built elsewhere replaces another as a whole (``replace_dir``). A temporary file names
its writer's pid (``temp_owner``), so that a clean-up of what killed writers left can keep the files
of a writer still at work (``process_alive``).

"No space left" and "file too large" are raised as ``WriteError`` (a ``ZooError`` and an
``OSError`` with the original errno) naming the path and the bytes needed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from zoo import diskspace
from zoo.errors import ZooError

# Indirections of the OS calls that change files: the failure-injection tests replace them.
_open = os.open
_write = os.write
_fsync = os.fsync
_replace = os.replace

TEMP_PATTERN = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")  # group 1: the writer's pid


class WriteError(ZooError, OSError):
    """A write failed for want of space or under a file-size limit; the message names the path."""


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (``TEMP_PATTERN``)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def is_temp(name: str) -> bool:
    return bool(TEMP_PATTERN.match(name))


def temp_owner(name: str) -> int | None:
    """The pid of the process writing the temporary file ``name`` (None when it is not one)."""
    m = TEMP_PATTERN.match(name)
    return int(m.group(1)) if m else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process
        return True
    return True


def _size_limit() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        return None if soft == resource.RLIM_INFINITY else int(soft)
    except (ImportError, ValueError, OSError):
        return None


def explain(exc: BaseException, path: Path, needed: float) -> BaseException:
    """``exc`` as a ``WriteError`` naming ``path`` and ``needed`` bytes when it is a full disk or a
    file-size limit; otherwise ``exc`` itself."""
    if isinstance(exc, WriteError):
        return exc
    if (isinstance(exc, OSError) and exc.errno == errno.EFBIG) or any(
            t in str(exc) for t in ("File too large", "os error 27")):
        limit = _size_limit()
        have = f"; the file-size limit (ulimit -f) is {limit:,} bytes" if limit is not None else ""
        return WriteError(errno.EFBIG, f"file too large: {path} needs {int(needed):,} bytes{have}")
    if diskspace.is_full(exc):
        return WriteError(errno.ENOSPC, diskspace.no_space(path.parent, needed, str(path)))
    return exc


def _reraise(exc: BaseException, path: Path, needed: float) -> NoReturn:
    err = explain(exc, path, needed)
    if err is exc:
        raise exc
    raise err from exc


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = _write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        view = view[n:]


def write_bytes(path: str | Path, data: bytes, *, if_changed: bool = False) -> bool:
    """Replace ``path`` by ``data`` atomically; returns whether it was written (``if_changed``: not
    when the file already holds exactly ``data``)."""
    path = Path(path)
    if if_changed:
        try:
            if path.read_bytes() == data:
                return False
        except OSError:
            pass
    tmp = temp_path(path)
    try:
        fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _mode())
        try:
            _write_all(fd, data)
            _fsync(fd)
        finally:
            os.close(fd)
        _replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        _reraise(exc, path, len(data))
    fsync_dir(path.parent)
    return True


def write_text(path: str | Path, text: str, *, if_changed: bool = False) -> bool:
    return write_bytes(path, text.encode("utf-8"), if_changed=if_changed)


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: str | Path, data: Any, *, if_changed: bool = False, indent: int | None = 1,
               **dumps: Any) -> bool:
    """``data`` as JSON (with a final newline), atomically."""
    return write_text(path, json.dumps(data, indent=indent, **dumps) + "\n", if_changed=if_changed)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def staged(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a file name; on a clean exit the file
    is fsync'ed and renamed over ``path``; on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, _mode())
        _replace(tmp, path)
    except BaseException as exc:
        size = tmp.stat().st_size if tmp.exists() else 0
        _unlink(tmp)
        _reraise(exc, path, size)
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """fsync the file at ``path`` (written by a writer that did not)."""
    fd = _open(path, os.O_RDONLY)
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """fsync every file of ``directory`` and the directory itself (before renaming it into place)."""
    for p in sorted(Path(directory).rglob("*")):
        if p.is_file() and not p.is_symlink():
            try:
                fsync_file(p)
            except OSError as exc:
                _reraise(exc, p, p.stat().st_size)
    fsync_dir(Path(directory))


def rename(src: str | Path, dst: str | Path) -> None:
    """Rename a finished file or directory into place (``os.replace``) and make it durable."""
    try:
        _replace(src, dst)
    except OSError as exc:
        _reraise(exc, Path(dst), 0)
    fsync_dir(Path(dst).parent)


def replace_dir(new: Path, target: Path) -> None:
    """Put directory ``new`` in place of ``target`` (which may exist): ``target`` is moved aside,
    ``new`` renamed in, the old one deleted. If the second rename fails, the old one is put back."""
    new, target = Path(new), Path(target)
    fsync_tree(new)
    old = None
    try:
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            _replace(target, old)
        try:
            _replace(new, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)
            raise
    except OSError as exc:
        _reraise(exc, target, 0)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class AppendLog:
    """A log file only ever appended to: each ``append`` is one write of whole lines, flushed to
    disk; a write cut short is truncated away again before its error is raised."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._fd: int | None = _open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _mode())
        except OSError as exc:
            _reraise(exc, self.path, 0)
        self._ends_cleanly()

    def _ends_cleanly(self) -> None:
        """A line cut by a kill mid-write is closed, so the next record starts on a line of its own."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(size - 1)
            last = f.read(1)
        if last != b"\n":
            self.append("")

    def append(self, text: str) -> None:
        """Append ``text`` plus a newline."""
        assert self._fd is not None, f"{self.path} is closed"
        data = (text + "\n").encode("utf-8")
        start = os.fstat(self._fd).st_size
        try:
            _write_all(self._fd, data)
            _fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)  # never leave a cut record behind
            except OSError:
                pass
            _reraise(exc, self.path, len(data))

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
