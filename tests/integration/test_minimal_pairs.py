"""Zero-shot minimal pairs: scores equal the transformers reference, scorer choice per objective, the
``zoo bench --suite blimp|climp`` output, and clear refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from zoo.benchmarks.lm_scoring import Scorer, encode, masked_copies, score_sentences, scorers_for
from zoo.benchmarks.minimal_pairs import load_suite
from zoo.benchmarks.pairs_results import correctness
from zoo.benchmarks.source import open_source
from zoo.benchmarks.zeroshot import open_scoring_model, run_minimal_pairs
from zoo.cli import cli
from zoo.errors import ConfigError, ZooError

from ..unit.test_minimal_pairs_data import write_blimp, write_climp

SENTENCES = ["Who should Derek hug after shocking Richard?", "The unbelievably unremarkable cats sleep.",
             "A dog barks."]
REPO = Path(__file__).resolve().parents[2]
# good longer than bad, and good shorter than bad: a scorer that prefers a position or a length cannot pass
PAIRS = [("The cats sleep soundly tonight.", "The cats sleeps."), ("Dogs bark.", "Dogs barks at them loudly now.")]


def _texts(shared: Path) -> list[str]:
    return [x.good for p in load_suite("blimp", shared / "blimp", max_pairs=10) for x in p.pairs]


def _wordpiece(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    # a small vocabulary, so that many words split into several pieces (what word-l2r is about)
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    return tok


def _bpe(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|pad|>", "<|mask|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


@pytest.fixture(scope="module")
def hf_models(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A GPT2LMHeadModel and a BertForMaskedLM with random weights, saved by transformers itself."""
    from transformers import BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel

    texts = _texts(shared_data)
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(1)
    out = {}
    bpe, wp = _bpe(texts), _wordpiece(texts)
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2,
                                     n_head=2, bos_token_id=0, eos_token_id=0, initializer_range=0.2))
    bert = BertForMaskedLM(BertConfig(vocab_size=wp.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                      initializer_range=0.2))
    for name, model, tok in (("gpt", gpt, bpe), ("bert", bert, wp)):
        model.eval().save_pretrained(str(root / name), safe_serialization=True)
        tok.save(str(root / name / "tokenizer.json"))
        out[name] = root / name
    return out


def _ours(path: Path, sentences: list[str], pll: str = "word-l2r", precision: str = "fp32",
          causal: str | None = None) -> dict[str, np.ndarray]:
    src = open_source(path)
    sm = open_scoring_model(src)
    (scorer,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, pll, causal=causal)
    return score_sentences(scorer, sm.backbone, sm.heads, src.tokenizer, src.special, sentences, batch_tokens=64,
                           precision=precision)


@pytest.mark.parametrize("name", ["gpt", "bert"])
def test_bf16_scores_are_close_to_fp32(hf_models: dict[str, Path], name: str) -> None:
    exact, fast = _ours(hf_models[name], SENTENCES), _ours(hf_models[name], SENTENCES, precision="bf16")
    for k, v in exact.items():
        np.testing.assert_allclose(fast[k], v, rtol=0.02)


@pytest.mark.parametrize("reading", ["causal", "causal-start"])
def test_causal_scores_equal_gpt2_lm_head_model(hf_models: dict[str, Path], reading: str) -> None:
    """``causal``: the sentence alone at positions 0.., its first token unscored; ``causal-start``: after
    ``<|endoftext|>``, every token scored; both as transformers' GPT2LMHeadModel computes them."""
    from transformers import GPT2LMHeadModel

    ours = _ours(hf_models["gpt"], SENTENCES, causal=reading)
    ref = GPT2LMHeadModel.from_pretrained(str(hf_models["gpt"])).eval()
    tok = Tokenizer.from_file(str(hf_models["gpt"] / "tokenizer.json"))
    lead = [0] if reading == "causal-start" else []  # <|endoftext|> context
    for i, s in enumerate(SENTENCES):
        ids = torch.tensor([[*lead, *tok.encode(s, add_special_tokens=False).ids]])
        with torch.no_grad():
            logp = ref(ids).logits[0, :-1].log_softmax(-1)
        total = logp.gather(1, ids[0, 1:, None]).sum().item()
        assert ours[reading][i] == pytest.approx(total, abs=1e-4)
        assert ours[f"{reading}-mean"][i] == pytest.approx(total / (ids.shape[1] - 1), abs=1e-4)


@pytest.mark.parametrize("pll", ["word-l2r", "original"])
def test_pll_equals_a_direct_bert_for_masked_lm_computation(hf_models: dict[str, Path], pll: str) -> None:
    from transformers import BertForMaskedLM

    ours = _ours(hf_models["bert"], SENTENCES, pll)[f"pll-{pll}"]
    ref = BertForMaskedLM.from_pretrained(str(hf_models["bert"])).eval()
    tok = Tokenizer.from_file(str(hf_models["bert"] / "tokenizer.json"))
    split_words = 0
    for i, s in enumerate(SENTENCES):
        enc = tok.encode(s, add_special_tokens=False)
        ids, words = [2, *enc.ids, 3], [None, *enc.word_ids, None]
        total = 0.0
        for t in range(1, len(ids) - 1):  # one masked copy per sentence token, [CLS] and [SEP] kept
            masked = list(ids)
            masked[t] = 4
            if pll == "word-l2r":  # and the rest of the target's word, left to right
                for u in range(t + 1, len(ids) - 1):
                    if words[u] == words[t]:
                        masked[u] = 4
                        split_words += 1
            with torch.no_grad():
                logits = ref(torch.tensor([masked])).logits[0, t]
            total += logits.log_softmax(-1)[ids[t]].item()
        assert ours[i] == pytest.approx(total, abs=1e-4)
    assert pll == "original" or split_words > 0  # the sentences do exercise within-word masking


def test_masked_copies_word_l2r() -> None:
    masks, pos = masked_copies(1, np.array([0, 1, 1, 1, 2]), word_l2r=True)
    assert pos.tolist() == [1, 2, 3, 4, 5]
    assert masks.astype(int).tolist() == [[1, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 0],
                                          [0, 0, 0, 0, 1]]
    plain, _ = masked_copies(1, np.array([0, 1, 1]), word_l2r=False)
    assert plain.astype(int).tolist() == np.eye(3, dtype=int).tolist()


def test_scorer_selection_from_declared_attention_and_heads() -> None:
    from zoo.objectives.base import TiedLinear
    from zoo.objectives.mlm import MaskedLMHead
    from zoo.objectives.pairs import PairHead

    emb = torch.nn.Embedding(10, 8)
    lm, pair = TiedLinear(emb, bias=False), torch.nn.Linear(8, 2)
    mlm = torch.nn.Module.__new__(MaskedLMHead)  # its type is what selection reads
    torch.nn.Module.__init__(mlm)
    assert PairHead is not None

    def names(spec: str, family: str, heads: dict, pll: str = "word-l2r") -> list[str]:
        return [s.name for s in scorers_for(spec, family, heads, pll)]

    assert names("clm", "decoder", {"clm": lm}) == ["causal"]
    assert names("prefix", "decoder", {"prefix": lm}) == ["causal"]  # empty prefix
    assert names("span", "decoder", {"span": lm}) == ["causal-sentinel"]
    assert names("span", "encoder", {"span": mlm}) == ["pll-word-l2r"]
    assert names("mlm", "encoder", {"mlm": mlm}, "original") == ["pll-original"]
    assert names("mlm+nsp", "encoder", {"mlm": mlm, "nsp": pair}) == ["pll-word-l2r"]
    assert names("mlm:1|clm:1", "decoder", {"mlm": mlm, "clm": lm}) == ["pll-word-l2r", "causal"]  # a mixture
    assert names("(mlm+sop):3|clm", "encoder", {"mlm": mlm, "sop": pair, "clm": lm}) == ["pll-word-l2r", "causal"]
    # parts sharing a head_key find it under heads.<key>: mntp and clm share the LM head
    assert [(s.name, s.head) for s in scorers_for("mntp:15|clm:1", "decoder", {"lm": lm})] == [
        ("pll-word-l2r", "lm"), ("causal", "lm")]
    # UL2's seven denoisers share the LM head; the run trained an S denoiser, so it is scored in S mode
    for family in ("decoder", "encoder"):
        assert scorers_for("ul2", family, {"lm": lm}) == [Scorer("causal[S]", "causal", "lm", paradigm="[S]")]
    assert scorers_for("mlm", "encoder", {"mlm": mlm})[0] == Scorer("pll-word-l2r", "pll", "mlm", 0, context="cls")
    # masked next-token prediction: bidirectional, the prediction for token i read at i - 1
    assert scorers_for("mntp", "decoder", {"mntp": lm})[0] == Scorer("pll-word-l2r", "pll", "mntp", 1)
    assert names("deshuffle", "decoder", {"deshuffle": lm}) == ["causal"]  # no sentinels: empty prefix
    assert names("span-lm", "encoder", {"span-lm": lm}) == ["causal-sentinel"]
    assert names("clm", "encoder", {"clm": lm}) == ["causal"]  # any objective on either architecture
    for spec, heads in (("nsp", {"nsp": pair}), ("sop", {"sop": pair})):
        with pytest.raises(ConfigError, match=f"objective '{spec}' has no token-level head"):
            scorers_for(spec, "encoder", heads)


def test_word_ids_follow_the_pre_tokenizer(hf_models: dict[str, Path]) -> None:
    tok = Tokenizer.from_file(str(hf_models["bert"] / "tokenizer.json"))
    enc = encode(tok, ["unbelievably unremarkable."])
    assert len(enc.ids[0]) == len(enc.words[0]) and enc.words[0][-1] == 2  # the full stop is its own word
    assert len(set(enc.words[0].tolist())) < len(enc.ids[0])  # some word has several pieces


def _run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bench", *args])
    return result.exit_code, " ".join(result.output.split())


def test_bench_blimp_and_climp_end_to_end(hf_models: dict[str, Path], shared_data: Path, tmp_path: Path) -> None:
    code, out = _run_cli(str(hf_models["bert"]), str(hf_models["gpt"]), "--suite", "blimp", "--data-dir",
                         str(shared_data / "blimp"), "--max-eval-examples", "1", "--from-scratch", "--device", "cpu")
    assert code == 0, out
    assert "BLIMP: minimal-pair accuracy" in out
    saved = json.loads((hf_models["gpt"] / "bench.json").read_text())["suites"]["blimp"]
    assert saved["kind"] == "minimal-pairs" and len(saved["tasks"]) == 67 and len(saved["groups"]) == 12
    model, scratch = saved["models"]
    assert model["scorer"] == "causal" and scratch["scorer"] == "causal" and scratch["from_scratch"]
    assert set(model["scorers"]) == {"causal", "causal-mean"}
    per_pair = correctness(model)
    assert len(per_pair) == 67 and all(len(v) == 1 for v in per_pair.values())
    acc = np.mean([v.mean() for v in per_pair.values()])
    assert model["average"] == pytest.approx(acc)
    assert model["tasks"]["adjunct_island"]["score"] == per_pair["adjunct_island"].mean()
    assert "BLIMP (minimal pairs" in (hf_models["gpt"] / "bench.md").read_text()

    climp = tmp_path / "climp"
    climp.mkdir()
    write_climp(climp / "anaphor_agreement_gender_1000.csv", bom=True)
    code, out = _run_cli(str(hf_models["bert"]), "--suite", "climp", "--data-dir", str(climp), "--device", "cpu")
    assert code == 0, out
    saved = json.loads((hf_models["bert"] / "bench.json").read_text())["suites"]
    assert set(saved) == {"blimp", "climp"} and saved["climp"]["pairs"] == {"anaphor_agreement_gender": 2}


def test_scorer_option_and_an_exported_start_token(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """``--scorer`` picks a causal reading; a directory exported from a run trained with ``data.doc_start``
    (``zoo_export.json``) is read after the start token by default; a reading a model lacks is refused."""
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    code, out = _run_cli(str(hf_models["gpt"]), "--suite", "blimp", "--data-dir", str(data), "--scorer",
                         "causal-start", "--no-cache", "--device", "cpu")
    assert code == 0, out
    assert json.loads((hf_models["gpt"] / "bench.json").read_text())["suites"]["blimp"]["models"][0]["scorer"] == \
        "causal-start"
    code, out = _run_cli(str(hf_models["bert"]), "--suite", "blimp", "--data-dir", str(data), "--scorer", "causal")
    assert code == 2 and "--scorer causal: objective 'mlm' has no causal (next-token) reading" in out
    code, out = _run_cli(str(hf_models["gpt"]), "--tasks", "sst2", "--scorer", "causal")
    assert code == 2 and "--scorer: apply to the zero-shot suites" in out
    start = tmp_path / "start"
    shutil.copytree(hf_models["gpt"], start)
    (start / "zoo_export.json").write_text(json.dumps({"data": {"doc_start": True}}))
    (m,) = run_minimal_pairs([start], "blimp", data, device="cpu", write_reports=False).models
    assert m.scorers == ["causal-start", "causal-start-mean"]


def test_causal_start_with_a_leading_space_is_what_lm_evaluation_harness_computes(
        hf_models: dict[str, Path], tmp_path: Path) -> None:
    """lm-evaluation-harness's BLiMP task (perf/causal_scoring.py points it at local files) scores
    `` sentence`` after the tokenizer's BOS/EOS token: the zoo's ``causal-start`` reading of the sentence
    with a leading space, log-likelihood for log-likelihood."""
    pytest.importorskip("lm_eval.models.huggingface")  # lm-eval with its hf extra (accelerate)
    import importlib.util

    spec = importlib.util.spec_from_file_location("causal_scoring", REPO / "perf" / "causal_scoring.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    paradigms = load_suite("blimp", data)
    theirs = np.asarray(script.lm_eval_scores(hf_models["gpt"], data, paradigms, None, 8)["paradigms"]["toy"]["ll"])
    ours = _ours(hf_models["gpt"], [" " + s for p in PAIRS for s in p], causal="causal-start")["causal-start"]
    np.testing.assert_allclose(theirs.reshape(-1), ours, atol=1e-4)
    plain = _ours(hf_models["gpt"], [s for p in PAIRS for s in p], causal="causal-start")["causal-start"]
    assert np.abs(plain - ours).max() > 1e-2  # the leading space is what makes them agree


def test_good_sentence_longer_or_shorter(hf_models: dict[str, Path], tmp_path: Path) -> None:
    """Accuracy follows the scores, whichever sentence of the pair is longer."""
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    for name in ("gpt", "bert"):
        res = run_minimal_pairs([hf_models[name]], "blimp", data, device="cpu", write_reports=False)
        (m,) = res.models
        scores = _ours(hf_models[name], [s for p in PAIRS for s in p])
        first = scores[m.scorers[0]]
        expected = "".join("1" if first[2 * i] > first[2 * i + 1] else "0" for i in range(len(PAIRS)))
        assert m.correct[m.scorers[0]]["toy"] == expected


def test_refusals_are_one_line(hf_models: dict[str, Path], shared_data: Path, tmp_path: Path) -> None:
    from transformers import BertModel

    bare = tmp_path / "bare"
    BertModel.from_pretrained(str(hf_models["bert"])).save_pretrained(str(bare), safe_serialization=True)
    (bare / "tokenizer.json").write_bytes((hf_models["bert"] / "tokenizer.json").read_bytes())
    code, out = _run_cli(str(bare), "--suite", "blimp", "--data-dir", str(shared_data / "blimp"))
    assert code == 2 and "BertModel has no token-level head" in out
    code, out = _run_cli(str(hf_models["gpt"]), "--suite", "blimp", "--data-dir", str(shared_data / "blimp"),
                         "--epochs", "2")
    assert code == 2 and "--epochs: fine-tuning options do not apply to the zero-shot suite blimp" in out
    code, out = _run_cli(str(hf_models["gpt"]), "--tasks", "sst2", "--pll", "original")
    assert code == 2 and "--pll: apply to the zero-shot suites (blimp, climp) only" in out
    with pytest.raises(ZooError, match="no BLIMP files"):
        run_minimal_pairs([hf_models["gpt"]], "blimp", tmp_path, write_reports=False)


def _every_trainable_pair() -> list[tuple[str, str]]:
    """Every (objective, backbone) pair ``zoo list`` marks compatible, plus a composition and a mixture
    that exercise other scorer paths."""
    from zoo import registry
    from zoo.listing import compatibility

    out = [(name, bb) for name in registry.names("objective") for bb in registry.names("backbone")
           if compatibility(name, bb) is None]
    extra = [("mlm+nsp", "bert"), ("(mlm+sop):3|clm", "bert")]
    return out + [p for p in extra if p not in out]


def _tiny_run(objective: str, backbone: str, corpus: Path, out: Path) -> Path:
    from zoo.train.resolve import resolve
    from zoo.train.trainer import train

    train(resolve({
        "objective": objective, "backbone": backbone, "size": "tiny", "out": str(out),
        "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
        "data": {"source": str(corpus), "doc_boundary": "blank-line"},
        "tokenizer": {"vocab_size": 300, "num_sentinels": 20},
        "train": {"budget": "1steps", "seq_len": 32, "batch_size": 2, "eval_every": 0, "eval_batches": 1,
                  "prefetch": False}}))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("objective,backbone", _every_trainable_pair())
def test_every_objective_is_scored_or_refused(objective: str, backbone: str, corpus: Path, tmp_path: Path) -> None:
    """A 1-step run of every registered objective on every backbone it trains: scored with the scorer its
    declared attention gives, with its from-scratch twin scored the same way, or refused in one line."""
    out = _tiny_run(objective, backbone, corpus, tmp_path / "run")
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    token_heads = {"mlm", "clm", "prefix", "span", "span-lm", "span-mask", "mntp", "deshuffle", "ul2"}
    parts = {p.strip("()").split(":")[0] for p in objective.replace("|", "+").split("+")}
    if not parts & token_heads:
        with pytest.raises(ConfigError, match="has no token-level head"):
            run_minimal_pairs([out], "blimp", data, device="cpu", write_reports=False)
        return
    res = run_minimal_pairs([out], "blimp", data, from_scratch=True, device="cpu", write_reports=False)
    model, scratch = res.models
    from zoo import registry

    family = registry.load("backbone", backbone).family
    layout = registry.load("objective", objective.strip("(").split("+")[0]).layout_for(family)
    if family == "encoder-decoder":  # the decoder's log-likelihood (zoo.benchmarks.seq2seq_scoring)
        expected = ("seq2seq[S]" if objective == "ul2" else
                    "seq2seq-sentinel" if objective in ("span", "span-lm") else "seq2seq")
    else:
        expected = ("causal[S]" if objective == "ul2" else "pll-word-l2r" if layout == "bidirectional" else
                    "causal-sentinel" if objective in ("span", "span-lm") and layout == "prefix" else "causal")
    assert model.scorers[0] == scratch.scorers[0] == expected
    if "|" in objective:  # each mixture part's own scorer ran too
        assert model.scorers == scratch.scorers == ["pll-word-l2r", "causal", "causal-mean"]
    assert len(model.correct[expected]["toy"]) == len(PAIRS)


@pytest.mark.slow
def test_compare_suite_blimp(corpus: Path, tmp_path: Path) -> None:
    runs = [_tiny_run("mlm", "bert", corpus, tmp_path / "bert-mlm"), _tiny_run("clm", "gpt", corpus, tmp_path / "gpt-clm")]
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    write_blimp(data / "toy_two.jsonl", "toy_two", PAIRS[::-1], term="binding")
    result = CliRunner().invoke(cli, ["compare", *map(str, runs), "--suite", "blimp", "--data-dir", str(data),
                                      "--device", "cpu", "--out", str(tmp_path / "study")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "study" / "results.json").read_text())
    assert saved["tasks"] == ["toy", "toy_two"] and saved["bench"]["groups"] == {"binding": ["toy_two"],
                                                                                "island_effects": ["toy"]}
    assert [b["objective"] for b in saved["baselines"]] == ["from scratch"] * 2
    report = (tmp_path / "study" / "report.md").read_text()
    assert "| island_effects |" in report and "![Accuracy per phenomenon](scores.png)" in report
    # count models on the runs' corpus and tokenizer, the length heuristic, equal-length pairs (two tokenizers)
    assert "| unigram (bert-mlm tokens) |" in report.replace(" | ", " |\n| ").replace("||", "|")
    assert "trigram (gpt-clm tokens)" in saved["bench"]["baselines"]
    assert saved["bench"]["equal_pairs"] == 0 and "| equal-length pairs |" not in report  # no pair of equal length
    assert saved["bench"]["baselines"]["fewer tokens (gpt-clm tokens)"]["toy"] == 0.5  # one shorter good, one longer
    tokenizers = saved["bench"]["count_model_tokenizers"]  # each arm against the count models of its own tokens
    assert sorted(t["label"] for t in tokenizers.values()) == ["bert-mlm tokens", "gpt-clm tokens"]
    assert {saved["bench"]["run_tokenizers"][r["name"]] for r in saved["runs"]} == set(tokenizers)
    assert (tmp_path / "study" / "scores.png").is_file()
    for run in runs:  # per-pair correctness for paired tests, beside each run
        entry = json.loads((run / "bench.json").read_text())["suites"]["blimp"]["models"][0]
        assert {p: len(v) for p, v in correctness(entry).items()} == {"toy": 2, "toy_two": 2}
    code, out = _run_cli(str(runs[0]), "--suite", "blimp", "--data-dir", str(data), "--seeds", "3")
    assert code == 2 and "--seeds: fine-tuning options do not apply" in out


def test_result_cache_scores_only_what_is_missing(hf_models: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    import zoo.benchmarks.zeroshot as zs

    # a copy without the results other tests left beside the model
    model = Path(shutil.copytree(hf_models["gpt"], tmp_path / "gpt", ignore=shutil.ignore_patterns("bench*")))
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    write_blimp(data / "toy_two.jsonl", "toy_two", PAIRS[::-1], term="binding")
    scored: list[int] = []  # sentences per scoring call
    real = zs.score_sentences

    def counting(*args: object) -> dict[str, np.ndarray]:
        scored.append(len(args[5]))  # type: ignore[arg-type]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(zs, "score_sentences", counting)

    def run(**kw: object) -> tuple[list[int], zs.PairsModelResult]:
        scored.clear()
        (m,) = run_minimal_pairs([model], "blimp", data, device="cpu", write_reports=False, **kw).models  # type: ignore[arg-type]
        return list(scored), m

    calls, first = run()
    assert calls == [8]  # both paradigms, 4 pairs, in one call
    calls, again = run()  # the second run reads the cache
    assert calls == [] and again.correct == first.correct and again.accuracy == first.accuracy
    assert first.cached == 0 and again.cached == 2
    assert {p.name.split("-")[1] for p in (model / "bench-cache").glob("blimp-*.json")} == {"toy", "toy_two"}
    write_blimp(data / "toy_two.jsonl", "toy_two", PAIRS, term="binding")  # its data fingerprint changes
    assert run()[0] == [4]
    assert run(precision="bf16")[0] == [8] and run(max_eval_examples=1)[0] == [4]  # changed keys recompute
    assert run(from_scratch=True, include_models=False)[0] == [8]
    assert len(list((model / "bench-cache").glob("blimp-toy-scratch0-causal-*.json"))) == 1
    # each seed's random init is its own model: seed 1 is scored, then read back
    assert run(from_scratch=True, include_models=False, scratch_seed=1)[0] == [8]
    assert run(from_scratch=True, include_models=False, scratch_seed=1)[0] == []
    for path in (model / "bench-cache").glob("blimp-toy-causal-*.json"):
        path.write_text('{"key": "truncat', encoding="utf-8")
    with caplog.at_level("WARNING", logger="zoo.benchmarks.zeroshot"):
        calls, redone = run()
    assert calls == [4] and "ignoring unreadable cached result" in caplog.text and "recomputing" in caplog.text
    assert redone.correct["causal"]["toy"] == first.correct["causal"]["toy"]
    assert run()[0] == [] and run(use_cache=False)[0] == [8]


def test_bench_climp_with_a_chinese_tokenizer(tmp_path: Path) -> None:
    """``zoo bench --suite climp`` on files in the official layout (a BOM, no final newline, a pair whose
    unacceptable row comes first), scored by a BERT whose WordPiece tokenizer splits Chinese into characters."""
    from transformers import BertConfig, BertForMaskedLM

    from ..unit.test_minimal_pairs_data import CLIMP_ROWS

    classifier = [("classifier_noun_agreement", "classifier", "我买了一本书。", "1"),
                  ("classifier_noun_agreement", "classifier", "我买了一匹书。", "0"),
                  ("classifier_noun_agreement", "classifier", "她看见了一本猫。", "0"),
                  ("classifier_noun_agreement", "classifier", "她看见了一只猫。", "1")]
    data = tmp_path / "climp"
    data.mkdir()
    write_climp(data / "anaphor_agreement_gender_1000.csv", bom=True)
    write_climp(data / "classifier_1000.csv", classifier, final_newline=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    sentences = [r[2] for r in CLIMP_ROWS + classifier]
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    torch.manual_seed(0)
    model = tmp_path / "bert-zh"
    BertForMaskedLM(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64)).eval().save_pretrained(
        str(model), safe_serialization=True)
    tok.save(str(model / "tokenizer.json"))
    enc = encode(tok, sentences)
    assert all((w == np.arange(len(w))).all() for w in enc.words)  # one word per character
    assert tok.token_to_id("[UNK]") not in np.concatenate(enc.ids)

    code, out = _run_cli(str(model), "--suite", "climp", "--data-dir", str(data), "--device", "cpu")
    assert code == 0, out
    assert "CLIMP: minimal-pair accuracy" in out  # the terminal may wrap the wider table (baseline columns)
    md = (model / "bench.md").read_text()
    assert "classifier_noun_agreement" in md and "| fewer tokens |" in md
    saved = json.loads((model / "bench.json").read_text())["suites"]["climp"]
    assert saved["pairs"] == {"anaphor_agreement_gender": 2, "classifier": 2}
    assert saved["groups"] == {"anaphor_agreement": ["anaphor_agreement_gender"],
                               "classifier_noun_agreement": ["classifier"]}
    (entry,) = saved["models"]
    assert entry["scorer"] == "pll-word-l2r"
    scores = _ours(model, ["我买了一本书。", "我买了一匹书。", "她看见了一只猫。", "她看见了一本猫。"])["pll-word-l2r"]
    assert correctness(entry)["classifier"].tolist() == [bool(scores[0] > scores[1]), bool(scores[2] > scores[3])]


def test_span_lm_on_bert_is_scored_and_one_failure_keeps_the_others(corpus: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """span-lm trains on bert (end token [SEP]) and is scored by the sentinel scorer; in a multi-model
    bench a model that fails is marked in the table, the others are scored and saved, the exit is 1."""
    span = _tiny_run("span-lm", "bert", corpus, tmp_path / "bert-span-lm")
    clm = _tiny_run("clm", "gpt", corpus, tmp_path / "gpt-clm")
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    code, out = _run_cli(str(span), str(clm), "--suite", "blimp", "--data-dir", str(data), "--device", "cpu")
    assert code == 0, out
    assert f"results written: {span / 'bench.json'}" in out and str(clm / "bench.md") in out  # said, not silent
    entry = json.loads((span / "bench.json").read_text())["suites"]["blimp"]["models"][0]
    assert entry["scorer"] == "causal-sentinel"

    from zoo.benchmarks import zeroshot

    real = zeroshot._score_model

    def fail_first(sm, *args, **kwargs):  # type: ignore[no-untyped-def]
        if sm.source.name == span.name:
            raise ConfigError("cannot score this one")
        return real(sm, *args, **kwargs)

    monkeypatch.setattr(zeroshot, "_score_model", fail_first)
    (clm / "bench.json").unlink()
    code, out = _run_cli(str(span), str(clm), "--suite", "blimp", "--data-dir", str(data), "--device", "cpu",
                         "--no-cache")
    flat = " ".join(out.split())
    assert code == 1, out
    assert "bert-span-lm [failed]" in flat and "gpt-clm [causal]" in flat
    assert "1 model(s) could not be scored" in flat and "cannot score this one" in flat
    assert json.loads((clm / "bench.json").read_text())["suites"]["blimp"]["models"][0]["scorer"] == "causal"
    # zoo compare writes its report with the failed run marked, and exits 1
    study = tmp_path / "study"
    result = CliRunner().invoke(cli, ["compare", str(span), str(clm), "--suite", "blimp", "--data-dir", str(data),
                                      "--device", "cpu", "--out", str(study), "--no-baseline"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "1 run(s) failed or were not scored" in flat and "report.md" in flat
    report = (study / "report.md").read_text()
    assert "not scored: cannot score this one" in report and "gpt-clm" in report


def test_pll_original_on_a_causal_model_is_refused(corpus: Path, tmp_path: Path) -> None:
    clm = _tiny_run("clm", "gpt", corpus, tmp_path / "gpt-clm")
    data = tmp_path / "blimp"
    data.mkdir()
    write_blimp(data / "toy.jsonl", "toy", PAIRS)
    code, out = _run_cli(str(clm), "--suite", "blimp", "--data-dir", str(data), "--pll", "original")
    assert code == 2 and "--pll original" in out and "gpt-clm: causal" in " ".join(out.split())
