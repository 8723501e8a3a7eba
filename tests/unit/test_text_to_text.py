"""Text-to-text fine-tuning of t5 (T5's own method) against transformers' T5ForConditionalGeneration."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics
import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from zoo.benchmarks.data import Example, Split, TaskData
from zoo.benchmarks.finetune import finetune
from zoo.benchmarks.recipe import Recipe, recipes_for
from zoo.benchmarks.tasks import get_task, task_names
from zoo.benchmarks.text_to_text import (
    TextToTextModel,
    greedy_decode,
    rank_scores,
    resolve_method,
    score_outputs,
    seq2seq_batch,
    text_to_text_loss,
    verbalize,
)
from zoo.benchmarks.verbalizers import TEMPLATES, stsb_string, template_for
from zoo.data import special_tokens as special_tokens_of
from zoo.errors import ConfigError, DataError
from zoo.models.t5 import T5Backbone, T5Config

VOCAB, PAD, END = 61, 0, 1


def _pair(tied: bool = True) -> tuple[T5Backbone, transformers.T5ForConditionalGeneration]:
    torch.manual_seed(0)
    ours = T5Backbone(T5Config(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                               dropout=0.0, attention_dropout=0.0, relative_attention_num_buckets=8,
                               relative_attention_max_distance=16, tie_word_embeddings=tied)).eval()
    torch.manual_seed(1)
    hf = transformers.T5ForConditionalGeneration(ours.hf_config()).eval()
    ours.load_hf_state_dict(hf.state_dict())
    return ours, hf


def _rows(n: int, lo: int, hi: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.append(rng.integers(2, VOCAB, rng.integers(lo, hi)), END) for _ in range(n)]


@pytest.mark.parametrize("tied", [True, False])
def test_loss_and_rank_scores_match_t5_for_conditional_generation(tied: bool) -> None:
    ours, hf = _pair(tied)
    inputs, targets = _rows(4, 3, 12, 0), _rows(4, 1, 5, 1)
    batch = seq2seq_batch(inputs, targets, PAD)
    loss = text_to_text_loss(TextToTextModel(ours), batch)
    ids, docs, _, _, labels = batch
    ref = hf(input_ids=ids, attention_mask=(docs >= 0).long(), labels=labels).loss
    assert abs(loss.item() - ref.item()) <= 1e-5
    cand = targets[0]  # rank score = -(mean NLL) * tokens, per input row
    scores = rank_scores(TextToTextModel(ours), inputs, [cand], PAD)[:, 0]
    for i, x in enumerate(inputs):
        r = hf(input_ids=torch.from_numpy(x)[None], labels=torch.from_numpy(cand)[None]).loss.item() * len(cand)
        assert abs(scores[i] + r) <= 1e-4


def test_greedy_decoding_matches_transformers_generate() -> None:
    ours, hf = _pair()
    model, inputs = TextToTextModel(ours), _rows(6, 2, 10, 3)
    free = greedy_decode(model, inputs, PAD, -1, max_new_tokens=6)  # no end token: six tokens each
    end = free[0][2]  # an end token that stops some rows early
    got = greedy_decode(model, inputs, PAD, end, max_new_tokens=6)
    ids, docs, *_ = seq2seq_batch(inputs, inputs, PAD)
    out = hf.generate(input_ids=ids, attention_mask=(docs >= 0).long(), max_new_tokens=6, do_sample=False,
                      num_beams=1, decoder_start_token_id=PAD, eos_token_id=end, pad_token_id=PAD)
    want = []
    for row in out[:, 1:].tolist():
        want.append(row[:row.index(end)] if end in row else row)
    assert got == want
    assert len(got[0]) <= 2 and any(len(r) == 6 for r in got)


def _tokenizer(words: list[str]) -> Tokenizer:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = sorted({c for w in words for c in w})
    vocab = list(dict.fromkeys([*specials, *words, *chars, *(f"##{c}" for c in chars)]))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(specials)
    return tok


FILLER = "the a film story plot was is and of it this".split()
WORDS = [*FILLER, "good", "great", "bad", "awful", "sst2", "sentence", ":", "positive", "negative"]


def _sentiment(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.randrange(2)
        words = rng.choices(FILLER, k=rng.randrange(3, 8))
        words.insert(rng.randrange(len(words) + 1), rng.choice(["good", "great"] if y else ["bad", "awful"]))
        out.append(Example(" ".join(words), None, y))
    return out


def _t5(vocab: int) -> T5Backbone:
    torch.manual_seed(0)
    return T5Backbone(T5Config(vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                               dropout=0.0, attention_dropout=0.0))


def test_a_tiny_t5_learns_a_separable_task_text_to_text() -> None:
    spec = get_task("sst2")
    data = TaskData(spec, spec.labels, Split("train", _sentiment(192, 1), "mem"),
                    {"dev": Split("dev", _sentiment(64, 2), "mem")})
    tok = _tokenizer(WORDS)
    bb = _t5(tok.get_vocab_size())
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    result = finetune(bb, tok, special_tokens_of(tok), data, Recipe(lr=3e-3, epochs=4, batch_size=16), seed=0,
                      device="cpu")
    assert result.scores["accuracy"] >= 0.9, result
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())  # the backbone is copied
    ranked = finetune(bb, tok, special_tokens_of(tok), data, Recipe(lr=3e-3, epochs=4, batch_size=16,
                                                                    decoding="rank"), seed=0, device="cpu")
    assert ranked.scores["accuracy"] >= 0.9 and ranked.train_loss == result.train_loss


def test_inputs_and_targets_follow_t5s_templates() -> None:
    tok = _tokenizer([*WORDS, "mnli", "hypothesis", "premise", "entailment", "neutral", "contradiction"])
    spec = get_task("mnli")
    data = TaskData(spec, spec.labels, Split("train", [Example("a film", "the plot", 1)], "mem"),
                    {"m": Split("m", [Example("a film", "the plot", 0)], "mem"),
                     "mm": Split("mm", [Example("a film", "the plot", 2)], "mem")})
    v = verbalize(data, tok, special_tokens_of(tok), 64)
    assert tok.decode(v.train.inputs[0].tolist()) == "mnli hypothesis : the plot premise : a film"
    assert v.train.inputs[0][-1] == tok.token_to_id("[SEP]")  # the end-of-text token of this tokenizer
    assert tok.decode(v.train.targets[0].tolist()) == "entailment" and v.candidate_texts == [
        "contradiction", "entailment", "neutral"]
    assert [stsb_string(x) for x in (3.79, 3.9, 0.0, 5.0, 2.5)] == ["3.8", "4.0", "0.0", "5.0", "2.4"]  # ties to even, as tf.round


def test_metrics_of_decoded_strings() -> None:
    sst2 = get_task("sst2")
    scores, preds, invalid = score_outputs(sst2, ["positive", "negative", "banana", ""], ["negative", "positive"],
                                           np.array([1, 0, 1, 0]))
    assert scores == {"accuracy": 0.5} and invalid == 2 and preds == [1, 0, 0, 1]  # invalid: the other class
    mrpc = get_task("mrpc")
    texts, labels = ["equivalent", "x", "not_equivalent", "equivalent", "?"], np.array([1, 1, 0, 0, 0])
    scores, preds, _ = score_outputs(mrpc, texts, ["not_equivalent", "equivalent"], labels)
    assert scores["f1"] == pytest.approx(sklearn.metrics.f1_score(labels, [1, 0, 0, 1, 1]))
    mnli = get_task("mnli")
    scores, preds, _ = score_outputs(mnli, ["neutral", "maybe"], ["contradiction", "entailment", "neutral"],
                                     np.array([2, 2]))
    assert preds == [2, -1] and scores["accuracy"] == 0.5
    stsb = get_task("stsb")
    refs = np.array([3.8, 1.0, 2.0, 4.4])
    scores, preds, invalid = score_outputs(stsb, ["3.8", "1 . 2", "two", "4.0"], [], refs)
    assert preds == [3.8, 1.2, -1.0, 4.0] and invalid == 1
    assert scores["pearson"] == pytest.approx(scipy.stats.pearsonr(preds, refs)[0])


def test_every_glue_and_clue_task_has_a_template() -> None:
    for name in [*task_names("glue"), *task_names("clue")]:
        spec = get_task(name)
        template_for(name, spec.labels)
    assert len(TEMPLATES["iflytek"].words or {}) == 119


def test_method_option_and_bad_inputs() -> None:
    assert recipes_for(["sst2"], None, ["method=head"])["sst2"].method == "head"
    assert recipes_for(["sst2"], None, ["decoding=rank"])["sst2"].decoding == "rank"
    with pytest.raises(ConfigError, match="method"):
        Recipe(method="seq2seq")
    with pytest.raises(ConfigError, match="decoding"):
        Recipe(decoding="beam")
    with pytest.raises(ConfigError, match="no input template"):
        template_for("boolq", ("0", "1"))
    with pytest.raises(ConfigError, match="no label word"):
        template_for("sst2", ("0", "1", "2"))
    from zoo import registry

    bert = registry.load("backbone", "bert")(registry.load("backbone", "bert").Config(
        vocab_size=50, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64))
    assert resolve_method("auto", bert) == "head" and resolve_method("auto", _t5(50)) == "text-to-text"
    with pytest.raises(ConfigError, match="encoder-decoder"):
        resolve_method("text-to-text", bert)
    spec = get_task("afqmc")  # an English vocabulary cannot spell Chinese label words
    data = TaskData(spec, spec.labels, Split("train", [Example("a", "b", 0)], "mem"), {"dev": Split("dev", [], "mem")})
    tok = _tokenizer(WORDS)
    with pytest.raises(DataError, match="cannot tell the label words"):
        verbalize(data, tok, special_tokens_of(tok), 64)


def test_bench_records_the_method_of_t5_results() -> None:
    from zoo.benchmarks.accumulate import recipe_id
    from zoo.benchmarks.bench import resolve_recipe_method

    assert resolve_recipe_method(Recipe(), "t5").method == "text-to-text"
    assert resolve_recipe_method(Recipe(), "bert").method == "auto"
    assert resolve_recipe_method(Recipe(method="head"), "t5").method == "head"
    old = {k: v for k, v in Recipe().to_dict().items() if k not in ("method", "decoding")}
    assert recipe_id(Recipe().to_dict()) == recipe_id(old)  # ids recorded before the option stay valid
    assert Recipe(method="text-to-text").hash() != Recipe().hash()


def test_compare_reports_name_the_method() -> None:
    from zoo.compare.report import _method_words

    assert "t5 text-to-text (greedy decoding)" in _method_words(Recipe().to_dict())
    assert _method_words({**Recipe().to_dict(), "method": "head"}).startswith("method head")
    assert "rank decoding" in _method_words({**Recipe().to_dict(), "method": "text-to-text", "decoding": "rank"})
