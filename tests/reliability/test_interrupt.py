"""Interrupting a run with default settings loses nothing: SIGINT / SIGTERM / SIGHUP finish the step, write a
checkpoint and say how to resume; the same command resumes bitwise. Checkpoints are also written by
wall time by default, and a time budget resumes with the time already spent counted."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from zoo.errors import ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train.config import TrainerConfig
from zoo.train.interrupt import TrainingInterrupted
from zoo.train.metrics import read_records
from zoo.train.resolve import resolve
from zoo.train.trainer import train

from .conftest import assert_same_run, flat, invoke, spawn, train_args, train_in_process

STEPS = 16  # the signal goes once a random step in 1..8 is logged; a gate at step 9 keeps the run from ending first


def _default_args(out: Path, corpus: Path) -> list[str]:
    args = train_args(out, corpus, "mlm", "bert", STEPS, 0)  # --checkpoint-every 0: the default
    i = args.index("--checkpoint-every")
    return args[:i] + args[i + 2:]


def _wait_for_step(path: Path, step: int, child, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}:\n{child.log.read_text()[-3000:]}")
        if path.is_file() and any(r["step"] >= step for r in read_records(path, "train")):
            return
        time.sleep(0.02)
    raise AssertionError(f"no step {step} within {timeout}s")


@pytest.mark.slow
def test_a_signal_at_a_random_step_writes_a_checkpoint_and_the_rerun_resumes_bitwise(
        tmp_path: Path, corpus: Path, cache_dir: Path) -> None:
    assert TrainerConfig().checkpoint_every == 0  # the default under test: no step checkpoints
    rnd = random.Random("interrupt")
    # SIGHUP: a closed terminal (or ssh session) is handled as Ctrl-C is.
    cases = {sig: rnd.randint(1, STEPS // 2) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    # The signal is sent once step k is logged and lands wherever the child is by then; a gate at step
    # STEPS / 2 + 1 (opened right after the signal) keeps a fast child from finishing first.
    gates = {sig: tmp_path / f"{sig.name}.gate" for sig in cases}
    children = {sig: spawn(_default_args(tmp_path / sig.name, corpus), tmp_path / f"{sig.name}.log", cache_dir,
                           f"hold@step={STEPS // 2 + 1}", {"ZOO_FAULT_RELEASE": str(gates[sig])}) for sig in cases}
    try:
        for sig, child in children.items():
            _wait_for_step(tmp_path / sig.name / "metrics.jsonl", cases[sig], child)
            os.kill(child.proc.pid, sig)
            gates[sig].touch()
        code, text = invoke(_default_args(tmp_path / "reference", corpus))  # meanwhile, in this process
        assert code == 0, text
        for sig, child in children.items():
            rc, log = child.wait()
            assert rc == 128 + sig, f"{sig.name}: exit {rc}\n{log[-3000:]}"
            errors = [line for line in log.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "Traceback" not in log, log[-3000:]
            line = flat(log[log.index("error:"):])
            run = tmp_path / sig.name
            steps = [s for s, _ in ckpt.steps(run)]
            assert len(steps) == 1 and cases[sig] <= steps[0] < STEPS, (steps, log[-2000:])
            assert (f"training interrupted by {sig.name} after step {steps[0]}: checkpoint "
                    f"{ckpt.step_name(steps[0])} written in {run}; run the same command again to resume") in line
            code, text = invoke(_default_args(run, corpus))
            assert code == 0, text
            assert f"resuming from {ckpt.step_name(steps[0])}" in flat(text)
            assert_same_run(tmp_path / "reference", run)
    finally:
        for child in children.values():
            child.kill()


def _tiny(out: Path, corpus: Path, budget: str, **train_keys: object) -> dict:
    return {"objective": "mlm", "backbone": "bert", "size": "tiny", "out": str(out),
            "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
            "data": {"source": str(corpus)}, "tokenizer": {"vocab_size": 400, "num_sentinels": 20},
            "train": {"budget": budget, "seq_len": 32, "batch_size": 4, "log_every": 1, "device": "cpu",
                      **train_keys}}


def test_wall_time_checkpoints_keep_the_last_k(tmp_path: Path, corpus: Path) -> None:
    assert TrainerConfig().checkpoint_minutes > 0 and TrainerConfig().keep_last >= 1
    run = tmp_path / "run"
    # A period of a few microseconds: a wall-time checkpoint after every step.
    train(resolve(_tiny(run, corpus, "5steps", checkpoint_minutes=1e-7, keep_last=2)))
    assert [s for s, _ in ckpt.steps(run)] == [4, 5]
    with pytest.raises(ConfigError, match="train.checkpoint_minutes must be a finite number >= 0, got inf"):
        resolve(_tiny(run, corpus, "5steps", checkpoint_minutes=float("inf")))


def test_a_time_budget_resumes_with_the_time_already_spent(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    cfg = resolve(_tiny(run, corpus, "1h"))

    def stop_at(step: int):
        def callback(record: dict) -> None:  # as Ctrl-C would, once step ``step`` has been logged:
            if record.get("kind") == "train" and record["step"] == step:  # the next step is the last
                os.kill(os.getpid(), signal.SIGINT)
        return callback

    with pytest.raises(TrainingInterrupted, match="after step 3"):
        train(cfg, callback=stop_at(2))
    spent = json.loads((run / "step-000003" / "trainer.json").read_text())["train_time_s"]
    assert spent > 0
    with pytest.raises(TrainingInterrupted, match="after step 5"):
        train(cfg, callback=stop_at(4))
    records = read_records(run / "metrics.jsonl", "train")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert records[3]["elapsed_s"] > spent  # step 4 counts on from the time of steps 1-3
    assert all(r["progress"] == pytest.approx(r["elapsed_s"] / 3600) for r in records)
    state = json.loads((run / "step-000005" / "trainer.json").read_text())
    assert state["train_time_s"] == records[-1]["elapsed_s"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_during_data_preparation_removes_what_the_run_had_begun(tmp_path: Path, sig: signal.Signals) -> None:
    """Before, SIGTERM and SIGHUP killed the process mid-preparation: the new run directory stayed, and the
    temporary token store stayed in the cache (a rerun did not remove it). Now they stop as Ctrl-C does."""
    from pydoc_data.topics import topics

    corpus = tmp_path / "corpus.txt"  # text of its own: its token store is not cached yet
    corpus.write_text("\n\n".join(f"{sig.name} {topics[k].strip()}" for k in sorted(topics)[:12]), encoding="utf-8")
    cache, out = tmp_path / "cache", tmp_path / "run"
    child = spawn(train_args(out, corpus, "mlm", "bert", 1, 0), tmp_path / "log", cache, "hold@stage=store",
                  {"ZOO_FAULT_RELEASE": str(tmp_path / "never")})
    try:
        deadline = time.monotonic() + 240
        while not list((cache / "shards").glob(".tmp-*")):  # the store is built, still temporary
            assert child.proc.poll() is None and time.monotonic() < deadline, child.log.read_text()[-3000:]
            time.sleep(0.05)
        assert out.is_dir()
        os.kill(child.proc.pid, sig)
        rc, log = child.wait()
    finally:
        child.kill()
    assert rc == 128 + sig, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log[-3000:]
    assert (f"stopped by {sig.name} before training started (while preparing the data or the model): nothing was "
            f"trained; removed the run directory {out} it had begun") in flat(log[log.index("error:"):])
    assert not out.exists()
    assert [p.name for p in (cache / "shards").iterdir() if p.name.startswith((".tmp-", ".trash-"))] == []


def test_a_rerun_removes_the_temporary_stores_of_killed_builds(tmp_path: Path, corpus: Path) -> None:
    """A build killed with SIGKILL cannot clean up: the next build in the same cache removes what it left
    once its process is gone and its files are older than STALE_AFTER_S; a live build's are kept."""
    import subprocess
    import sys

    from zoo.data.store import STALE_AFTER_S, clean_stale_temporaries

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    shards = tmp_path / "cache" / "shards"
    old = time.time() - STALE_AFTER_S - 60
    left = {name: shards / name for name in (f".tmp-{'a' * 32}-{dead_pid}-0123abcd", f".tmp-{'b' * 32}-{os.getpid()}-"
                                             "89abcdef", f".tmp-{'c' * 32}-{dead_pid}-deadbeef", ".trash-x-01234567")}
    for name, path in left.items():
        path.mkdir(parents=True)
        (path / "tokens.bin").write_bytes(b"\0" * 1000)
        if "c" * 32 not in name:  # the c store was written to just now
            for p in (path, path / "tokens.bin"):
                os.utime(p, (old, old))
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
        train_in_process(tmp_path / "run", corpus, tmp_path / "cache", "mlm", "bert", 1, 0)
    assert sorted(p.name for p in shards.iterdir() if p.name.startswith(".")) == sorted(
        [f".tmp-{'b' * 32}-{os.getpid()}-89abcdef", f".tmp-{'c' * 32}-{dead_pid}-deadbeef"])
    assert clean_stale_temporaries(shards, now=time.time() + STALE_AFTER_S) == [shards / f".tmp-{'c' * 32}-{dead_pid}-deadbeef"]
