"""A budget that would take longer than a year on this machine is refused before any work, with the
estimate (``--force`` trains it anyway); ``zoo train --dry-run`` prints the estimate with everything
the command resolves to, and ``zoo train --help`` the defaults that decide a run."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from zoo.errors import ConfigError
from zoo.train import estimate
from zoo.train.resolve import resolve

from .conftest import TINY, assert_user_error, flat, invoke, train_args


@pytest.mark.parametrize("budget", ["1e30flops", "1e30steps"])
def test_a_budget_of_more_than_a_year_is_refused_before_any_work(tmp_path, corpus, monkeypatch, budget) -> None:
    """Before, both started training (at lr 4.9e-21: warmup is 5% of the budget); here such a training
    would stop at step 1 with a non-finite loss (the fault) instead of running on."""
    monkeypatch.setenv("ZOO_FAULT", "nan@step=1")
    out = tmp_path / "run"
    args = train_args(out, corpus, "mlm", "bert", 1, 0)
    args[args.index("1steps")] = budget
    code, log = invoke(args)
    text = assert_user_error(code, log, f"--budget {budget} (train.budget) would take about",
                             "years (measured", "s per step on cpu", "pass --force to train anyway")
    assert "documents" not in text  # refused before the corpus was read
    assert not out.exists()


def test_dry_run_prints_everything_resolved_and_the_estimate(tmp_path, corpus) -> None:
    out = tmp_path / "never-written"
    code, text = invoke(["train", "--objective", "mlm", "--backbone", "bert", "--data", str(corpus), "--out", str(out),
                         "--budget", "7steps", "--dry-run", *TINY])
    assert code == 0, text
    assert not out.exists()
    text = flat(text)
    # The backbone's and the objective's settings in full, defaults included, not only what was given.
    for needle in ("[model] vocab_size = 400 hidden_size = 32 num_layers = 2 num_heads = 2 intermediate_size = 64",
                   "[objectives.mlm]", "rate = 0.15", "[optim] lr = 0.001", "budget = \"7steps\"",
                   "FLOPs per token (forward, backbone)", "FLOPs per token (training)",
                   "budget in steps, tokens, FLOPs", "7 steps, 8.960e+02 tokens", "estimated time",
                   "s per step on cpu"):
        assert needle in text, f"{needle!r} not in:\n{text}"
    code, text = invoke(["train", "--objective", "mlm", "--backbone", "bert", "--data", str(corpus), "--out", str(out),
                         "--budget", "1e30flops", "--dry-run", *TINY])
    assert code == 0, text
    assert "more than a year: zoo train refuses it without --force" in flat(text)


def test_help_shows_the_defaults_that_decide_a_run() -> None:
    code, text = invoke(["train", "--help"])
    assert code == 0
    text = flat(text)
    for needle in ("Default: mlm+nsp.", "Default: bert", "--objective clm alone trains clm on bert", "--force",
                   "the budget in steps, tokens and FLOPs, and the estimated time"):
        assert needle in text, f"{needle!r} not in:\n{text}"


def _tiny(budget: str) -> dict:
    return {"objective": "mlm", "backbone": "bert", "size": "tiny",
            "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
            "tokenizer": {"vocab_size": 400}, "train": {"budget": budget, "seq_len": 32, "batch_size": 4}}


def test_the_measurement_leaves_every_generator_as_it_was() -> None:
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    t = estimate.measure(resolve(_tiny("1e30flops")), torch.device("cpu"))
    assert t.seconds_per_step > 0 and 1 <= t.steps_timed <= estimate.MEASURE_STEPS
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]


def test_which_budgets_are_measured_and_force() -> None:
    cfg = resolve(_tiny("1000steps"))
    cost = estimate.step_cost(cfg, 1)
    assert cost.tokens == 4 * 32 and cost.flops > 0
    assert not estimate.could_take_a_year(cfg.budget, cost)  # a normal budget costs no measurement
    assert estimate.check_time(cfg, torch.device("cpu")) is None
    huge = resolve(_tiny("10000h"))  # a time budget is its own estimate: nothing to measure
    with pytest.raises(ConfigError, match=r"--budget 10000h \(train.budget\) would take about 1.14 years; lower it"):
        estimate.check_time(huge, torch.device("cpu"))
    forced = estimate.check_time(huge, torch.device("cpu"), force=True)
    assert forced is not None and forced.seconds == 10000 * 3600 and forced.throughput is None
