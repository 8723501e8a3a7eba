"""A non-finite loss (``ZOO_FAULT=nan@step=k``) stops the run: exit code 2, one clear message naming
the step, the objective and the batch, no traceback, and no checkpoint holding non-finite tensors."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.train import checkpoint as ckpt
from zoo.train.metrics import read_records

from .conftest import Child, assert_user_error, invoke, spawn, train_args


def assert_only_finite_checkpoints(run: Path, expected_steps: list[int]) -> None:
    assert [s for s, _ in ckpt.steps(run)] == expected_steps
    assert not list(run.glob(".tmp-step-*"))
    for _, step_dir in ckpt.steps(run):
        ckpt.verify(step_dir)
        for name in ("model.safetensors", "optimizer.safetensors"):
            for key, t in load_file(str(step_dir / name)).items():
                assert torch.isfinite(t).all(), f"{step_dir.name}/{name}: {key} is not finite"
    for rec in read_records(run / "metrics.jsonl"):
        assert all(math.isfinite(v) for v in rec.values() if isinstance(v, float)), rec


@pytest.mark.parametrize(("objective", "backbone", "step", "kept"), [
    ("mlm+nsp", "bert", 5, [3]),  # between checkpoints
    ("clm", "gpt", 6, [3]),  # at a checkpoint step: that checkpoint is never written
    ("span", "bert", 1, []),  # the very first step: no checkpoint at all
])
def test_non_finite_loss_stops_with_a_clear_error(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                                  objective: str, backbone: str, step: int, kept: list[int]) -> None:
    monkeypatch.setenv("ZOO_FAULT", f"nan@step={step}")
    run = tmp_path / "run"
    code, out = invoke(train_args(run, corpus, objective, backbone))
    text = assert_user_error(code, out, f"non-finite loss nan at step {step}, objective {objective}",
                             "batch of training", "no checkpoint was written for this step")
    assert re.search(r"batch of training (rows|segments) \[\d+(, \d+)*( \.\.\.)?\] \(seed 0\)", text), text
    assert_only_finite_checkpoints(run, kept)
    if kept:
        assert (run / "latest").read_text().strip() == f"step-{kept[-1]:06d}"
    else:
        assert not (run / "latest").exists()


@pytest.fixture(scope="module", autouse=True)
def real_process(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus: Path,
                 cache_dir: Path) -> Iterator[tuple[Child, Path] | None]:
    """Started with the module (when its test is selected), so that it runs while the in-process cases do."""
    if not any(item.name == "test_non_finite_loss_in_a_real_process" for item in request.session.items):
        yield None
        return
    run = tmp_path_factory.mktemp("nan") / "run"
    child = spawn(train_args(run, corpus, "mlm", "bert"), run.parent / "log", cache_dir, "nan@step=4")
    yield child, run
    child.kill()


@pytest.mark.slow
def test_non_finite_loss_in_a_real_process(real_process: tuple[Child, Path] | None) -> None:
    """The exit status and stderr a shell sees: 2 and one error line, no traceback."""
    assert real_process is not None
    child, run = real_process
    rc, log = child.wait()
    assert rc == 2, log
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite loss nan at step 4, objective mlm" in errors[0], log
    assert_only_finite_checkpoints(run, [3])


def test_resume_after_the_stop_reaches_the_same_point(tmp_path: Path, corpus: Path, single_thread: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the cause is gone, the same command continues from the newest (finite) checkpoint."""
    run = tmp_path / "run"
    monkeypatch.setenv("ZOO_FAULT", "nan@step=5")
    code, out = invoke(train_args(run, corpus))
    assert code == 2, out
    monkeypatch.delenv("ZOO_FAULT")
    code, out = invoke(train_args(run, corpus))
    assert code == 0 and "resuming from step-000003" in " ".join(out.split()), out
    assert_only_finite_checkpoints(run, [3, 6, 7])
