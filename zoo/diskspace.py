"""Running out of disk space, said plainly: which directory, about how much was needed and is free."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Errors that carry no errno: safetensors (Rust) reports the OS error in its text; numpy's tofile
# reports a short write ("102018 requested and 61822 written"), which on a regular file means full.
_FULL_TEXT = ("No space left on device", "StorageFull", "os error 28", "Disk quota exceeded")


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write ran out of space."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = str(exc)
    return any(t in text for t in _FULL_TEXT) or ("requested and" in text and "written" in text)


def free_bytes(directory: Path) -> int | None:
    for path in (Path(directory), *Path(directory).parents):
        try:
            return shutil.disk_usage(path).free
        except OSError:
            continue
    return None


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}" if n < 10e6 else f"{n / 1e6:.0f}"


def no_space(directory: Path, needed: float, what: str) -> str:
    """``no space left on DIR (needed ~N MB for WHAT, M MB free)``."""
    free = free_bytes(directory)
    have = f", {_mb(free)} MB free" if free is not None else ""
    return f"no space left on {directory} (needed ~{_mb(needed)} MB for {what}{have})"
