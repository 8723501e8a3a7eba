"""``zoo generate``, ``zoo fill`` and ``zoo eval`` on tiny runs trained for 2 steps, checked against
transformers (``GPT2LMHeadModel.generate``, its logits warpers, ``pipeline("fill-mask")``) on the
runs' exports, and bits per byte against a hand computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from zoo.cli import cli
from zoo.corpus_eval import EvalConfig, evaluate_corpus
from zoo.data import DataConfig
from zoo.export import export
from zoo.generate import GenerateConfig, generate, open_text_model, top_k_filter, top_p_filter
from zoo.models.attention import AttentionLayout
from zoo.train.resolve import resolve
from zoo.train.trainer import train

LINES = ["The cat sat on the mat and looked at the door.",
         "A dog ran to the park, où il a joué.",
         "Return the number of items in a container.",
         "An expression statement evaluates the expression list.",
         "The for statement is used to iterate over the elements of a sequence.",
         "It is executed once for each item; 猫 sat there."]


@pytest.fixture(scope="module")
def lines_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lines") / "lines.txt"  # one document per line
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    done: dict[tuple[str, str], Path] = {}

    def make(objective: str, backbone: str) -> Path:
        if (objective, backbone) not in done:
            out = root / f"{backbone}-{objective}"
            train(resolve({
                "objective": objective, "backbone": backbone, "size": "tiny", "out": str(out),
                "model": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
                "data": {"source": str(corpus), "doc_boundary": "blank-line"},
                "tokenizer": {"vocab_size": 400, "num_sentinels": 4},
                "optim": {"lr": 1e-2, "warmup": 0.0},
                "train": {"budget": "2steps", "seq_len": 32, "batch_size": 4, "eval_every": 0,
                          "eval_batches": 1000, "prefetch": False},
            }))
            done[(objective, backbone)] = out
        return done[(objective, backbone)]

    return make


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory: pytest.TempPathFactory):
    done: dict[Path, Path] = {}

    def make(run: Path) -> Path:
        if run not in done:
            out = tmp_path_factory.mktemp("hf") / run.name
            export(run, out)
            done[run] = out
        return done[run]

    return make


# --- sampling filters --------------------------------------------------------------------------------

def test_filters_match_transformers_warpers() -> None:
    from transformers import TopKLogitsWarper, TopPLogitsWarper

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    for k in (1, 5, 49):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(top_k=k)(ids, logits.clone()))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(top_p=p)(ids, logits.clone()))


# --- generate ------------------------------------------------------------------------------------------

def _hf_ids(model, prompt: str) -> list[int]:
    start = model.special.eos
    return [start, *model.tokenizer.encode(prompt, add_special_tokens=False).ids]


def test_greedy_generation_matches_transformers(runs, exported) -> None:
    from transformers import GPT2LMHeadModel

    run = runs("clm", "gpt")
    hf_dir = exported(run)
    model = open_text_model(run)
    prompt = "The for statement"
    ours = generate(model, prompt, GenerateConfig(max_new_tokens=12, greedy=True))
    assert ours.prompt_ids == _hf_ids(model, prompt) and ours.prefix == 0
    hf = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    end = model.special.eos
    out = hf.generate(torch.tensor([ours.prompt_ids]), do_sample=False, max_new_tokens=12, eos_token_id=end,
                      pad_token_id=end)
    assert ours.new_ids == out[0, len(ours.prompt_ids):].tolist()
    # the exported directory generates the same, and so does the command line
    assert generate(open_text_model(hf_dir), prompt, GenerateConfig(max_new_tokens=12, greedy=True)).new_ids == ours.new_ids
    result = CliRunner().invoke(cli, ["generate", str(run), "--prompt", prompt, "--max-new-tokens", "12",
                                      "--temperature", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(prompt + ours.text)


def test_sampling_matches_transformers_warpers_with_the_same_generator(runs, exported) -> None:
    from transformers import GPT2LMHeadModel, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    run = runs("clm", "gpt")
    model = open_text_model(run)
    cfg = GenerateConfig(max_new_tokens=10, temperature=0.8, top_k=40, top_p=0.9, seed=3)
    ours = generate(model, "Return the", cfg)
    hf = GPT2LMHeadModel.from_pretrained(exported(run)).eval()
    warpers = [TemperatureLogitsWarper(0.8), TopKLogitsWarper(40), TopPLogitsWarper(0.9)]
    g = torch.Generator().manual_seed(3)
    ids = torch.tensor([ours.prompt_ids])
    new = []
    with torch.no_grad():
        for _ in range(10):
            scores = hf(ids).logits[:, -1, :]
            for w in warpers:
                scores = w(ids, scores)
            token = torch.multinomial(scores.softmax(-1), 1, generator=g)
            new.append(int(token))
            ids = torch.cat([ids, token], dim=1)
            if new[-1] == model.special.eos:
                break
    assert ours.new_ids == new
    assert generate(model, "Return the", cfg).new_ids == new  # seeded: the same again


def test_prefix_lm_reads_the_prompt_as_its_prefix(runs) -> None:
    model = open_text_model(runs("prefix", "gpt"))
    out = generate(model, "The for statement", GenerateConfig(max_new_tokens=1, greedy=True))
    assert out.mode == "causal" and out.prefix == len(out.prompt_ids)
    ids = torch.tensor([out.prompt_ids])
    prefix = torch.ones_like(ids, dtype=torch.bool)
    proj = model.projection(model.scorers[0])
    with torch.no_grad():
        bidirectional = model.backbone(ids, AttentionLayout(causal=True, prefix=prefix))[0, -1]
        causal = model.backbone(ids, AttentionLayout(causal=True))[0, -1]
    assert not torch.allclose(bidirectional, causal)  # the prefix layout is not the causal one here
    expected = int((proj.weight @ bidirectional).argmax())
    assert out.new_ids[0] == expected


def test_wrong_kind_of_model_is_refused_in_one_line(runs) -> None:
    mlm, clm = runs("mlm", "bert"), runs("clm", "gpt")
    result = CliRunner().invoke(cli, ["generate", str(mlm), "--prompt", "The"])
    assert result.exit_code == 2
    assert "trained with 'mlm' (masked-token prediction)" in result.output and "zoo fill" in result.output
    result = CliRunner().invoke(cli, ["fill", str(clm), "The [MASK] sat."])
    assert result.exit_code == 2
    assert "trained with 'clm' (next-token prediction)" in result.output and "zoo generate" in result.output
    result = CliRunner().invoke(cli, ["generate", str(clm), "--prompt", "The", "--top-p", "0"])
    assert result.exit_code == 2 and "--top-p must be in (0, 1]" in result.output


# --- fill ----------------------------------------------------------------------------------------------

def test_fill_matches_transformers_fill_mask_pipeline(runs, exported) -> None:
    from transformers import pipeline

    run = runs("mlm", "bert")
    hf_dir = exported(run)
    text = "The [MASK] statement is used to [MASK] over a sequence."
    result = CliRunner().invoke(cli, ["fill", str(run), text, "--top-k", "3"])
    assert result.exit_code == 0, result.output
    from zoo.generate import fill

    ours = fill(open_text_model(run), text, top_k=3)
    assert len(ours.masks) == 2
    fill_mask = pipeline("fill-mask", model=str(hf_dir), tokenizer=str(hf_dir), top_k=3, device="cpu")
    theirs = fill_mask(text)
    for mine, ref in zip(ours.masks, theirs, strict=True):
        assert [p.token_id for p in mine] == [r["token"] for r in ref]
        assert [p.score for p in mine] == pytest.approx([r["score"] for r in ref], abs=1e-5)
        assert mine[0].token in result.output
    assert ours.masks == fill(open_text_model(hf_dir), text, top_k=3).masks  # the export fills the same


# --- eval ----------------------------------------------------------------------------------------------

def test_eval_bits_per_byte_by_hand(runs, exported, lines_corpus: Path) -> None:
    from transformers import GPT2LMHeadModel

    run = runs("clm", "gpt")
    result = CliRunner().invoke(cli, ["eval", str(run), "--data", str(lines_corpus), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    # by hand: transformers' model on the export, each line read after the end-of-text token
    hf_dir = exported(run)
    hf = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    model = open_text_model(hf_dir)
    nats, tokens = 0.0, 0
    for line in LINES:
        ids = _hf_ids(model, line)
        with torch.no_grad():
            logp = hf(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        nats -= float(logp.gather(1, torch.tensor(ids[1:])[:, None]).sum())
        tokens += len(ids) - 1
    nbytes = sum(len(line.encode("utf-8")) for line in LINES)
    assert got["measure"] == "next-token" and got["documents"] == len(LINES)
    assert got["tokens"] == tokens and got["bytes"] == nbytes
    assert got["loss"] == pytest.approx(nats / tokens, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(nats / tokens), rel=1e-5)
    assert got["bits_per_byte"] == pytest.approx(nats / (math.log(2) * nbytes), rel=1e-5)
    # the export reads the same; short windows change the loss, not the tokens and bytes
    again = evaluate_corpus(hf_dir, EvalConfig(data=DataConfig(source=str(lines_corpus))))
    assert again.bits_per_byte == pytest.approx(got["bits_per_byte"], rel=1e-5)
    short = evaluate_corpus(run, EvalConfig(data=DataConfig(source=str(lines_corpus)), seq_len=5))
    assert (short.tokens, short.bytes) == (tokens, nbytes) and short.loss != pytest.approx(got["loss"])


def test_eval_objective_loss_is_the_training_evaluation(runs) -> None:
    from zoo.runs import open_run

    run = runs("mlm", "bert")
    final = open_run(run).records("eval")[-1]  # the whole validation split (eval_batches covers it)
    result = evaluate_corpus(run, EvalConfig(split="valid", batch_size=4))
    assert result.measure == "objective" and result.bits_per_byte is None
    assert result.loss == pytest.approx(final["loss"], rel=1e-5)
    assert result.metrics["acc"] == pytest.approx(final["acc"], rel=1e-5)
    out = CliRunner().invoke(cli, ["eval", str(run), "--measure", "next-token"])
    assert out.exit_code == 2 and "does not predict the next token" in out.output


def test_sentinel_span_lm_predicts_the_span_that_ends_the_prompt(runs) -> None:
    model = open_text_model(runs("span-lm", "gpt"))
    out = generate(model, "The for statement", GenerateConfig(max_new_tokens=3, greedy=True))
    s = model.special
    prompt = model.tokenizer.encode("The for statement", add_special_tokens=False).ids
    assert out.mode == "causal-sentinel"
    assert out.prompt_ids == [*prompt, s.sentinels[0], s.eos, s.sentinels[0]]  # input | <extra_id_0> ...
    assert out.stop != "end token" or out.new_ids[-1] in {s.eos, *s.sentinels[1:]}
