"""Trivial baselines for minimal pairs: n-gram count models, the length heuristic, equal-length pairs.

A model that scores a pair right only because it prefers shorter sentences, or frequent tokens,
has learnt nothing a count can't. Every minimal-pair table therefore shows, on the same pairs and
with the same tokenizer as the models:

- **count models** of order 1, 2 and 3 (unigram, bigram, trigram) over the tokenizer's ids, trained
  on the training split of the run's corpus through the data pipeline (its token store, sentence by
  sentence): *interpolated Kneser-Ney* (Chen & Goodman 1999, section 3): at the model's own order
  raw counts, at each lower order continuation counts (how many distinct tokens precede the
  n-gram), one absolute discount per order ``D = n1 / (n1 + 2 n2)`` from that order's counts of
  counts, and the recursion ending in the uniform distribution over the vocabulary and the
  end-of-sentence symbol. A sentence is scored whole: ``n - 1`` start-of-sentence symbols as
  context (never predicted), every token, then an end-of-sentence symbol, as n-gram language
  models are trained and scored (SRILM, KenLM). A pair is right when the acceptable sentence has
  the strictly higher log-probability, as for the neural scorers.
- the **length heuristic**: the sentence with fewer tokens wins; a tie (the two have as many tokens)
  counts half, so the heuristic's chance level is 50.
- **equal-length accuracy**: any scorer's accuracy on the pairs whose sentences have the same number
  of tokens, where length cannot decide.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

log = logging.getLogger(__name__)

ORDERS = {1: "unigram", 2: "bigram", 3: "trigram"}
LENGTH = "fewer tokens"  # the length heuristic's name in tables
DEFAULT_DISCOUNT = 0.75  # when an order's counts of counts cannot estimate one


@dataclass(frozen=True)
class _Level:
    """One order k: sorted k-gram keys with their counts, and per context (the first k - 1 tokens) the
    total count and the number of distinct continuations."""

    keys: np.ndarray
    counts: np.ndarray
    ctx_keys: np.ndarray
    ctx_totals: np.ndarray
    ctx_types: np.ndarray
    discount: float


def _padded(tokens: np.ndarray, offsets: np.ndarray, order: int, bos: int, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """Sentences ``tokens[offsets[i]:offsets[i + 1]]`` as one array, each ``[BOS] * (order - 1) + tokens +
    [EOS]``; and the positions of the predicted symbols (the tokens and EOS)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    size = lengths + order  # (order - 1) BOS + tokens + EOS
    first = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64) + order - 1
    seq = np.full(int(size.sum()), bos, dtype=np.int64)
    j = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    seq[np.repeat(first, lengths) + j] = np.asarray(tokens, dtype=np.int64)[np.repeat(offsets[:-1], lengths) + j]
    seq[first + lengths] = eos
    per = lengths + 1
    targets = np.repeat(first, per) + np.arange(int(per.sum()), dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    return seq, targets


def _keys(seq: np.ndarray, targets: np.ndarray, k: int, base: int) -> np.ndarray:
    """The k-gram ending at each target as one integer: ``sum_j seq[t - j] * base^j``."""
    key = np.zeros(targets.size, dtype=np.int64)
    for j in range(k - 1, -1, -1):
        key = key * base + seq[targets - j]
    return key


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int(np.count_nonzero(counts == 1)), int(np.count_nonzero(counts == 2))
    if n1 == 0 or n2 == 0:
        return DEFAULT_DISCOUNT
    return n1 / (n1 + 2 * n2)


def _level(keys: np.ndarray, counts: np.ndarray, base: int, discount: float | None) -> _Level:
    ctx = keys // base  # sorted keys give sorted contexts
    ctx_keys, first, types = np.unique(ctx, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, first) if counts.size else counts
    return _Level(keys, counts, ctx_keys, totals.astype(np.float64), types.astype(np.float64),
                  _discount(counts) if discount is None else discount)


class KneserNey:
    """An interpolated Kneser-Ney n-gram model over token ids ``0 .. vocab_size - 1``."""

    def __init__(self, order: int, vocab_size: int, levels: list[_Level]) -> None:
        self.order, self.vocab_size, self.levels = order, vocab_size, levels
        self.bos, self.eos, self.base = vocab_size, vocab_size + 1, vocab_size + 2

    @classmethod
    def fit(cls, tokens: np.ndarray, offsets: np.ndarray, order: int, vocab_size: int,
            discount: float | None = None) -> KneserNey:
        """Train on sentences ``tokens[offsets[i]:offsets[i + 1]]``; ``discount``: one for every order
        instead of the counts-of-counts estimate."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(map(str, ORDERS))}, got {order}")
        base = vocab_size + 2
        if base ** order >= 2**62:
            raise ValueError(f"a vocabulary of {vocab_size:,} is too large for {order}-gram keys")
        tokens = np.asarray(tokens)
        if len(offsets) < 2:
            raise ValueError("a count model needs at least one training sentence")
        if tokens.size and (int(tokens.max()) >= vocab_size or int(tokens.min()) < 0):
            raise ValueError(f"token ids must be in [0, {vocab_size}), got {int(tokens.min())}..{int(tokens.max())}")
        seq, targets = _padded(tokens, np.asarray(offsets), order, vocab_size, vocab_size + 1)
        top, counts = np.unique(_keys(seq, targets, order, base), return_counts=True)
        levels = [_level(top, counts.astype(np.float64), base, discount)]
        keys = top
        for k in range(order - 1, 0, -1):  # continuation counts: distinct left neighbours of each k-gram
            lower, cont = np.unique(keys % base**k, return_counts=True)
            levels.append(_level(lower, cont.astype(np.float64), base, discount))
            keys = lower
        return cls(order, vocab_size, levels[::-1])  # levels[k - 1] is order k

    def _probs(self, seq: np.ndarray, targets: np.ndarray) -> np.ndarray:
        p = np.full(targets.size, 1.0 / (self.vocab_size + 1))  # uniform over the tokens and EOS
        for k, lv in enumerate(self.levels, 1):
            key = _keys(seq, targets, k, self.base)
            i = np.minimum(np.searchsorted(lv.keys, key), lv.keys.size - 1)
            c = np.where(lv.keys[i] == key, lv.counts[i], 0.0)
            ctx = key // self.base
            j = np.minimum(np.searchsorted(lv.ctx_keys, ctx), lv.ctx_keys.size - 1)
            seen = lv.ctx_keys[j] == ctx
            total, types = np.where(seen, lv.ctx_totals[j], 1.0), np.where(seen, lv.ctx_types[j], 0.0)
            mixed = np.maximum(c - lv.discount, 0.0) / total + lv.discount * types / total * p
            p = np.where(seen, mixed, p)  # an unseen context passes the lower order on unchanged
        return p

    def prob(self, context: Sequence[int], word: int) -> float:
        """P(word | the last ``order - 1`` ids of ``context``), sentence start before it; ``word`` =
        ``vocab_size + 1`` is the end of the sentence."""
        hist = [self.bos] * (self.order - 1) + [int(x) for x in context]
        seq = np.asarray([*hist[len(hist) - (self.order - 1):], word], dtype=np.int64)
        return float(self._probs(seq, np.asarray([seq.size - 1]))[0])

    def sentence_logprobs(self, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Natural-log probability of each sentence, end-of-sentence symbol included."""
        offsets = np.asarray(offsets)
        seq, targets = _padded(np.asarray(tokens), offsets, self.order, self.bos, self.eos)
        logp = np.log(self._probs(seq, targets))
        per = np.diff(offsets) + 1
        return np.add.reduceat(logp, np.concatenate([[0], np.cumsum(per)[:-1]])) if per.size else logp[:0]


# --- pairs ----------------------------------------------------------------------------------------------

def encode_sentences(tokenizer: Tokenizer, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (as the scorers encode them: no special tokens) and sentence offsets."""
    encs = tokenizer.encode_batch(list(sentences), add_special_tokens=False)
    lengths = np.asarray([len(e.ids) for e in encs], dtype=np.int64)
    ids = np.asarray([i for e in encs for i in e.ids], dtype=np.int64)
    return ids, np.concatenate([[0], np.cumsum(lengths)])


@dataclass
class PairBaselines:
    """Per paradigm, each baseline's per-pair outcome (1 right, 0 wrong, 0.5 a length tie) and each
    pair's token counts."""

    outcomes: dict[str, dict[str, np.ndarray]]  # baseline name -> paradigm -> (pairs,)
    good_lengths: dict[str, np.ndarray]  # paradigm -> (pairs,)
    bad_lengths: dict[str, np.ndarray]
    train_tokens: int = 0
    train_sentences: int = 0

    def accuracy(self, name: str) -> dict[str, float]:
        return {p: float(v.mean()) for p, v in self.outcomes[name].items()}

    def equal_length(self) -> dict[str, np.ndarray]:
        """paradigm -> mask of the pairs whose two sentences have the same number of tokens."""
        return {p: self.good_lengths[p] == self.bad_lengths[p] for p in self.good_lengths}

    @property
    def names(self) -> list[str]:
        return list(self.outcomes)


def equal_length_accuracy(correct: dict[str, np.ndarray], equal: dict[str, np.ndarray]) -> tuple[float, int]:
    """Accuracy over all pairs of equal token length (pooled over paradigms) and their number."""
    hits = sum(float(np.asarray(correct[p], dtype=float)[m].sum()) for p, m in equal.items() if p in correct)
    n = sum(int(m.sum()) for p, m in equal.items() if p in correct)
    return (hits / n if n else math.nan), n


def score_pair_baselines(tokenizer: Tokenizer, pairs: dict[str, tuple[Sequence[str], Sequence[str]]],
                         train_tokens: np.ndarray, train_offsets: np.ndarray,
                         orders: Sequence[int] = (1, 2, 3)) -> PairBaselines:
    """Count models of ``orders`` trained on the sentences ``train_tokens[train_offsets[i]:...]``, and the
    length heuristic, on ``pairs`` (paradigm -> (good sentences, bad sentences))."""
    vocab = tokenizer.get_vocab_size()
    names = list(pairs)
    goods = [s for p in names for s in pairs[p][0]]
    bads = [s for p in names for s in pairs[p][1]]
    g_ids, g_off = encode_sentences(tokenizer, goods)
    b_ids, b_off = encode_sentences(tokenizer, bads)
    bounds = np.cumsum([0, *(len(pairs[p][0]) for p in names)])
    g_len, b_len = np.diff(g_off), np.diff(b_off)
    outcomes: dict[str, dict[str, np.ndarray]] = {}
    for order in orders:
        model = KneserNey.fit(train_tokens, train_offsets, order, vocab)
        ok = (model.sentence_logprobs(g_ids, g_off) > model.sentence_logprobs(b_ids, b_off)).astype(float)
        outcomes[ORDERS[order]] = {p: ok[lo:hi] for p, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)}
        log.info("%s count model: %.1f on %d pairs", ORDERS[order], 100 * ok.mean(), ok.size)
    shorter = np.where(g_len < b_len, 1.0, np.where(g_len == b_len, 0.5, 0.0))
    outcomes[LENGTH] = {p: shorter[lo:hi] for p, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)}
    return PairBaselines(outcomes, {p: g_len[lo:hi] for p, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)},
                         {p: b_len[lo:hi] for p, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True)},
                         int(np.asarray(train_tokens).size), int(len(train_offsets) - 1))


def run_corpus(path: str | Path, tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The training split of a run's corpus as ``tokenizer`` ids and sentence offsets, through the data
    pipeline (the token store is built once and cached by content and tokenizer)."""
    from zoo.data import build_datasets
    from zoo.runs import open_run

    run = open_run(path)
    cfg = run.config
    family = run.info.get("family") or registry_family(cfg.backbone)
    bundle = build_datasets(cfg.data, cfg.tokenizer, family, None, tokenizer=tokenizer)
    return np.asarray(bundle.train.tokens), np.asarray(bundle.train.sent_offsets)


def registry_family(backbone: str) -> str:
    from zoo import registry

    return str(registry.load("backbone", backbone).family)
