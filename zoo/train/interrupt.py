"""Interruption that loses nothing: SIGINT (Ctrl-C), SIGTERM (schedulers, ``kill``) and SIGHUP (a
closed terminal) become a request that the training loop honours after the step in progress, by
writing a checkpoint and stopping with a message that says how to resume. A second Ctrl-C stops at
once (the newest checkpoint stays intact). Before training starts (data preparation, building the
model) the same signals stop at once, as Ctrl-C does, so that the code unwinding removes what it had
begun: a new run directory and the temporary token stores in the cache. Plus the wall-time clock of
the default periodic checkpoints.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DUPLICATE_S = 2.0  # a second signal this soon after the first is the same request delivered twice


class TrainingInterrupted(ZooError):
    """Training stopped on a signal after writing a checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, message: str, signum: int, quiet: bool = False) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
        self.quiet = quiet  # ranks other than 0: rank 0 says it


class _Handlers:
    """Installs ``_handle`` for SIGINT/SIGTERM/SIGHUP (main thread only) and restores what was there."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise NotImplementedError

    def install(self) -> Self:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class StopRequest(_Handlers):
    """While installed, SIGINT/SIGTERM/SIGHUP set ``signum`` instead of stopping the process mid-step."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self._since = 0.0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            # Ctrl-C reaches a launcher's processes twice (from the terminal and from the launcher): only
            # a second Ctrl-C pressed later stops at once.
            if signum == signal.SIGINT and time.monotonic() - self._since > DUPLICATE_S:
                raise KeyboardInterrupt
            return
        self.signum, self._since = signum, time.monotonic()
        log.warning("%s received: finishing this step, then writing a checkpoint (Ctrl-C again stops at once; "
                    "the newest checkpoint stays intact)", signal.Signals(signum).name)


class SetupSignal(KeyboardInterrupt):
    """A signal before training started; a ``KeyboardInterrupt`` so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SetupStop(_Handlers):
    """While installed (before training), SIGINT/SIGTERM/SIGHUP raise ``SetupSignal`` in the main thread."""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise SetupSignal(signum)


def setup_interrupted(exc: SetupSignal, run_dir: Path, removed: bool, rank: int = 0) -> TrainingInterrupted:
    """The error a run stops with when ``exc`` arrived before its training started."""
    name = signal.Signals(exc.signum).name
    what = f"; removed the run directory {run_dir} it had begun" if removed else ""
    return TrainingInterrupted(f"stopped by {name} before training started (while preparing the data or the "
                               f"model): nothing was trained{what}", exc.signum, quiet=rank != 0)


def interrupted(stop: StopRequest, step_name: str, run_dir: Path, rank: int = 0) -> TrainingInterrupted:
    """The error a training stops with once it has written ``step_name`` after ``stop``."""
    signum = stop.signum or signal.SIGTERM  # a rank that was not signalled itself stops with its peers
    name = signal.Signals(signum).name
    step = int(step_name.removeprefix("step-"))
    return TrainingInterrupted(f"training interrupted by {name} after step {step}: checkpoint {step_name} written in "
                               f"{run_dir}; run the same command again to resume from it", signum, quiet=rank != 0)


class CheckpointClock:
    """Is a wall-time checkpoint due? Every ``minutes`` (0: never) since the last checkpoint."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.reset()

    def reset(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        return self.seconds > 0 and time.monotonic() - self._last >= self.seconds
