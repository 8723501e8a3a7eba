"""Step directories: a branch abandoned by resuming from an older step is kept but never used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoo.errors import CheckpointError
from zoo.train import checkpoint as ckpt


def write(run: Path, step: int, keep_last: int = 10) -> Path:
    tensors = {"w": torch.full((2,), float(step))}
    return ckpt.write(run, step, ckpt.Checkpoint(tensors, {}, {"r": torch.zeros(1)}, {"step": step}), keep_last)


def test_abandoned_steps_are_kept_and_ignored(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in (2, 4, 6):
        write(run, step)
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 6}\n')
    moved = ckpt.abandon_after(run, 2)
    assert [p.name.rsplit("-", 1)[0] for p in moved] == ["abandoned-step-000004", "abandoned-step-000006"]
    assert all(p.is_dir() and ckpt.verify(p) for p in moved)  # intact, not deleted
    assert (moved[-1] / "metrics.jsonl").read_text() == '{"kind": "train", "step": 6}\n'
    assert [s for s, _ in ckpt.steps(run)] == [2]
    assert (run / "latest").read_text().strip() == "step-000002"
    assert ckpt.newest_valid(run) == (run / "step-000002", [])
    # The new branch: pruning keeps the last K of its own steps and leaves the abandoned ones alone.
    for step in (3, 4, 5):
        write(run, step, keep_last=2)
    assert [s for s, _ in ckpt.steps(run)] == [4, 5]
    assert all(p.is_dir() for p in moved)
    assert ckpt.newest_valid(run)[0] == run / "step-000005"
    assert ckpt.abandon_after(run, 5) == []


def test_abandoning_everything_removes_latest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write(run, 3)
    assert len(ckpt.abandon_after(run, 0)) == 1
    assert not (run / "latest").exists() and ckpt.newest_valid(run) == (None, [])


def test_non_finite_tensors_are_refused(tmp_path: Path) -> None:
    bad = ckpt.Checkpoint({"w": torch.tensor([1.0, float("inf")])}, {}, {}, {"step": 1})
    with pytest.raises(CheckpointError, match=r"refusing to write checkpoint step-000001: non-finite values in \['w'\]"):
        ckpt.write(tmp_path, 1, bad, 3)
    assert ckpt.steps(tmp_path) == []
