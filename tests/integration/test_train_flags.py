"""``zoo train`` flags that alias config keys (``--lr``, ``--warmup``, ``--weight-decay``, ``--grad-accum``,
``--report-to``) and the TensorBoard / Weights & Biases metric sinks."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from zoo.cli import cli

TINY = ["--backbone", "gpt", "--objective", "clm", "--size", "tiny", "--seq-len", "32", "--batch-size", "4",
        "--vocab-size", "400", "--set", "model.hidden_size=32", "--set", "model.num_layers=2",
        "--set", "model.num_heads=2", "--set", "model.intermediate_size=64", "--set", "train.prefetch=false",
        "--set", "data.doc_boundary=blank-line"]


def test_alias_flags_are_in_help_and_set_their_keys(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(cli, ["train", "--help"]).output
    for flag, key in [("--lr", "optim.lr"), ("--warmup", "optim.warmup"), ("--weight-decay", "optim.weight_decay"),
                      ("--grad-accum", "train.grad_accum"), ("--report-to", "train.report_to")]:
        assert flag in help_text and key in help_text
    result = runner.invoke(cli, ["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "run"), "--dry-run",
                                 "--lr", "0.003", "--warmup", "0.1", "--weight-decay", "0.05", "--grad-accum", "3"])
    assert result.exit_code == 0, result.output
    assert "lr = 0.003" in result.output and "warmup = 0.1" in result.output
    assert "weight_decay = 0.05" in result.output and "grad_accum = 3" in result.output
    assert "(3 accumulation step(s))" in result.output


def test_alias_and_set_of_the_same_key_conflict(corpus: Path) -> None:
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--lr", "0.003", "--set", "optim.lr=0.01",
                                      "--dry-run"])
    assert result.exit_code == 2
    assert "--lr and --set optim.lr=0.01 both set optim.lr; give one" in result.output
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--grad-accum", "2",
                                      "--set", "train.batch_tokens=4096", "--dry-run"])
    assert result.exit_code == 2 and "grad_accum (2) and batch_tokens (4096) both set" in result.output
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--report-to", "mlflow", "--dry-run"])
    assert result.exit_code == 2 and "unknown 'mlflow'; expected any of tensorboard, wandb" in result.output


def test_missing_logging_package_names_the_extra(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "run"),
                                      "--budget", "1steps", "--report-to", "wandb"])
    assert result.exit_code == 2
    assert "--report-to wandb (train.report_to) needs the wandb package: pip install 'objective-zoo[wandb]'" \
        in result.output
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # failed before any work


def _train(corpus: Path, out: Path, report_to: str) -> None:
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--out", str(out), "--budget", "2steps",
                                      "--set", "train.log_every=1", "--report-to", report_to])
    assert result.exit_code == 0, result.output


def test_tensorboard_receives_the_logged_scalars(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(corpus, tmp_path / "run", "tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in train]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in train], rel=1e-6)
    assert "eval/loss" in events.Tags()["scalars"]


def test_wandb_offline_run_is_written(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    _train(corpus, tmp_path / "run", "wandb")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    (log,) = runs[0].glob("*.wandb")  # W&B's own record log: history values are stored as JSON text
    data = log.read_bytes()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        assert f"{record['kind']}/loss".encode() in data and json.dumps(record["loss"]).encode() in data


def fake_wandb(monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None) -> dict[str, Any]:
    """A ``wandb`` module in ``sys.modules`` that records what the sink calls (``init`` raises ``fail``)."""
    calls: dict[str, Any] = {"init": [], "log": [], "finish": 0}

    class Run:
        def log(self, data: dict[str, float], step: int | None = None) -> None:
            calls["log"].append((step, dict(data)))

        def finish(self) -> None:
            calls["finish"] += 1

    def init(**kwargs: Any) -> Run:
        calls["init"].append(kwargs)
        if fail is not None:
            raise fail
        return Run()

    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # what importlib.util.find_spec reads
    module.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)
    return calls


def test_wandb_sink_logs_every_record_to_the_project(corpus: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the wandb package installed: the sink starts one run in $WANDB_PROJECT named after the run
    directory, logs each record's finite numbers as ``kind/key`` at its step, and finishes the run."""
    calls = fake_wandb(monkeypatch)
    monkeypatch.setenv("WANDB_PROJECT", "zoo-tests")
    run = tmp_path / "run"
    _train(corpus, run, "wandb")
    (init,) = calls["init"]
    assert init["project"] == "zoo-tests" and init["name"] == "run" and init["dir"] == str(run)
    assert init["config"]["objective"] == "clm" and init["config"]["backbone"] == "gpt"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [(r["step"], {f"{r['kind']}/{k}": v for k, v in r.items() if k not in ("kind", "step")
                             and type(v) in (int, float) and math.isfinite(v)}) for r in records]
    assert calls["log"] == expected
    assert {k for _, data in calls["log"] for k in data} >= {"train/loss", "train/lr", "eval/loss"}
    assert [step for step, data in calls["log"] if "train/loss" in data] == [1, 2]
    assert calls["finish"] == 1


def test_wandb_that_cannot_start_is_a_one_line_error(corpus: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_wandb(monkeypatch, fail=RuntimeError("api_key not configured (no-tty)"))
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "run"),
                                      "--budget", "1steps", "--report-to", "wandb"])
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.output.splitlines() if "W&B" in ln]
    assert line == ("error: --report-to wandb: W&B could not start a run (api_key not configured (no-tty)); "
                    "log in with `wandb login` or set WANDB_MODE=offline")
    assert "Traceback" not in result.output
