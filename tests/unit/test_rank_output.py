"""Under ``--nproc N`` only rank 0 prints the run summary (torchrun sets RANK in each process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli

TINY = ["--objective", "clm", "--backbone", "gpt", "--size", "tiny", "--budget", "1steps", "--seq-len", "16",
        "--batch-size", "2", "--vocab-size", "300", "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
        "--set", "model.intermediate_size=64", "--set", "train.eval_batches=1", "--set", "data.doc_boundary=blank-line"]


@pytest.mark.parametrize("rank", ["0", "1"])
def test_only_rank_zero_prints_the_summary(rank: str, corpus: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", rank)  # WORLD_SIZE unset: a one-process run that believes it is rank `rank`
    result = CliRunner().invoke(cli, ["train", *TINY, "--data", str(corpus), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert ("Run summary" in result.output) == (rank == "0")
    assert ("checkpoint step-000001" in result.output) == (rank == "0")
