"""The heads' share of the training FLOPs: the accounting against a measured operation count, and the
trainer's totals, which keep it apart from the backbone's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo.compare.report import compute_table
from zoo.compare.results import ComparisonResult, RunInfo
from zoo.objectives.compose import build_objective
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import read_records
from zoo.train.resolve import resolve
from zoo.train.state import Totals
from zoo.train.trainer import train

TOKENS = special_tokens_for_tests(vocab_size=300)


@pytest.mark.parametrize("objective", ["clm", "mlm", "mntp"])
def test_head_flops_match_the_measured_operation_count(objective: str) -> None:
    """Forward and backward of the objective's loss from the backbone's hidden states, in bf16 as the
    trainer runs it on CPU: the matmul FLOPs torch counts are 3 x ``head_flops`` (input and weight
    gradients). In fp32 the fused loss accumulates the weight gradient with an in-place ``addmm_``,
    which the counter does not see."""
    backbone = tiny_backbone("gpt", TOKENS.vocab_size, hidden_size=32)
    obj = build_objective(parse_spec(objective), {}, TOKENS, backbone.spec)
    heads = obj.build_heads(backbone)
    batch = obj.prepare(synthetic_rows(TOKENS, "decoder", batch_size=4, seq_len=48, seed=1),
                        np.random.default_rng(0)).to("cpu")
    hidden = torch.randn(*batch.shape, 32, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = obj.loss(heads, hidden, batch)
        out.loss.backward()
    assert counter.get_total_flops() == pytest.approx(3 * obj.head_flops(batch), rel=1e-9)


def test_trainer_counts_head_flops_apart(tmp_path: Path, corpus: Path) -> None:
    """clm reads the backbone once per token: the FLOPs that are not the head's are exactly the
    backbone's per-token count times the tokens of every step, in the log, the eval record and the checkpoint."""
    run, steps, rows, seq = tmp_path / "run", 4, 4, 32
    cfg = resolve({
        "objective": "clm", "backbone": "gpt", "size": "tiny", "out": str(run),
        "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
        "data": {"source": str(corpus), "doc_boundary": "blank-line"},
        "tokenizer": {"vocab_size": 400, "num_sentinels": 20},
        "train": {"budget": f"{steps}steps", "seq_len": seq, "batch_size": rows, "log_every": 2, "eval_every": 4,
                  "eval_batches": 1},
    })
    train(cfg)
    last = read_records(run / "metrics.jsonl", "train")[-1]
    evaluated = read_records(run / "metrics.jsonl", "eval")[-1]
    state = json.loads((ckpt.steps(run)[-1][1] / "trainer.json").read_text())
    per_token = tiny_backbone("gpt", 400, hidden_size=32, intermediate_size=64).flops_per_token(seq)
    for record in (last, evaluated, state):
        assert 0 < record["head_flops"] < record["flops"]
        assert record["flops"] - record["head_flops"] == pytest.approx(3 * per_token * steps * rows * seq, rel=1e-9)


def test_older_checkpoint_totals_have_no_head_flops() -> None:
    state = Totals(step=3, tokens=10, flops=5.0, train_time=1.0, head_flops=2.0).to_state(mixture=False)
    assert Totals.from_state(state).head_flops == 2.0
    del state["head_flops"]
    assert Totals.from_state(state).head_flops == 0.0


def test_compute_table_shows_head_flops_and_share() -> None:
    runs = [RunInfo("gpt-clm-seed0", "gpt", "clm", 0, "p", steps=2, flops=4e12, head_flops=1e12, tokens=8),
            RunInfo("gpt-mlm-seed0", "gpt", "mlm", 0, "p", steps=2, flops=4e12, tokens=8)]  # recorded before
    result = ComparisonResult(out="o", mode="study", suite="blimp", tasks=[], task_titles={}, task_metrics={},
                              runs=runs, baselines=[])
    columns, rows = compute_table(result)
    at = columns.index("head FLOPs")
    assert rows[0][at] == "1.000e+12 (25%)" and rows[1][at] == "-"
