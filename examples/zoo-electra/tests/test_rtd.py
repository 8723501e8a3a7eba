"""zoo-electra: the plugin contract (zoo.testing), and what makes it ELECTRA.

Skipped when the package is not installed (``pip install ./examples/zoo-electra``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("zoo_electra", reason="zoo-electra is not installed (pip install ./examples/zoo-electra)")

from click.testing import CliRunner  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from zoo_electra import ReplacedTokenDetection, RTDConfig, replace_tokens  # noqa: E402

from zoo import registry  # noqa: E402
from zoo.cli import cli  # noqa: E402
from zoo.objectives import IGNORE, gather_positions  # noqa: E402
from zoo.testing import check_objective, special_tokens_for_tests, synthetic_rows, tiny_backbone  # noqa: E402
from zoo.zoo_model import ZooModel  # noqa: E402

if "rtd" not in registry.names("objective"):
    pytest.skip("zoo_electra is importable but its entry point is not registered (install the package)",
                allow_module_level=True)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOKENS = special_tokens_for_tests()


def _model(seed: int = 0, hidden: int = 64, attention: str = "auto",
           **config: object) -> tuple[ZooModel, ReplacedTokenDetection]:
    backbone = tiny_backbone("bert", TOKENS.vocab_size, hidden_size=hidden, num_heads=4, seed=seed,
                             attention=attention)
    objective = ReplacedTokenDetection(RTDConfig(**config), TOKENS, backbone.spec)
    return ZooModel(backbone, objective), objective


def _batch(objective: ReplacedTokenDetection, seed: int = 0, rows: int = 4, seq_len: int = 48):
    data = synthetic_rows(TOKENS, "encoder", batch_size=rows, seq_len=seq_len, seed=seed)
    return objective.prepare(data, np.random.default_rng(seed)).to("cpu")


# --- the contract ----------------------------------------------------------------------------------
def test_conforms_to_the_plugin_contract() -> None:
    reports = check_objective("rtd", seq_len=32, batch_size=4, steps=4)
    assert [r.backbone for r in reports] == [b for b in registry.names("backbone")  # no encoder-decoder form
                                             if "bidirectional" in registry.load("backbone", b).capabilities
                                             and registry.load("backbone", b).family != "encoder-decoder"]
    assert all(r.losses[-1] < r.losses[0] for r in reports)
    # composed with nsp where the backbone has segment embeddings
    assert all((r.composed_with == "nsp") == ("segments" in registry.load("backbone", r.backbone).capabilities)
               for r in reports)


def test_registered_with_its_distribution_as_origin() -> None:
    info = registry.info("objective", "rtd")
    assert info.origin == "zoo-electra 0.1.0" and info.value == "zoo_electra:ReplacedTokenDetection"
    out = CliRunner().invoke(cli, ["list"], terminal_width=200).output  # not a terminal: Markdown tables
    line = next(ln for ln in out.splitlines() if "| rtd" in ln and "zoo-electra" in ln)
    assert "zoo-electra 0.1.0" in line
    assert "| rtd | zoo-electra 0.1.0 | bidirectional attention |" in out.splitlines()


# --- ELECTRA -----------------------------------------------------------------------------------------
def test_replaced_tokens_are_labelled_exactly() -> None:
    ids = torch.tensor([[2, 10, 4, 12, 4, 3, 0],
                        [2, 4, 21, 4, 3, 0, 0]])
    positions = torch.tensor([[2, 4, 0], [1, 3, 0]])  # padding entries point at position 0 ([CLS])
    labels = torch.tensor([[11, 13, IGNORE], [20, 22, IGNORE]])
    sampled = torch.tensor([[11, 99, 77], [50, 22, 88]])  # 11 and 22 re-sample the original token
    corrupted, replaced = replace_tokens(ids, positions, labels, sampled)
    assert corrupted.tolist() == [[2, 10, 11, 12, 99, 3, 0], [2, 50, 21, 22, 3, 0, 0]]
    assert replaced.tolist() == [[False, False, False, False, True, False, False],
                                 [False, True, False, False, False, False, False]]


def test_masking_follows_electra_proportions() -> None:
    _, objective = _model()
    data = synthetic_rows(TOKENS, "encoder", batch_size=64, seq_len=128, seed=3)
    batch = objective.prepare(data, np.random.default_rng(3))
    t = batch.targets["rtd"]
    valid = t["labels"] != IGNORE
    at = np.take_along_axis(batch.input_ids, t["positions"], axis=1)[valid]
    masked = at == TOKENS.mask
    assert abs(masked.mean() - 0.85) < 0.03  # 85% [MASK] ...
    assert np.array_equal(at[~masked], t["labels"][valid][~masked])  # ... the rest unchanged, none random
    maskable = ~np.asarray(data.special_mask) & (np.asarray(data.doc_ids) >= 0)
    assert abs(valid.sum() / maskable.sum() - 0.15) < 0.01


def test_discriminator_sees_samples_and_learns_the_right_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    model, objective = _model()
    batch = _batch(objective)
    t = batch.targets["rtd"]
    valid = t["labels"] != IGNORE
    # force the generator's samples: the original token at even entries, token 300 (never an original
    # at those positions) at odd ones
    forced = torch.where(torch.arange(t["labels"].shape[1]) % 2 == 0, t["labels"], 300)
    forced = torch.where(t["labels"] == 300, 301, forced)
    monkeypatch.setattr(objective, "sample", lambda logits, training: forced)
    seen: dict[str, torch.Tensor] = {}

    def spy(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen["ids"] = kwargs["input_ids"]

    model.backbone.register_forward_pre_hook(spy, with_kwargs=True)
    out = model(batch)
    original, _ = replace_tokens(batch.input_ids, t["positions"], t["labels"], t["labels"])
    expected = original.clone()
    expected.scatter_(1, torch.where(valid, t["positions"], 0), torch.where(valid, forced, original[:, :1]))
    assert torch.equal(seen["ids"], expected)
    assert not (seen["ids"] == TOKENS.mask).any()  # the discriminator never sees [MASK]
    n_replaced = int((valid & (forced != t["labels"])).sum())
    n_real = int((batch.doc_ids >= 0).sum())
    assert n_replaced > 0 and float(out.metrics["disc/replaced_frac"]) == pytest.approx(n_replaced / n_real)


def test_generator_is_smaller_and_shares_the_embeddings() -> None:
    model, objective = _model(hidden=64)
    gen = model.heads["rtd"].generator
    backbone = model.backbone
    assert objective.dims.hidden_size == 16 and objective.dims.num_heads == 1  # 1/4 of 64 wide, 4 heads
    assert objective.dims.num_layers == backbone.spec.num_layers
    assert gen.decoder.weight is backbone.input_embedding().weight
    assert gen._shared_pos is backbone.pos_emb and gen.pos_emb is None
    own = sum(p.numel() for p in gen.parameters())
    assert own < backbone.num_parameters(exclude_embeddings=True)
    keys = model.state_dict().keys()
    assert all("tok_emb" not in k and "pos_emb" not in k for k in keys if k.startswith("heads."))
    assert any(k.startswith("heads.rtd.generator.layers.") for k in keys)
    assert any(k.startswith("heads.rtd.discriminator.") for k in keys)


def test_loss_weighting_and_no_gradient_through_sampling() -> None:
    grads, outs = {}, {}
    for weight in (50.0, 1.0):
        model, objective = _model(disc_weight=weight)
        batch = _batch(objective)
        torch.manual_seed(7)
        out = model(batch)
        out.loss.backward()
        outs[weight] = out
        grads[weight] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for weight, out in outs.items():
        m = out.metrics
        total = float(m["gen/loss"]) + weight * float(m["disc/loss"])
        assert float(out.loss.detach()) == pytest.approx(total, rel=1e-6)
    assert float(outs[50.0].metrics["disc/loss"]) == float(outs[1.0].metrics["disc/loss"])  # same samples
    # the discriminator loss reaches the generator only through the shared embeddings, never its own layers
    gen = [n for n in grads[1.0] if n.startswith("heads.rtd.generator.")]
    assert gen and all(torch.allclose(grads[50.0][n], grads[1.0][n], atol=1e-7) for n in gen)
    disc = "heads.rtd.discriminator.prediction.weight"
    assert torch.allclose(grads[50.0][disc], 50.0 * grads[1.0][disc], rtol=1e-4, atol=1e-8)


def test_evaluation_is_repeatable_and_leaves_the_training_stream_alone() -> None:
    model, objective = _model()
    batch = _batch(objective)
    model.eval()
    state = torch.get_rng_state()
    with torch.no_grad():
        a, b = model(batch), model(batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.loss, b.loss)
    model.train()
    torch.manual_seed(1)
    c = model(batch)
    torch.manual_seed(2)
    d = model(batch)
    assert not torch.equal(c.metrics["disc/loss"], d.metrics["disc/loss"])  # training samples vary


def test_head_flops_match_a_measured_forward() -> None:
    """``head_flops`` against torch's FLOP counter on the generator and both prediction heads (eager
    attention: the counter sees its matmuls, not those inside CPU SDPA)."""
    model, objective = _model(hidden=64, attention="eager")
    batch = _batch(objective)
    heads = model.heads["rtd"]
    model.eval()
    t = batch.targets["rtd"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        hidden = heads.generator(batch.input_ids, batch.layout(), batch.token_type_ids, batch.position_ids)
        heads.generator.logits(gather_positions(hidden, t["positions"]))
        heads.discriminator(torch.zeros(*batch.shape, 64))
    measured = counter.get_total_flops()
    assert objective.head_flops(batch) == pytest.approx(measured, rel=0.01)


@pytest.mark.slow
def test_trains_with_zoo_train_and_bench_reads_the_discriminator(tmp_path: Path) -> None:
    from pydoc_data.topics import topics

    from zoo.benchmarks.source import open_source
    from zoo.runs import open_run
    from zoo.train.resolve import resolve
    from zoo.train.trainer import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k].strip().replace("\n\n", "\n") for k in sorted(topics)[:30]))
    cfg = resolve({"objective": "rtd", "backbone": "bert", "size": "tiny", "out": str(tmp_path / "run"),
                   "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
                   "data": {"source": str(corpus), "doc_boundary": "blank-line"},
                   "tokenizer": {"vocab_size": 300, "num_sentinels": 4},
                   "train": {"budget": "3steps", "seq_len": 32, "batch_size": 4, "eval_every": 3, "eval_batches": 1}})
    result = train(cfg)
    assert result.step == 3 and {"gen/loss", "disc/acc", "gen/ppl"} <= set(result.eval)
    run = open_run(tmp_path / "run")
    assert run.info["plugins"]["objective:rtd"] == "0.1.0"
    model = run.load_model()
    backbone = open_source(tmp_path / "run").backbone()
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, model.backbone.state_dict()[k])
    assert not any(k.startswith("heads") for k in backbone.state_dict())
