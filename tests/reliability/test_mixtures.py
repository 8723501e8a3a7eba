"""Mixture runs resume bitwise: an interrupted run continued from its checkpoint equals an uninterrupted
one (weights, optimiser, every part's sampler, metrics and the part each step ran). Two gloo ranks of
``mntp:15|clm:1`` killed and resumed: ``test_distributed.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.objectives.compose import build_objective
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, tiny_backbone
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import read_records
from zoo.train.parts import Parts

from .conftest import STEPS, assert_same_run, final_step, invoke, train_args
from .test_kill_resume import monkeypatched_kill

# (spec, backbone): parts with different data units (sentence pairs for mlm+sop, packed rows for clm)
# and with different row lengths (span on a decoder rebuilds its raw rows into prefix-LM rows).
MIXTURES = [("mlm+sop|clm", "bert"), ("mlm|span:2", "gpt")]


def _draws(run: Path, steps: int) -> list[str]:
    """The part of each step, as ``Mixture.draw`` gives it for the run's seed."""
    info = json.loads((run / "run.json").read_text())
    seed = json.loads((run / "config.json").read_text())["train"]["seed"]
    backbone = tiny_backbone(info["backbone"], info["vocab_size"])
    mixture = build_objective(parse_spec(info["objective"]), {}, special_tokens_for_tests(info["vocab_size"], 20), backbone.spec)
    return [mixture.draw(seed, s).label for s in range(1, steps + 1)]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> dict[str, Path]:
    """Uninterrupted runs, once per mixture."""
    from .conftest import train_in_process

    root = tmp_path_factory.mktemp("mixture-references")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the compared runs (the function-scoped fixture starts after this one)
    try:
        return {spec: train_in_process(root / bb, corpus, cache_dir, spec, bb) for spec, bb in MIXTURES}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("spec", "backbone"), MIXTURES, ids=[s for s, _ in MIXTURES])
def test_interrupted_mixture_resumes_bitwise(references: dict[str, Path], corpus: Path, single_thread: None,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str,
                                             backbone: str) -> None:
    run = tmp_path / "run"
    args = train_args(run, corpus, spec, backbone)
    with monkeypatched_kill(monkeypatch, 5):  # stops right after step 5: the newest checkpoint is step 3
        code, _ = invoke(args)
    assert code != 0 and [s for s, _ in ckpt.steps(run)] == [3]
    code, text = invoke(args)
    assert code == 0, text
    assert "resuming from step-000003" in " ".join(text.split())
    reference = references[spec]
    assert_same_run(reference, run)

    records = read_records(run / "metrics.jsonl", "train")
    ran = [r["parts"] for r in records]
    assert all(len(p) == 1 for p in ran)  # log_every = 1: one part per record
    draws = _draws(run, STEPS)
    assert [p[0] for p in ran] == draws
    assert len(set(draws)) == 2, "the seed should exercise both parts in 7 steps"
    for r in records:  # metrics of the part that ran, and no other's
        assert f"{r['parts'][0]}/loss" in r and r[f"{r['parts'][0]}/loss"] == r["loss"]
        others = {p.label for p in parse_spec(spec).parts} - {r["parts"][0]}
        assert not any(f"{o}/loss" in r for o in others)
    if spec == "mlm+sop|clm":  # FLOPs are charged for the part that ran: clm's head projects every position
        flops = [r["flops"] for r in records]
        spent = {label: [b - a for a, b, p in zip([0.0, *flops], flops, draws, strict=False) if p == label]
                 for label in set(draws)}
        assert min(spent["clm"]) > 1.2 * max(spent["mlm+sop"]), spent
    evals = read_records(run / "metrics.jsonl", "eval")
    assert evals and all(f"{p.label}/loss" in evals[-1] for p in parse_spec(spec).parts)
    # each part's sampler advanced only in that part's steps
    state = json.loads((final_step(run) / "trainer.json").read_text())["sampler"]["mixture"]
    for label, part_state in state.items():
        assert part_state["step"] == draws.count(label)
        assert part_state["position"] == draws.count(label) * part_state["batch_size"]


def test_negative_control_without_restoring_the_part_samplers(references: dict[str, Path], corpus: Path,
                                                              single_thread: None, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: resume without the parts' sampler positions and the run differs."""
    spec, backbone = MIXTURES[0]
    run = tmp_path / "run"
    args = train_args(run, corpus, spec, backbone)
    with monkeypatched_kill(monkeypatch, 5):
        invoke(args)
    monkeypatch.setattr(Parts, "load_sampler_state", lambda self, state: None)
    code, text = invoke(args)
    assert code == 0, text
    with pytest.raises(AssertionError):
        assert_same_run(references[spec], run)
