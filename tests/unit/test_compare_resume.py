"""A study is resumable: a killed study continues, finished runs are not retrained, an interrupted run
resumes from its checkpoint, a failed run is reported and the others go on. Tiny real training; the
benchmark is replaced by a recorder (fine-tuning has its own tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.benchmarks.finetune_results import BenchResult, ModelResult, SeedScores, TaskResult
from zoo.compare.runner import run_study
from zoo.compare.study import BASELINE, BenchOptions, StudySettings
from zoo.errors import ConfigError, NonFiniteLossError
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import read_records
from zoo.train.trainer import train

TINY = ["data.doc_boundary=blank-line", "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2",
        "model.intermediate_size=64", "tokenizer.num_sentinels=20", "train.eval_batches=2", "train.log_every=1",
        "optim.lr=0.001"]



def tiny_settings(corpus: Path, **kw: object) -> StudySettings:
    base = dict(objectives=["mlm", "span"], backbones=["bert"], budget="4steps", seeds=[0, 1], data=str(corpus),
                size="tiny", seq_len=32, batch_size=4, vocab_size=400, train_overrides=list(TINY), evals=2,
                bench=BenchOptions(tasks=["sst2"]))
    base.update(kw)
    return StudySettings(**base)  # type: ignore[arg-type]


class FakeBench:
    """Stands in for run_bench: records what it was asked, scores each model by a hash of its name."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, models, suite, tasks, seeds, **kw) -> BenchResult:  # noqa: ANN001
        names = [str(m) if isinstance(m, (str, Path)) else m.name for m in models]
        self.calls.append(names)
        out = []
        for name in names:
            score = 0.5 + int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) / 0x10000 / 4
            task = TaskResult("sst2", ["accuracy"], [SeedScores(0, {"accuracy": score}, 8, {"validation": 8}, 0.01)],
                              {}, "fingerprint")
            out.append(ModelResult(name, None, "bert", None, name, False, {"sst2": task}))
        return BenchResult(suite, tasks, list(range(seeds)), out, "fake")


class CountingTrain:
    def __init__(self, stop_at_call: int | None = None) -> None:
        self.runs: list[str] = []
        self.stop_at_call = stop_at_call

    def __call__(self, cfg, callback=None):  # noqa: ANN001, ANN204
        self.runs.append(Path(cfg.run_dir).name)
        if self.stop_at_call is not None and len(self.runs) == self.stop_at_call:
            raise KeyboardInterrupt  # the study is killed before this run starts
        return train(cfg, callback=callback)


def final_weights(run: Path) -> Path:
    return ckpt.steps(run)[-1][1] / "model.safetensors"


def test_killed_study_continues_without_retraining_finished_runs(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    first = CountingTrain(stop_at_call=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_settings(corpus), out, train_fn=first, bench_fn=FakeBench(), write_report=False)
    # Seed-major order: every cell of seed 0 first, so a partial study already compares all objectives.
    assert first.runs == ["bert-mlm-seed0", "bert-span-seed0", "bert-mlm-seed1"]
    status = {k: v["status"] for k, v in json.loads((out / "study.json").read_text())["runs"].items()}
    assert status == {"bert-mlm-seed0": "done", "bert-span-seed0": "done", "bert-mlm-seed1": "training"}
    done = {name: final_weights(out / "runs" / name) for name in ("bert-mlm-seed0", "bert-span-seed0")}
    mtimes = {name: p.stat().st_mtime_ns for name, p in done.items()}

    second = CountingTrain()
    bench = FakeBench()
    result = run_study(tiny_settings(corpus), out, train_fn=second, bench_fn=bench)
    assert second.runs == ["bert-mlm-seed1", "bert-span-seed1"]  # finished runs are not retrained
    assert {name: p.stat().st_mtime_ns for name, p in done.items()} == mtimes
    assert all(r.status == "done" and r.steps == 4 for r in result.runs)
    assert [len(c) for c in bench.calls] == [4, 2]  # the runs, then one baseline per seed
    assert {g.objective for g in result.groups} == {"mlm", "span", BASELINE}
    assert (out / "report.md").is_file() and (out / "scores.png").is_file()

    third = CountingTrain()
    run_study(tiny_settings(corpus), out, train_fn=third, bench_fn=FakeBench(), write_report=False)
    assert third.runs == []  # a complete study trains nothing


def test_interrupted_run_resumes_from_its_checkpoint(corpus: Path, tmp_path: Path) -> None:
    settings = tiny_settings(corpus, objectives=["mlm"], seeds=[0])

    def interrupted(cfg, callback=None):  # noqa: ANN001, ANN202
        def stop(record: dict) -> None:
            if record["kind"] == "train" and record["step"] == 3:
                raise KeyboardInterrupt  # killed after the step-2 checkpoint
        return train(cfg, callback=stop)

    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        run_study(settings, out, train_fn=interrupted, bench_fn=FakeBench(), write_report=False)
    run = out / "runs" / "bert-mlm-seed0"
    assert [s for s, _ in ckpt.steps(run)] == [2]
    again = CountingTrain()
    result = run_study(settings, out, train_fn=again, bench_fn=FakeBench(), write_report=False)
    assert again.runs == ["bert-mlm-seed0"] and result.runs[0].steps == 4
    steps = [r["step"] for r in read_records(run / "metrics.jsonl", "train")]
    assert steps == [1, 2, 3, 4]  # the lines of the lost step 3 were dropped, not duplicated
    # Identical to a study that was never interrupted.
    clean = run_study(settings, tmp_path / "clean", bench_fn=FakeBench(), write_report=False)
    a, b = load_file(str(final_weights(run))), load_file(str(final_weights(Path(clean.runs[0].path))))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_failed_run_is_reported_and_the_others_continue(corpus: Path, tmp_path: Path) -> None:
    def flaky(cfg, callback=None):  # noqa: ANN001, ANN202
        if cfg.objective.text == "span" and cfg.train.seed == 0:
            raise NonFiniteLossError("non-finite loss nan at step 3, objective span")
        return train(cfg, callback=callback)

    out = tmp_path / "study"
    result = run_study(tiny_settings(corpus), out, train_fn=flaky, bench_fn=FakeBench())
    assert [r.name for r in result.failed] == ["bert-span-seed0"]
    span = next(g for g in result.groups if g.objective == "span")
    assert [r.seed for r in span.runs] == [1]
    report = (out / "report.md").read_text()
    assert "`bert-span-seed0`: non-finite loss nan" in report
    study = json.loads((out / "study.json").read_text())
    assert study["runs"]["bert-span-seed0"]["status"] == "failed"
    # A rerun retries the failed run only.
    again = CountingTrain()
    run_study(tiny_settings(corpus), out, train_fn=again, bench_fn=FakeBench(), write_report=False)
    assert again.runs == ["bert-span-seed0"]


def test_changed_settings_are_refused_before_training(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    settings = tiny_settings(corpus, objectives=["mlm"], seeds=[0])
    run_study(settings, out, bench_fn=FakeBench(), write_report=False)
    never = CountingTrain()
    with pytest.raises(ConfigError, match="different training settings"):
        run_study(tiny_settings(corpus, objectives=["mlm"], seeds=[0], budget="6steps"), out, train_fn=never,
                  bench_fn=FakeBench())
    (out / "study.json").unlink()  # without the study file, the run directory itself says what it was
    changed = tiny_settings(corpus, objectives=["mlm"], seeds=[0], train_overrides=[*TINY, "optim.lr=0.002"])
    with pytest.raises(ConfigError, match=r"bert-mlm-seed0 holds a run trained with other settings \(optim.lr\)"):
        run_study(changed, out, train_fn=never, bench_fn=FakeBench())
    assert never.runs == []


def test_a_family_shares_one_tokenizer_reserving_every_declared_token(corpus: Path, tmp_path: Path) -> None:
    from zoo.data import load_tokenizer, special_tokens, tokenizer_hash

    out = tmp_path / "study"
    settings = tiny_settings(corpus, objectives=["clm", "ul2"], backbones=["gpt"], budget="2steps", seeds=[0],
                             seq_len=64)
    result = run_study(settings, out, bench_fn=FakeBench(), write_report=False)
    assert {r.objective: r.status for r in result.runs} == {"clm": "done", "ul2": "done"}
    shared = load_tokenizer(out / "tokenizers" / "decoder" / "tokenizer.json")
    assert list(special_tokens(shared).extra) == ["[R]", "[S]", "[X]"]
    for run in ("gpt-clm-seed0", "gpt-ul2-seed0"):
        assert tokenizer_hash(load_tokenizer(out / "runs" / run / "tokenizer.json")) == tokenizer_hash(shared)
    study = json.loads((out / "study.json").read_text())
    assert study["tokenizers"]["decoder"]["special_tokens"] == ["[R]", "[S]", "[X]"]
    never = CountingTrain()
    run_study(settings, out, train_fn=never, bench_fn=FakeBench(), write_report=False)  # resumes: nothing to do
    assert never.runs == []


def test_a_resumed_study_keeps_its_tokenizer(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    settings = tiny_settings(corpus, objectives=["clm"], backbones=["gpt"], budget="1steps", seeds=[0])
    run_study(settings, out, bench_fn=FakeBench(), write_report=False)
    study = json.loads((out / "study.json").read_text())
    assert "special_tokens" not in study["tokenizers"]["decoder"]  # as studies written before declared tokens
    never = CountingTrain()
    run_study(settings, out, train_fn=never, bench_fn=FakeBench(), write_report=False)
    with pytest.raises(ConfigError, match=r"decoder tokenizer lacks the special token\(s\) \[R\], \[S\], \[X\]"):
        run_study(tiny_settings(corpus, objectives=["clm", "ul2"], backbones=["gpt"], budget="1steps", seeds=[0]),
                  out, train_fn=never, bench_fn=FakeBench(), write_report=False)
    assert never.runs == []


def test_a_signal_stops_the_study_not_only_its_run(corpus: Path, tmp_path: Path) -> None:
    """SIGTERM in a run checkpoints it and stops the study (before, the study marked the run failed and
    went on with the next one)."""
    import os
    import signal

    from zoo.train.interrupt import TrainingInterrupted

    calls: list[str] = []

    def signalled(cfg, callback=None):  # noqa: ANN001, ANN202
        calls.append(Path(cfg.run_dir).name)

        def stop(record: dict) -> None:
            if record["kind"] == "train" and record["step"] == 2:
                os.kill(os.getpid(), signal.SIGTERM)
        return train(cfg, callback=stop)

    out = tmp_path / "study"
    with pytest.raises(TrainingInterrupted, match="interrupted by SIGTERM after step 3"):
        run_study(tiny_settings(corpus, objectives=["mlm"]), out, train_fn=signalled, bench_fn=FakeBench(),
                  write_report=False)
    assert calls == ["bert-mlm-seed0"]
    assert json.loads((out / "study.json").read_text())["runs"]["bert-mlm-seed0"]["status"] == "training"
