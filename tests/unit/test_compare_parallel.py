"""Runs of a study trained in worker processes, two at once, are bitwise the runs trained one at a
time in process (on as many threads); a run that fails in its worker is reported and the others finish."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.unit.test_compare_resume import FakeBench, final_weights, tiny_settings
from zoo import markers
from zoo.compare.runner import run_study

TIMES = ("train_time_s",)  # counters that are measured, not computed


def counters(out: Path) -> dict:
    runs = json.loads((out / "study.json").read_text())["runs"]
    return {n: (r["status"], {k: v for k, v in (r.get("counters") or {}).items() if k not in TIMES})
            for n, r in runs.items()}


def test_parallel_jobs_train_the_same_bits_as_sequential_training(corpus: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the existing path: one run at a time in this process, on one thread
        sequential = run_study(tiny_settings(corpus, objectives=["mlm"], seeds=[0, 1]), tmp_path / "seq",
                               bench_fn=FakeBench(), write_report=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "par"
    (out / "runs").mkdir(parents=True)
    markers.write_marker(out, "study")
    (out / "runs" / "bert-mlm-seed2").write_text("a file where a run directory should be")  # that run fails
    parallel = run_study(tiny_settings(corpus, objectives=["mlm"], seeds=[0, 1, 2], jobs=2, threads=1), out,
                         bench_fn=FakeBench(), write_report=False)

    for name in ("bert-mlm-seed0", "bert-mlm-seed1"):
        seq = final_weights(tmp_path / "seq" / "runs" / name).read_bytes()
        assert final_weights(out / "runs" / name).read_bytes() == seq, name
    seq_counters, par_counters = counters(tmp_path / "seq"), counters(out)
    assert {n: par_counters[n] for n in seq_counters} == seq_counters
    for a, b in zip(sequential.runs, parallel.runs[:2], strict=True):
        assert (a.name, a.status, a.flops, a.tokens, a.steps) == (b.name, b.status, b.flops, b.tokens, b.steps)
    failed = parallel.runs[2]
    assert failed.name == "bert-mlm-seed2" and failed.status == "failed" and "bert-mlm-seed2" in (failed.error or "")
    assert par_counters["bert-mlm-seed2"][0] == "failed"
    assert (out / "jobs" / "bert-mlm-seed0.log").is_file()
    study = json.loads((out / "study.json").read_text())
    assert study["runs"]["bert-mlm-seed0"]["cpu_s"] > 0  # the worker's CPU time


def test_parallel_curves_train_the_same_bits_as_sequential_curves(corpus: Path, tmp_path: Path) -> None:
    """A curve study in worker processes (every trunk first, two at once, then every branch from its trunk's
    checkpoint) trains bitwise the models the in-process curve trains, with the same records."""
    curve = dict(objectives=["mlm"], seeds=[0, 1], budget="8steps", budgets=["4steps", "8steps"], cooldown=0.5,
                 train_overrides=[*tiny_settings(corpus).train_overrides, "optim.warmup_steps=1"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = run_study(tiny_settings(corpus, **curve), tmp_path / "seq", bench_fn=FakeBench(),
                               write_report=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "par"
    parallel = run_study(tiny_settings(corpus, jobs=2, threads=1, **curve), out, bench_fn=FakeBench(),
                         write_report=False)

    names = [f"bert-mlm-seed{s}-{b}steps" for s in (0, 1) for b in (4, 8)]
    assert [r.name for r in parallel.runs] == [r.name for r in sequential.runs] == names
    for name in names:
        seq = final_weights(tmp_path / "seq" / "runs" / name).read_bytes()
        assert final_weights(out / "runs" / name).read_bytes() == seq, name
        assert (out / "jobs" / f"{name}.log").is_file()
    assert counters(out) == counters(tmp_path / "seq")
    for a, b in zip(sequential.runs, parallel.runs, strict=True):
        assert (a.status, a.flops, a.steps, a.parent, a.budget) == (b.status, b.flops, b.steps, b.parent, b.budget)
    seq_study, par_study = (json.loads((d / "study.json").read_text()) for d in (tmp_path / "seq", out))
    for name in names:
        keys = ("parent", "parent_step", "budget", "cooldown_flops")
        assert {k: par_study["runs"][name].get(k) for k in keys} == {k: seq_study["runs"][name].get(k) for k in keys}
    assert par_study["runs"]["bert-mlm-seed1-4steps"]["parent"] == "bert-mlm-seed1-8steps"
    assert par_study["curve"] == seq_study["curve"]


def test_a_worker_log_keeps_every_attempt_and_errors_come_from_the_last(tmp_path: Path, monkeypatch) -> None:
    """Before, each attempt opened the log with "wb": a rerun of a study erased the output of the attempt
    that failed. Now the log is appended to, each attempt below a header line; the error reported for a
    worker is read from its own attempt only."""
    import subprocess
    import sys

    from zoo.compare import parallel
    from zoo.train.resolve import resolve

    cfg = resolve({"objective": "mlm", "backbone": "bert", "size": "tiny", "out": str(tmp_path / "run")})
    log = tmp_path / "jobs" / "run.log"
    log.parent.mkdir()
    log.write_text("output of an attempt by an earlier version\nzoo-error: the first attempt failed\n")
    real = subprocess.Popen
    said = iter(["second attempt, no error line", "zoo-error: the third attempt failed"])

    def worker(args: list[str], **kwargs):  # a worker that prints one line to stderr and exits 1
        assert args[1:3] == ["-m", "zoo.compare.worker"]
        return real([sys.executable, "-c", f"import sys; print({next(said)!r}, file=sys.stderr); sys.exit(1)"],
                    **kwargs)

    monkeypatch.setattr(parallel.subprocess, "Popen", worker)
    errors = []
    for _ in range(2):
        proc = parallel.start("train", cfg, 1, tmp_path / "jobs" / "run.json", log)
        proc.wait()
        proc._zoo_log.close()
        errors.append(parallel.error_of(log, proc.returncode))
    assert errors == [f"training process exited with code 1 (log: {log}): second attempt, no error line",
                      "the third attempt failed"]
    lines = log.read_text().splitlines()
    assert lines[:2] == ["output of an attempt by an earlier version", "zoo-error: the first attempt failed"]
    assert [line.startswith(parallel.ATTEMPT + " train worker started") for line in lines[2:]] == [
        True, False, True, False]
    assert lines[3::2] == ["second attempt, no error line", "zoo-error: the third attempt failed"]
