"""Two ranks on CPU (gloo): when one rank is SIGKILLed, the whole job ends promptly with a message
naming the rank and the signal; after that, and after Ctrl-C, rerunning the command resumes to the
result of an uninterrupted two-rank run."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
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
# are clm, clm, mntp x 4, clm in steps 1..7, so the rarer part runs before and after the kill. The plain one
# logs every 4 steps, so that its checkpoints hold the metric sums of steps not yet logged, which differ per
# rank: the resumed run's metrics lines equal the uninterrupted run's only if every rank's are restored.
JOBS = [("mlm", "bert", ("--set", "train.log_every=4")), ("mntp:15|clm:1", "gpt", ("--seed", "28"))]


def two_ranks(out: Path, corpus: Path, objective: str = "mlm", backbone: str = "bert", *extra: str) -> list[str]:
    return train_args(out, corpus, objective, backbone, STEPS, CKPT_EVERY, "--batch-size", "2", "--nproc", "2",
                      *extra)


@pytest.fixture(scope="module")
def mlm_reference(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Iterator[Callable[[], Path]]:
    """The uninterrupted two-rank run of the ``mlm`` job, started in the background when first asked for
    and shared by the tests that resume that job; calling the value waits for it and returns its directory."""
    base = tmp_path_factory.mktemp("two-ranks")
    objective, backbone, extra = JOBS[0]
    child = spawn(two_ranks(base / "uninterrupted", corpus, objective, backbone, *extra), base / "reference.log",
                  cache_dir)

    def finished() -> Path:
        rc, log = child.wait(timeout=300)
        assert rc == 0, log[-4000:]
        return base / "uninterrupted"

    try:
        yield finished
    finally:
        child.kill()


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "backbone", "extra"), JOBS, ids=[j[0] for j in JOBS])
def test_killed_rank_ends_the_job_and_the_rerun_resumes(tmp_path: Path, corpus: Path, cache_dir: Path,
                                                        request: pytest.FixtureRequest, objective: str, backbone: str,
                                                        extra: tuple[str, ...]) -> None:
    step = random.Random("two-ranks").randint(CKPT_EVERY + 1, STEPS)  # after the first checkpoint
    job_dir = tmp_path / "job"
    job_args = (objective, backbone, *extra)
    if (objective, backbone, extra) == JOBS[0]:
        reference_of = request.getfixturevalue("mlm_reference")  # shared with the Ctrl-C test below
        children = []
    else:
        reference = spawn(two_ranks(tmp_path / "uninterrupted", corpus, *job_args), tmp_path / "reference.log",
                          cache_dir)
        children = [reference]

        def reference_of() -> Path:
            rc, log = reference.wait(timeout=300)
            assert rc == 0, log[-4000:]
            return tmp_path / "uninterrupted"
    job = spawn(two_ranks(job_dir, corpus, *job_args), tmp_path / "job.log", cache_dir, f"kill@rank=1,kill@step={step}")
    children.append(job)
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
        ref_dir = reference_of()
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_with_a_localhost_rendezvous_equal_one_node_of_two(tmp_path: Path, corpus: Path,
                                                                     cache_dir: Path) -> None:
    """``torchrun --nnodes 2`` as two local agents (one process each) rendezvousing on localhost: global
    ranks, data shards and checkpoints are those of ``--nproc 2`` on one node, bitwise."""
    import subprocess
    import sys

    from .conftest import REPO, child_env

    one_node, two_nodes = tmp_path / "one-node", tmp_path / "two-nodes"
    # One job at a time: the reference (whose launcher picks its own ports) must not share the machine's
    # two cores, nor race for a port, with the two agents.
    reference = spawn(two_ranks(one_node, corpus), tmp_path / "one-node.log", cache_dir)
    try:
        rc, log = reference.wait(timeout=600)
    except subprocess.TimeoutExpired:
        reference.kill()
        pytest.fail("the one-node reference did not finish in 600 s:\n" + reference.log.read_text(errors="replace")[-4000:])
    assert rc == 0, log[-4000:]
    args = two_ranks(two_nodes, corpus)[:-2]  # without --nproc 2
    port = _free_port()
    agents = []
    for node in (0, 1):
        log_file = open(tmp_path / f"node{node}.log", "wb")
        agents.append((subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
             "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "zoo", *args],
            stdout=log_file, stderr=subprocess.STDOUT, env=child_env(cache_dir), cwd=REPO, start_new_session=True),
            log_file))
    try:
        for node, (proc, log_file) in enumerate(agents):
            try:
                rc = proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                rc = None
            log_file.close()
            text = (tmp_path / f"node{node}.log").read_text(errors="replace")
            assert rc == 0, f"node {node} {'did not finish in 600 s' if rc is None else f'exited {rc}'}:\n{text[-4000:]}"
    finally:
        for proc, log_file in agents:
            log_file.close()
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert [s for s, _ in ckpt.steps(two_nodes)] == [3, 6, 7]  # written once, by global rank 0
    state = json.loads((two_nodes / "step-000007" / "trainer.json").read_text())
    assert state["world_size"] == 2 and sorted(state["rng"]) == ["rank0", "rank1"]  # both ranks
    assert_same_run(one_node, two_nodes)


@pytest.mark.slow
def test_ctrl_c_on_two_ranks_writes_one_checkpoint_and_the_rerun_resumes(
        tmp_path: Path, corpus: Path, cache_dir: Path, mlm_reference: Callable[[], Path]) -> None:
    """Ctrl-C reaches the launcher and both ranks (the terminal signals the whole process group, and the
    launcher passes it on): they agree to stop after the same step, rank 0 writes its checkpoint, and
    the launcher says how to resume, with no traceback. Running the same command again ends with the
    weights, state and metrics lines of an uninterrupted two-rank run. The job is the ``mlm`` one above
    (records at steps 4 and 7): the signal comes once step 4 is logged and the ranks stop after step 5
    or 6, so the checkpoint holds every rank's sums of steps not yet logged (measured before: only rank
    0's were kept, and the resumed run logged another loss)."""
    out, gate = tmp_path / "run", tmp_path / "gate"
    objective, backbone, extra = JOBS[0]
    args = two_ranks(out, corpus, objective, backbone, *extra)
    job = spawn(args, tmp_path / "job.log", cache_dir, "hold@step=5", {"ZOO_FAULT_RELEASE": str(gate)})
    children = [job]
    try:
        deadline = time.monotonic() + 240
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and any(r["step"] >= 4 for r in read_records(metrics, "train"))):
            assert job.proc.poll() is None and time.monotonic() < deadline, job.log.read_text()[-3000:]
            time.sleep(0.05)
        os.killpg(job.proc.pid, signal.SIGINT)
        gate.touch()
        rc, log = job.wait(timeout=240)
        assert rc == 128 + signal.SIGINT, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        steps = [s for s, _ in ckpt.steps(out)]
        assert steps[:1] == [CKPT_EVERY] and len(steps) == 2 and steps[1] in (5, 6), (steps, log[-3000:])
        said = [line for line in log.splitlines() if line.startswith("error: training interrupted by SIGINT")]
        assert len(said) == 1 and f"after step {steps[1]}: checkpoint" in said[0], log[-3000:]  # by rank 0 only
        assert "error: stopped by SIGINT: the training processes finished their step and wrote a checkpoint" in log

        children.append(spawn(args, tmp_path / "rerun.log", cache_dir))
        rc, log = children[-1].wait(timeout=300)
        assert rc == 0, log[-4000:]
        assert f"resuming from {ckpt.step_name(steps[1])}" in log
        reference = mlm_reference()
    finally:
        gate.touch()
        for child in children:
            child.kill()
    assert_same_run(reference, out)
