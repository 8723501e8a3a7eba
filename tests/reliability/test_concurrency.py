"""One training per run directory, and readers that never mix two checkpoints.

Two real ``zoo train`` processes race for one ``--out``: the loser is refused before it reads any
data, naming the winner's pid, and the run holds the winner's configuration and records only.
The lock dies with its process (``kill -9`` leaves nothing that blocks the next run). ``zoo bench``
and ``zoo export`` read a run while a training writes and prunes its checkpoints: every read is one
whole checkpoint (weights, state and manifest of the same step).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from zoo.runs import open_run
from zoo.train import checkpoint as ckpt
from zoo.train.lock import RunLock, RunLockedError
from zoo.train.metrics import read_records

from .conftest import REPO, flat, spawn, train_args, train_in_process


def _wait_for(condition, timeout: float = 240.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_two_trainings_of_one_directory_the_second_is_refused_naming_the_first(
        tmp_path: Path, corpus: Path, cache_dir: Path) -> None:
    out, release = tmp_path / "run", tmp_path / "release"
    # Both start together with different seeds; whichever locks first trains a step and then holds the
    # directory until released, so the other one always finds it taken.
    hold = {"ZOO_FAULT_RELEASE": str(release)}
    children = [spawn(train_args(out, corpus, "mlm", "bert", 3, 3, "--seed", str(seed)), tmp_path / f"{seed}.log",
                      cache_dir, "hold@step=1", hold) for seed in (0, 1)]
    try:
        _wait_for(lambda: any(c.proc.poll() is not None for c in children), what="one process to be refused")
        loser = next(c for c in children if c.proc.poll() is not None)
        winner = next(c for c in children if c is not loser)
        rc, log = loser.wait()
        errors = [line for line in log.splitlines() if line.startswith("error:")]
        assert rc == 2 and len(errors) == 1 and "Traceback" not in log, log
        text = flat(log)
        assert f"{out} is being trained by another process (pid {winner.proc.pid} on" in text, text
        assert "choose another --out" in text
        assert winner.proc.poll() is None  # still holding the directory
        release.touch()
        rc, log = winner.wait()
        assert rc == 0, log[-3000:]
    finally:
        release.touch()
        for c in children:
            c.kill()
    seed = int(winner.args[winner.args.index("--seed") + 1])
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == seed
    assert [r["step"] for r in read_records(out / "metrics.jsonl", "train")] == [1, 2, 3]
    assert [s for s, _ in ckpt.steps(out)] == [3]
    assert (out / ".lock").read_text() == ""  # released: nobody holds it


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from zoo.train.lock import RunLock; RunLock(sys.argv[1]).acquire().record(); "
        "print('locked', flush=True); time.sleep(600)"), str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on "):
            RunLock(tmp_path).acquire()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=60)
        with RunLock(tmp_path):  # the kernel released it with the process
            pass
    finally:
        holder.kill()
        holder.wait()


def test_readers_get_one_whole_checkpoint_while_a_training_writes(tmp_path: Path, corpus: Path,
                                                                   cache_dir: Path) -> None:
    run = train_in_process(tmp_path / "run", corpus, cache_dir, "mlm", "bert", 1, 1)
    base = ckpt.read(ckpt.steps(run)[-1][1])
    stop = threading.Event()

    def write(step: int) -> None:  # each step's weights hold its number
        model = {k: torch.full_like(v, float(step)) for k, v in base.model.items()}
        ckpt.write(run, step, ckpt.Checkpoint(model, base.optimizer, base.rng, {**base.state, "step": step}),
                   keep_last=1)

    def training() -> None:  # steps 3, 4, ... keeping only the newest, as fast as it can
        step = 2
        while not stop.is_set():
            step += 1
            write(step)

    write(2)
    writer = threading.Thread(target=training)
    writer.start()
    seen = set()
    try:
        for _ in range(40):
            snap = open_run(run).snapshot()
            values = {float(t.flatten()[0]) for t in snap.tensors.values() if t.numel()}
            assert values == {float(snap.step)}, (snap.step, values)  # never weights of another step
            assert snap.state["step"] == snap.step
            seen.add(snap.step)
    finally:
        stop.set()
        writer.join()
    assert len(seen) > 1  # the reads did overlap the writes


# Merges ``suite``0..2 into the bench.json of a model directory once the start file exists; each write of
# bench.json comes a moment after its read, so that merges not taking turns would lose each other's suites.
_MERGER = """
import sys, time
from pathlib import Path
from zoo.benchmarks import bench_file as bench
write = bench.write_result_json
def slow_write(path, data):
    time.sleep(0.3)
    write(path, data)
bench.write_result_json = slow_write
bench._markdown_of = lambda entry: "- " + entry["suite"]
model, suite, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
print("ready", flush=True)
while not start.exists():
    time.sleep(0.01)
for i in range(3):
    name = f"{suite}{i}"
    bench.merge_suite_report(model, name, {"suite": name, "kind": "minimal-pairs", "by": suite})
print("merged", flush=True)
"""


def test_two_benchmarks_merging_into_one_bench_json_keep_both_results(tmp_path: Path) -> None:
    """``zoo bench`` takes no run lock; two of them on one model (say BLiMP and GLUE at once) read, merge and
    rewrite its bench.json in turn under ``.bench.lock``, so every suite of both survives."""
    from .conftest import child_env

    model, start = tmp_path / "model", tmp_path / "start"
    model.mkdir()
    (model / "bench.json").write_text(json.dumps({"suites": {"earlier": {"suite": "earlier", "kind": "minimal-pairs"}}}))
    procs = [subprocess.Popen([sys.executable, "-c", _MERGER, str(model), suite, str(start)], cwd=REPO,
                              env=child_env(tmp_path / "cache"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for suite in ("blimp", "glue")]
    try:
        for proc in procs:  # both wait at the start line (after their imports), then go together
            said = [proc.stdout.readline()]
            while said[-1] and said[-1].strip() != "ready":
                said.append(proc.stdout.readline())
            assert said[-1].strip() == "ready", "".join(said)
        start.touch()
        for proc in procs:
            out, _ = proc.communicate(timeout=240)
            assert proc.returncode == 0 and "merged" in out, out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    suites = json.loads((model / "bench.json").read_text())["suites"]
    assert sorted(suites) == ["blimp0", "blimp1", "blimp2", "earlier", "glue0", "glue1", "glue2"]
    assert sorted((model / "bench.md").read_text().split("\n")[2:]) == [f"- {s}" for s in sorted(suites)]
    assert not [p.name for p in model.iterdir() if p.name.startswith(".bench.json.tmp")]


def test_a_training_start_keeps_the_temporary_file_of_a_live_benchmark(tmp_path: Path) -> None:
    """A training that starts removes the temporary files that killed writers left in its run; before, it
    also removed a running ``zoo bench``'s ``.bench.json.tmp-PID-...`` (bench takes no run lock), so that
    bench's rename then failed. A temporary file whose writer is alive is kept now."""
    from zoo.train.resolve import resolve
    from zoo.train.rundir import claim

    run = tmp_path / "run"
    run.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    bench = subprocess.Popen(["sleep", "120"])  # stands for the live benchmark writing bench.json
    try:
        live = run / f".bench.json.tmp-{bench.pid}-0123abcd"
        live.write_text('{"suites": {}}\n')
        dead = run / f".config.json.tmp-{int(gone.stdout)}-89abcdef"
        dead.write_text("{")
        cfg = resolve({"objective": "mlm", "backbone": "bert", "size": "tiny", "out": str(run)})
        with claim(run, cfg, main=True):
            assert live.exists() and not dead.exists()
        os.replace(live, run / "bench.json")  # the benchmark's write completes
    finally:
        bench.kill()
        bench.wait()
    assert json.loads((run / "bench.json").read_text()) == {"suites": {}}
