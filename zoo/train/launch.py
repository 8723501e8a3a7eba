"""``zoo train --nproc N``: run the same command under torchrun, and say clearly which process
failed and how when one does (the agent stops the others)."""

from __future__ import annotations

import signal
from typing import Any


def strip_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` / ``--nproc=N``."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    return args


def launch(nproc: int, args: list[str]) -> tuple[str | None, int]:
    """Run ``python -m zoo ARGS`` on ``nproc`` local processes (the torchrun agent runs in this
    process). Returns (None, 0), or a message naming the failed rank and the exit code to use."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(["--standalone", "--nproc_per_node", str(nproc), "-m", "zoo", *args]))
    except ChildFailedError as exc:
        return worker_failure(exc.failures, nproc)
    except SignalException as exc:  # Ctrl-C / SIGTERM: the agent passed it on and waited for the processes
        return (f"stopped by {exc.sigval.name}: the training processes finished their step and wrote a "
                f"checkpoint (see above); run the same command again to resume"), 128 + int(exc.sigval)
    return None, 0


def worker_failure(failures: dict[int, Any], nproc: int) -> tuple[str, int]:
    """A message naming the rank that failed first and how, and the exit code for it.

    ``failures`` maps ranks to torchelastic ``ProcessFailure``s, observed together (their
    timestamps rarely tell them apart). Ranks that died of SIGTERM were stopped by the launcher;
    a rank killed by a signal is named before ranks that exited with an error, which is what the
    others do when a peer vanishes.
    """
    def how(rank: int) -> str:
        f = failures[rank]
        if f.exitcode < 0:
            return f"was killed by signal {f.signal_name()}"
        return f"exited with code {f.exitcode} (its error is printed above)"

    def order(rank: int) -> tuple[bool, bool, int, int]:
        f = failures[rank]
        return f.exitcode == -signal.SIGTERM, f.exitcode > 0, f.timestamp, rank

    first, *others = sorted(failures, key=order)
    root = failures[first]
    code = 128 - root.exitcode if root.exitcode < 0 else root.exitcode
    stopped = [r for r in others if failures[r].exitcode == -signal.SIGTERM]
    also = "".join(f"; rank {r} {how(r)}" for r in others if r not in stopped)
    then = f"; the launcher stopped rank {', '.join(map(str, sorted(stopped)))}" if stopped else ""
    return (f"training process rank {first} of {nproc} (pid {root.pid}) {how(first)}{also}{then}. Checkpoints "
            f"that were complete are intact: run the same command again to resume from the newest one"), code
