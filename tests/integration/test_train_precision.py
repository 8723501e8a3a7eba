"""A run says what arithmetic it trained in, and keeps it when resumed on a machine that would choose
another (``train.precision = "auto"``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from zoo.train import precision as prec
from zoo.train.precision import CPUFeatures
from zoo.train.resolve import resolve
from zoo.train.trainer import Trainer, train

NATIVE = CPUFeatures(frozenset({"avx2", "avx512f", "avx512_bf16"}), "AVX512")
AVX2_ONLY = CPUFeatures(frozenset({"avx2", "fma"}), "AVX2")


def _config(out: Path, corpus: Path, steps: int, precision: str = "auto") -> dict:
    return {"objective": "clm", "backbone": "gpt", "size": "tiny", "out": str(out),
            "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
            "data": {"source": str(corpus), "doc_boundary": "blank-line"}, "tokenizer": {"vocab_size": 300},
            "optim": {"schedule": "constant", "warmup": 0.0},  # a budget that can be extended on resume
            "train": {"budget": f"{steps}steps", "seq_len": 32, "batch_size": 2, "eval_every": 0,
                      "eval_batches": 1, "prefetch": False, "device": "cpu", "precision": precision}}


def _on(monkeypatch: pytest.MonkeyPatch, cpu: CPUFeatures) -> None:
    monkeypatch.setattr(CPUFeatures, "detect", classmethod(lambda cls: cpu))


def test_auto_is_resolved_once_and_kept_on_resume(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    _on(monkeypatch, NATIVE)
    train(resolve(_config(out, corpus, 1)))
    record = json.loads((out / "run.json").read_text())["precision"]
    assert record["setting"] == "auto" and record["resolved"] == "bf16" and "avx512_bf16" in record["reason"]

    _on(monkeypatch, AVX2_ONLY)  # the run moves to a machine whose auto would be fp32
    monkeypatch.setattr(prec, "_warned", False)
    seen: list[torch.dtype | None] = []
    original = Trainer._train_step

    def spy(self: Trainer, micro: list) -> tuple:
        seen.append(self.autocast_dtype)
        return original(self, micro)

    monkeypatch.setattr(Trainer, "_train_step", spy)
    with caplog.at_level(logging.WARNING, logger="zoo.train.precision"):
        train(resolve(_config(out, corpus, 2)))
    assert seen == [torch.bfloat16]  # the resumed step ran in bf16, as the run started
    assert json.loads((out / "run.json").read_text())["precision"]["resolved"] == "bf16"
    assert "resuming in bf16" in caplog.text and "auto would choose fp32" in caplog.text
    assert "10.4x slower" in caplog.text  # and bf16 here is emulated: said once


def test_a_fresh_auto_run_on_an_avx2_cpu_trains_in_fp32(corpus: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _on(monkeypatch, AVX2_ONLY)
    train(resolve(_config(tmp_path / "run", corpus, 1)))
    record = json.loads((tmp_path / "run" / "run.json").read_text())["precision"]
    assert record["resolved"] == "fp32" and "avx512_bf16" in record["reason"]
