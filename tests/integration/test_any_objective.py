"""Any objective on either architecture, end to end: the issue's single-objective commands through the
CLI (2 steps each), and a paradigm token declared by an objective reaching the exported tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.train.metrics import read_records


def _train(tmp_path: Path, corpus: Path, objective: str, backbone: str, *extra: str) -> Path:
    out = tmp_path / f"{backbone}-{objective}"
    result = CliRunner().invoke(cli, [
        "train", "--objective", objective, "--backbone", backbone, "--size", "tiny", "--data", str(corpus),
        "--budget", "2steps", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400",
        "--out", str(out), "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
        "--set", "model.intermediate_size=64", "--set", "tokenizer.num_sentinels=20",
        "--set", "data.doc_boundary=blank-line", "--set", "train.eval_every=0", *extra])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(("objective", "backbone"), [
    ("clm", "bert"), ("mlm", "gpt"), ("deshuffle", "gpt"), ("deshuffle", "bert"), ("mntp", "gpt"), ("mntp", "bert"),
])
def test_single_objective_commands_train(tmp_path: Path, corpus: Path, objective: str, backbone: str) -> None:
    out = _train(tmp_path, corpus, objective, backbone)
    losses = [r["loss"] for r in read_records(out / "metrics.jsonl") if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)


def test_paradigm_token_is_reserved_trained_and_exported(tmp_path: Path, corpus: Path) -> None:
    from transformers import AutoTokenizer

    from zoo.data.tokenizer import load_tokenizer, special_tokens

    run = _train(tmp_path, corpus, "span-lm", "gpt", "--set", "objectives.span-lm.paradigm=[R]")
    extra = special_tokens(load_tokenizer(run)).extra
    assert list(extra) == ["[R]"]
    result = CliRunner().invoke(cli, ["export", str(run), "--to", "hf", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "hf" / "special_tokens_map.json").read_text())
    assert "[R]" in saved["additional_special_tokens"]
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert hf.convert_tokens_to_ids("[R]") == extra["[R]"] and "[R]" in hf.all_special_tokens
