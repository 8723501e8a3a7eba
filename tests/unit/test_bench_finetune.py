"""Fine-tuning core: input layouts per backbone family, pooling, heads, recipes, learning, determinism."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from zoo import registry
from zoo.benchmarks.data import Example, Split, TaskData, load_task_data
from zoo.benchmarks.encoding import collate, encode, plain_tokenizer, truncate_pair
from zoo.benchmarks.finetune import TaskHead, finetune, pool, resolve_pooling
from zoo.benchmarks.recipe import Recipe, recipes_for
from zoo.benchmarks.source import from_backbone
from zoo.benchmarks.tasks import get_task
from zoo.data import special_tokens as special_tokens_of
from zoo.data.tokenizer import check_tokenizer_fits
from zoo.errors import CheckpointError, ConfigError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
FILLER = "the a film story plot actor scene movie was is and of it this".split()
POSITIVE, NEGATIVE = ["good", "great", "superb"], ["bad", "awful", "dull"]


def wordpiece(words: list[str]) -> Tokenizer:
    """A word-level WordPiece vocabulary (plus single characters), BERT normalisation."""
    chars = sorted({c for w in words for c in w})
    vocab = list(dict.fromkeys([*SPECIALS, *words, *chars, *(f"##{c}" for c in chars)]))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(SPECIALS)
    return tok


def bpe(texts: list[str], size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=size, special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def backbone(name: str, vocab: int, dropout: float = 0.1):
    cls = registry.load("backbone", name)
    return cls(cls.Config(vocab_size=vocab, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                          max_positions=64, dropout=dropout, attention_dropout=dropout))


def sentiment(n: int, seed: int) -> list[Example]:
    """Separable toy sentiment: filler words plus one positive or negative word."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        y = rng.randrange(2)
        words = rng.choices(FILLER, k=rng.randrange(3, 9))
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if y else NEGATIVE))
        out.append(Example(" ".join(words), None, y))
    return out


def sst2_data(n_train: int = 256, n_dev: int = 64) -> TaskData:
    spec = get_task("sst2")
    return TaskData(spec, spec.labels, Split("train", sentiment(n_train, 1), "mem"),
                    {"dev": Split("dev", sentiment(n_dev, 2), "mem")})


WORDS = FILLER + POSITIVE + NEGATIVE + ["hello", "world", "second", "text"]


# --- encoding -----------------------------------------------------------------------------------------

def test_encoder_layout_with_segments() -> None:
    tok = wordpiece(WORDS)
    sp = special_tokens_of(tok)
    assert (sp.pad, sp.cls, sp.sep) == (0, 2, 3)
    enc = encode([Example("hello world", "second text", 1)], tok, sp, "encoder", True, 32)
    ids = [tok.token_to_id(w) for w in ("hello", "world", "second", "text")]
    assert enc.input_ids[0].tolist() == [2, ids[0], ids[1], 3, ids[2], ids[3], 3]
    assert enc.token_type_ids is not None and enc.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    single = encode([Example("hello", None, 0)], tok, sp, "encoder", False, 32)
    assert single.input_ids[0].tolist() == [2, ids[0], 3] and single.token_type_ids is None


def test_decoder_layout_uses_a_separator_and_ends_with_eos() -> None:
    tok = bpe(["hello world second text"] * 20)
    sp = special_tokens_of(tok)
    assert (sp.eos, sp.pad, sp.cls, sp.bos) == (0, 1, None, None)
    a = tok.encode("hello", add_special_tokens=False).ids
    b = tok.encode("text", add_special_tokens=False).ids
    enc = encode([Example("hello", "text", 0)], tok, sp, "decoder", False, 32)
    assert enc.input_ids[0].tolist() == [*a, 0, *b, 0] and enc.token_type_ids is None


def test_longest_first_truncation() -> None:
    assert truncate_pair(10, 3, 20) == (10, 3)
    assert truncate_pair(10, 3, 9) == (6, 3)
    assert truncate_pair(3, 10, 9) == (3, 6)
    assert truncate_pair(6, 6, 9) == (5, 4)  # equal: the second gives the first token
    for la, lb, budget in [(50, 7, 20), (7, 50, 20), (13, 12, 10), (1, 1, 1)]:
        x, y = truncate_pair(la, lb, budget)
        assert x + y == budget and x <= la and y <= lb and (min(la, lb) <= budget // 2 or abs(x - y) <= 1)
    tok = wordpiece(WORDS)
    sp = special_tokens_of(tok)
    long = " ".join(["good"] * 40)
    enc = encode([Example(long, "bad bad", 1), Example(long, None, 0)], tok, sp, "encoder", True, 16)
    assert [len(x) for x in enc.input_ids] == [16, 16] and enc.truncated == 2
    assert enc.input_ids[0].tolist()[-3:] == [tok.token_to_id("bad")] * 2 + [3]  # the short text survives


def test_saved_padding_and_truncation_settings_are_ignored() -> None:
    tok = wordpiece(WORDS)
    tok.enable_padding(length=50)
    tok.enable_truncation(2)
    enc = encode([Example("hello world second", None, 0)], plain_tokenizer(tok), special_tokens_of(tok),
                 "encoder", False, 32)
    assert len(enc.input_ids[0]) == 5


def test_collate_pads_dynamically() -> None:
    tok = wordpiece(WORDS)
    enc = encode([Example("hello", "text", 0), Example("hello world good", "text", 1), Example("a", None, 0)],
                 tok, special_tokens_of(tok), "encoder", True, 32)
    b = collate(enc, [0, 1], pad_id=0, causal=False)
    assert b.input_ids.shape == (2, 7)  # the longer of the two rows, not max_length
    assert b.lengths.tolist() == [5, 7] and b.layout.doc_ids.tolist()[0] == [0] * 5 + [-1] * 2
    assert b.input_ids[0, 5:].tolist() == [0, 0] and b.labels.tolist() == [0, 1]
    assert b.token_type_ids.tolist()[0] == [0, 0, 0, 1, 1, 0, 0]


# --- heads ----------------------------------------------------------------------------------------------

def test_pooling_reads_the_right_positions() -> None:
    h = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    lengths = torch.tensor([2, 4])
    assert torch.equal(pool(h, lengths, "cls"), h[:, 0])
    assert torch.equal(pool(h, lengths, "last"), torch.stack([h[0, 1], h[1, 3]]))
    assert torch.allclose(pool(h, lengths, "mean"), torch.stack([h[0, :2].mean(0), h[1].mean(0)]))


def test_head_shapes_and_pooler() -> None:
    head = TaskHead(32, 3, "cls", 0.1, 0.02)
    assert head.pooler is not None and head(torch.randn(4, 5, 32), torch.tensor([5, 3, 2, 1])).shape == (4, 3)
    assert TaskHead(32, 1, "last", 0.1, 0.02).pooler is None


def test_pooling_choice() -> None:
    bert, gpt = backbone("bert", 40), backbone("gpt", 40)
    tok = wordpiece(WORDS)
    sp = special_tokens_of(tok)
    assert resolve_pooling("auto", bert, sp) == "cls" and resolve_pooling("auto", gpt, sp) == "last"
    assert resolve_pooling("mean", gpt, sp) == "mean"
    with pytest.raises(ConfigError, match="--pooling cls needs a bidirectional backbone"):
        resolve_pooling("cls", gpt, sp)


# --- recipes ---------------------------------------------------------------------------------------

def test_recipe_overrides_global_and_per_task() -> None:
    r = recipes_for(["rte", "sst2"], Recipe(epochs=2), ["lr=3e-5", "rte.epochs=10", "rte.pooling=mean"])
    assert r["sst2"] == Recipe(epochs=2, lr=3e-5)
    assert r["rte"] == Recipe(epochs=10, lr=3e-5, pooling="mean")
    assert r["rte"].hash() != r["sst2"].hash() and Recipe().hash() == Recipe().hash()
    with pytest.raises(ConfigError, match="unknown recipe key 'learning_rate'"):
        recipes_for(["rte"], None, ["learning_rate=1"])
    with pytest.raises(ConfigError, match="'cola' is not one of the tasks being run"):
        recipes_for(["rte"], None, ["cola.lr=1"])
    with pytest.raises(ConfigError, match="recipe: invalid pooling = 'max'"):
        recipes_for(["rte"], None, ["pooling=max"])
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        recipes_for(["rte"], None, ["epochs=1.5"])


# --- fine-tuning ----------------------------------------------------------------------------------

FAST = Recipe(lr=3e-3, epochs=6, batch_size=16, warmup=0.1, max_length=32)  # random init: a high lr


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_finetuning_learns_a_separable_task(name: str) -> None:
    data = sst2_data()
    tok = wordpiece(WORDS) if name == "bert" else bpe([e.text_a for e in data.train.examples])
    bb = backbone(name, tok.get_vocab_size())
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    result = finetune(bb, tok, special_tokens_of(tok), data, FAST, seed=0, device="cpu")
    assert result.scores["accuracy"] >= 0.9, result
    assert result.steps == 6 * 16 and result.train_examples == 256 and result.eval_examples == {"dev": 64}
    assert all(torch.equal(before[k], v) for k, v in bb.state_dict().items())  # the backbone is copied


def test_finetuning_is_deterministic_given_the_seed() -> None:
    data = sst2_data(64, 32)
    tok = wordpiece(WORDS)
    bb = backbone("bert", tok.get_vocab_size())
    recipe = Recipe(lr=1e-3, epochs=1, batch_size=8)
    runs = [finetune(bb, tok, special_tokens_of(tok), data, recipe, seed=s, device="cpu") for s in (0, 0, 1)]
    assert runs[0].train_loss == runs[1].train_loss and runs[0].scores == runs[1].scores
    assert runs[0].train_loss != runs[2].train_loss
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    finetune(bb, tok, special_tokens_of(tok), data, recipe, seed=0, device="cpu")
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG stream is untouched


def test_regression_head_for_stsb(tmp_path: Path) -> None:
    spec = get_task("stsb")
    rng = random.Random(0)
    rows = []
    for _ in range(96):  # similarity 5 when the sentences share their keyword, else 0
        k1, k2 = rng.choice(POSITIVE + NEGATIVE), rng.choice(POSITIVE + NEGATIVE)
        rows.append(Example(f"the {k1} film", f"a {k2} movie", 5.0 if k1 == k2 else 0.0))
    data = TaskData(spec, None, Split("train", rows, "mem"), {"dev": Split("dev", rows[:32], "mem")})
    tok = wordpiece(WORDS)
    result = finetune(backbone("bert", tok.get_vocab_size()), tok, special_tokens_of(tok), data,
                      Recipe(lr=2e-3, epochs=2, batch_size=16), seed=0, device="cpu")
    assert set(result.scores) == {"pearson", "spearmanr"}
    assert all(np.isfinite(v) for v in result.scores.values())


def test_mnli_scores_both_evaluation_splits(tmp_path: Path) -> None:
    spec = get_task("mnli")
    rows = [Example("p a", "h b", i % 3) for i in range(12)]
    data = TaskData(spec, spec.labels, Split("train", rows, "mem"),
                    {"m": Split("m", rows[:5], "mem"), "mm": Split("mm", rows[5:9], "mem")})
    tok = wordpiece(WORDS)
    result = finetune(backbone("gpt", tok.get_vocab_size()), tok, special_tokens_of(tok), data,
                      Recipe(epochs=1, batch_size=4), seed=0, device="cpu")
    assert set(result.scores) == {"m/accuracy", "mm/accuracy"} and result.eval_examples == {"m": 5, "mm": 4}


def test_tokenizer_that_does_not_fit_the_model_is_refused() -> None:
    tok = wordpiece(WORDS)
    n = tok.get_vocab_size()
    with pytest.raises(CheckpointError, match=rf"the tokenizer has {n} tokens but backbone m has a vocabulary of {n + 1}"):
        from_backbone(backbone("bert", n + 1), tok, name="m")
    from_backbone(backbone("bert", -(-n // 64) * 64), tok)  # an embedding padded to a multiple of 64 is fine
    with pytest.raises(CheckpointError, match=r"tok.json has hash aaaaaaaaaaaa, but run was trained with tokenizer "
                                              r"bbbbbbbbbbbb"):
        check_tokenizer_fits(10, 10, "tok.json", "run", "a" * 64, "b" * 64)


def test_real_mrpc_pairs_go_through_the_bert_layout(shared_data: Path) -> None:
    data = load_task_data(get_task("mrpc"), shared_data / "glue").limited(8, 8)
    words = sorted({w.lower() for e in data.train.examples for w in (e.text_a + " " + e.text_b).split()})
    tok = wordpiece(words)
    result = finetune(backbone("bert", tok.get_vocab_size()), tok, special_tokens_of(tok), data,
                      Recipe(epochs=1, batch_size=4, max_length=64), seed=0, device="cpu")
    assert set(result.scores) == {"accuracy", "f1"} and result.train_examples == 8


# --- the heads against transformers' sequence-classification models, same weights -------------------

def test_bert_head_matches_transformers_bert_for_sequence_classification() -> None:
    from transformers import BertForSequenceClassification

    from zoo.benchmarks.encoding import collate
    from zoo.benchmarks.finetune import TaskModel

    tok = wordpiece(WORDS)
    bb = backbone("bert", tok.get_vocab_size())
    model = TaskModel(bb, TaskHead(32, 3, "cls", 0.1, 0.02)).eval()
    config = bb.hf_config()
    config.num_labels = 3
    ref = BertForSequenceClassification(config).eval()
    ref.bert.load_state_dict(bb.hf_state_dict(), strict=False)  # the pooler is the head's
    ref.bert.pooler.dense.load_state_dict(model.head.pooler.state_dict())
    ref.classifier.load_state_dict(model.head.classifier.state_dict())
    enc = encode([Example("hello world good", "second text", 0), Example("bad", None, 1),
                  Example("the film was great", "a", 2)], tok, special_tokens_of(tok), "encoder", True, 32)
    batch = collate(enc, [0, 1, 2], pad_id=0, causal=False)
    with torch.no_grad():
        ours = model(batch)
        theirs = ref(input_ids=batch.input_ids, attention_mask=(batch.layout.doc_ids >= 0).long(),
                     token_type_ids=batch.token_type_ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5), (ours, theirs)


def test_gpt_head_matches_transformers_gpt2_for_sequence_classification() -> None:
    from transformers import GPT2ForSequenceClassification

    from zoo.benchmarks.encoding import collate
    from zoo.benchmarks.finetune import TaskModel

    tok = bpe(["hello world good second text the film was great"] * 10)
    sp = special_tokens_of(tok)
    bb = backbone("gpt", tok.get_vocab_size())
    model = TaskModel(bb, TaskHead(32, 2, "last", 0.1, 0.02)).eval()
    torch.nn.init.zeros_(model.head.classifier.bias)  # GPT-2's score layer has no bias
    config = bb.hf_config()
    config.num_labels, config.pad_token_id = 2, sp.pad
    ref = GPT2ForSequenceClassification(config).eval()
    ref.transformer.load_state_dict(bb.hf_state_dict(), strict=False)
    ref.score.weight.data.copy_(model.head.classifier.weight)
    enc = encode([Example("hello world good", "second text", 0), Example("bad", None, 1)], tok, sp, "decoder",
                 False, 32)
    batch = collate(enc, [0, 1], pad_id=sp.pad, causal=True)
    with torch.no_grad():
        ours = model(batch)
        theirs = ref(input_ids=batch.input_ids, attention_mask=(batch.layout.doc_ids >= 0).long()).logits
    assert torch.allclose(ours, theirs, atol=1e-5), (ours, theirs)
