"""Two ranks on CPU (gloo): when one rank is SIGKILLed, the whole job ends promptly with a message
naming the rank and the signal; rerunning the command resumes to the result of an uninterrupted
two-rank run."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from zoo.train import checkpoint as ckpt
from zoo.train.launch import worker_failure
from zoo.train.metrics import read_records

from .conftest import CKPT_EVERY, STEPS, assert_same_run, spawn, train_args

# Far below the collective timeout (train.dist_timeout_s, 1800 s): only the launcher noticing the dead
# child can end the job this soon.
TEARDOWN_LIMIT_S = 60


# (objective, backbone, extra arguments): a plain objective, and GPT-BERT's mixture, whose draws with seed 28
# are clm, clm, mntp x 4, clm in steps 1..7, so the rarer part runs before and after the kill.
JOBS = [("mlm", "bert", ()), ("mntp:15|clm:1", "gpt", ("--seed", "28"))]


def two_ranks(out: Path, corpus: Path, objective: str = "mlm", backbone: str = "bert", *extra: str) -> list[str]:
    return train_args(out, corpus, objective, backbone, STEPS, CKPT_EVERY, "--batch-size", "2", "--nproc", "2",
                      *extra)


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "backbone", "extra"), JOBS, ids=[j[0] for j in JOBS])
def test_killed_rank_ends_the_job_and_the_rerun_resumes(tmp_path: Path, corpus: Path, cache_dir: Path,
                                                        objective: str, backbone: str, extra: tuple[str, ...]) -> None:
    step = random.Random("two-ranks").randint(CKPT_EVERY + 1, STEPS)  # after the first checkpoint
    ref_dir, job_dir = tmp_path / "uninterrupted", tmp_path / "job"
    job_args = (objective, backbone, *extra)
    reference = spawn(two_ranks(ref_dir, corpus, *job_args), tmp_path / "reference.log", cache_dir)
    job = spawn(two_ranks(job_dir, corpus, *job_args), tmp_path / "job.log", cache_dir, f"kill@rank=1,kill@step={step}")
    children = [reference, job]
    try:
        rc, log = job.wait(timeout=300)
        ended = time.time()
        assert rc == 128 + signal.SIGKILL, f"exit {rc}:\n{log[-4000:]}"
        errors = [line for line in log.splitlines() if line.startswith("error:")]
        assert errors, log[-4000:]
        assert "training process rank 1 of 2" in errors[-1] and "was killed by signal SIGKILL" in errors[-1]
        assert "run the same command again to resume" in errors[-1]
        # Rank 0 logged step ``step - 1`` just before rank 1 died; the job was gone soon after.
        last_write = (job_dir / "metrics.jsonl").stat().st_mtime
        assert ended - last_write < TEARDOWN_LIMIT_S, f"the job took {ended - last_write:.0f}s to end after the kill"
        survived = CKPT_EVERY * ((step - 1) // CKPT_EVERY)
        assert [s for s, _ in ckpt.steps(job_dir)] == [s for s in (3, 6) if s <= survived]

        children.append(spawn(two_ranks(job_dir, corpus, *job_args), tmp_path / "rerun.log", cache_dir))
        rc, log = children[-1].wait(timeout=300)
        assert rc == 0, log[-4000:]
        assert f"resuming from step-{survived:06d}" in log
        rc, log = reference.wait(timeout=300)
        assert rc == 0, log[-4000:]
    finally:
        for child in children:
            child.kill()
    assert_same_run(ref_dir, job_dir)
    if "|" in objective:  # every rank ran the part the seed draws, in every step
        ran = [r["parts"][0] for r in read_records(job_dir / "metrics.jsonl", "train")]
        assert ran == ["clm", "clm", "mntp", "mntp", "mntp", "mntp", "clm"]


def _failure(exitcode: int, timestamp: int, pid: int) -> SimpleNamespace:
    name = signal.Signals(-exitcode).name if exitcode < 0 else "<N/A>"
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp, pid=pid, signal_name=lambda: name)


def test_launcher_names_the_rank_that_failed_first() -> None:
    kill, term = -signal.SIGKILL, -signal.SIGTERM
    # rank 1 killed; rank 0 then stopped by the launcher
    message, code = worker_failure({0: _failure(term, 100, 10), 1: _failure(kill, 100, 11)}, 2)
    assert message.startswith("training process rank 1 of 2 (pid 11) was killed by signal SIGKILL; "
                              "the launcher stopped rank 0. Checkpoints")
    assert code == 128 + signal.SIGKILL
    # rank 0 noticed the dead peer and exited with an error before the launcher stopped it
    message, code = worker_failure({0: _failure(1, 100, 10), 1: _failure(kill, 100, 11)}, 2)
    assert message.startswith("training process rank 1 of 2 (pid 11) was killed by signal SIGKILL; "
                              "rank 0 exited with code 1 (its error is printed above). Checkpoints")
    assert code == 128 + signal.SIGKILL
    # every rank reported an error (e.g. a non-finite loss) and exited with 2
    message, code = worker_failure({1: _failure(2, 100, 11), 0: _failure(2, 100, 10)}, 2)
    assert message.startswith("training process rank 0 of 2 (pid 10) exited with code 2 (its error is printed "
                              "above); rank 1 exited with code 2")
    assert code == 2
    # everything was stopped from outside: the earliest is named
    message, code = worker_failure({0: _failure(term, 101, 10), 1: _failure(term, 100, 11)}, 2)
    assert "rank 1 of 2 (pid 11) was killed by signal SIGTERM; the launcher stopped rank 0" in message
    assert code == 128 + signal.SIGTERM
