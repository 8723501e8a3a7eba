"""Sentence scores from a pretrained model's own token-prediction head, for minimal-pair suites.

A scorer reads the model in the context it trained in: the same leading tokens at the same positions.
Decoder rows are packed without a leading token (positions from 0 per document) unless the run
trained with ``data.doc_start``, which puts a start token before every document; encoder rows are
``[CLS] piece [SEP]``. The readings of a causal head (``causal_readings``) are the choices of
``zoo bench --scorer``.

Scorers
  causal          the default for decoders trained without a start token: the sentence alone at
                  positions 0.., the sum of log p(token | earlier tokens) over its tokens but the first
                  (no position predicts a document's first token), and the same divided by the number
                  of tokens scored. ``clm`` or a prefix LM (a one-token prefix, which is causal).
  causal-unigram  the same plus the first token's unigram log-probability in the run's training split.
  causal-start    the start token (beginning-of-text, else end-of-text) then the sentence, every token
                  scored: the default for a run trained with ``data.doc_start``. On a model trained
                  without it this is GPT-2-style scoring from ``<|endoftext|>``, an output the model
                  never trained to produce (the scorer of earlier versions, named ``causal`` then).
  causal-sentinel a decoder trained with T5 span corruption, scored the way it trained: the sentence is
                  the one noise span of an empty text, ``<extra_id_0> eos | <extra_id_0> sentence``
                  (prefix bidirectional), so the score is log p(sentence | that prefix).
  causal[P]       a run trained with paradigm tokens (UL2's mode switching, ``[R]``/``[S]``/``[X]``) is
                  scored in one mode, named in brackets: ``causal[S]`` (the S denoiser, a prefix LM) puts
                  the paradigm token at position 0, as the prefix it trained as (after the start token
                  with ``data.doc_start``), and scores every sentence token causally;
                  ``causal-sentinel[R]`` (no S denoiser) leads the sentinel context with it.
  pll-word-l2r    pseudo-log-likelihood (Salazar et al., 2020): each token is masked in its own copy of
                  the sentence and scored from the rest; within-word tokens to the right of the target
                  are masked too (Kauf & Ivanova, 2023, "PLL-word-l2r"), so the rest of a word never
                  gives it away. The default for bidirectional models with a token head. Copies are
                  ``[CLS] sentence [SEP]`` on encoder rows; on decoder rows the sentence alone (after
                  the start token with ``data.doc_start``), and a head that reads token i at position
                  i - 1 (GPT-BERT's ``mntp``) leaves out a first token no position precedes.
  pll-original    the same without the within-word masking (Salazar et al., 2020).

Each scorer above is a ``Reading`` registered in the ``zoo.scorers`` entry-point group (declared in
objective-zoo's ``pyproject.toml`` like a plugin's); a plugin adds one the same way. Which scorer a
model gets is decided by ``scorers_for`` alone: the reading its objective names (``Objective.scorer``),
else the one its declared attention layout implies, given the heads the model has. Masked copies are batched, and only the positions
that are read go through the vocabulary projection.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from zoo import registry
from zoo.batch import SpecialTokens
from zoo.data.packing import start_token
from zoo.errors import ConfigError, PluginError
from zoo.models.attention import AttentionLayout
from zoo.models.base import Backbone
from zoo.objectives.base import TiedLinear
from zoo.objectives.mixture import Leaf, spec_leaves
from zoo.objectives.mlm import MaskedLMHead
from zoo.objectives.spec import parse_spec

log = logging.getLogger(__name__)

PLL_VARIANTS = ("word-l2r", "original")
CONTEXTS = ("none", "start", "cls")  # what leads a scored row: nothing, the start token, [CLS] ... [SEP]
KINDS = ("causal", "pll", "seq2seq")  # the heads and rows a reading needs: next-token, masked-token, decoder


@dataclass(frozen=True)
class Scorer:
    """One way of scoring sentences with one of the model's heads: a registered reading (``Reading``) in
    the paradigm mode the model trained with."""

    name: str  # reported: the reading's name and the paradigm, "causal", "causal[S]", "pll-word-l2r", ...
    kind: str  # the reading's kind (``KINDS``); "seq2seq" is an encoder-decoder (zoo.benchmarks.seq2seq_scoring)
    head: str  # key in the model's heads
    offset: int = 0  # pll: the masked token i is read at position i - offset
    sentinel: bool = False  # causal: the sentence is the one noise span of an empty text
    paradigm: str = ""  # causal: a mode-switching token (UL2's "[S]") the context ends with; "" for none
    context: str = "none"  # what leads the sentence (``CONTEXTS``), the way the model's rows were packed
    unigram: bool = False  # causal, no leading token: the first token scored by a unigram term

    @property
    def reading(self) -> str:
        """The registered reading this scorer applies."""
        return self.name.removesuffix(self.paradigm)

    @property
    def variants(self) -> tuple[str, ...]:
        """Score names this scorer reports (the causal ones also length-normalised)."""
        return (self.name, f"{self.name}-mean") if self.kind in ("causal", "seq2seq") else (self.name,)


@dataclass(frozen=True)
class ScoreInputs:
    """What a reading computes from."""

    scorer: Scorer
    backbone: Backbone
    head: VocabProjection
    special: SpecialTokens
    enc: Encoded
    batch_tokens: int
    paradigm: int | None  # the id of the scorer's paradigm token; None without one
    unigram: np.ndarray | None  # (V,) log-probabilities of the run's training split (``Reading.unigram``)


@dataclass(frozen=True)
class Reading:
    """A registered scorer (entry-point group ``zoo.scorers``; ``zoo bench --scorer NAME``): which head and
    rows it reads (``kind``) and how it computes a score per sentence. ``compute`` returns (sums, tokens
    scored); the causal and seq2seq kinds also report the sum divided by the tokens, as ``NAME-mean``."""

    name: str
    kind: str  # one of KINDS
    compute: Callable[[ScoreInputs], tuple[np.ndarray, np.ndarray]]
    description: str = ""
    context: str | None = None  # what leads the rows (CONTEXTS); None: the way the model's rows were packed
    sentinel: bool = False  # causal: the sentence as the one noise span of an empty text (span corruption)
    unigram: bool = False  # needs the unigram log-probabilities of the model's training split

    def scorer(self, head: str, paradigm: str = "", offset: int = 0, context: str = "none") -> Scorer:
        """This reading of the head ``head`` in the paradigm mode ``paradigm``."""
        return Scorer(f"{self.name}{paradigm}", self.kind, head, offset, self.sentinel, paradigm,
                      self.context or context, self.unigram)

    @property
    def causal(self) -> bool:
        """A next-token reading a user may choose for a causal head (``--scorer``): not the sentinel one."""
        return self.kind == "causal" and not self.sentinel


def get_reading(name: str) -> Reading:
    """The registered reading ``name``; a ``ConfigError`` naming the known ones otherwise."""
    try:
        reading = registry.load("scorer", name)
    except PluginError as exc:
        raise ConfigError(f"--scorer: {exc}") from None
    if reading.name != name:  # a scorer is found again by the name it gives itself (``Scorer.reading``)
        raise ConfigError(f"--scorer: the scorer registered as {name!r} calls itself {reading.name!r}; a plugin must "
                          "register a Reading under its own name")
    return reading


def causal_readings() -> list[str]:
    """The registered readings a next-token head trained without span corruption can be scored with
    (``zoo bench --scorer``): causal ones that are not the sentinel reading."""
    out = []
    for name in registry.names("scorer"):
        try:
            r = get_reading(name)
        except ConfigError:
            continue
        if r.causal:
            out.append(name)
    return out


def is_token_head(head: nn.Module | None) -> bool:
    return isinstance(head, (MaskedLMHead, TiedLinear))


def causal_reading(reading: str, paradigm: str, key: str) -> Scorer:
    """The causal scorer named ``reading`` (a registered causal reading), in the paradigm mode ``paradigm``."""
    found = get_reading(reading)
    if not found.causal:
        raise ConfigError(f"--scorer must be one of {', '.join(causal_readings())}, got {reading!r}")
    if paradigm and found.unigram:
        raise ConfigError(f"--scorer {reading}: a paradigm token leads the scored rows, so the first token "
                          f"is predicted; use causal or causal-start")
    return found.scorer(key, paradigm)


def _scorer(leaf: Leaf, family: str, heads: Mapping[str, nn.Module], pll: str, doc_start: bool,
            causal: str | None) -> Scorer | None:
    """How ``leaf``'s head scores a sentence, the way it trained (None: no token head, no layout): the
    reading its objective names (``Objective.scorer``), else the one its attention layout implies."""
    key = leaf.name if leaf.name in heads else leaf.cls.head_key  # shared heads live under heads.<head_key>
    if key is None or not is_token_head(heads.get(key)):
        return None
    paradigm = str(leaf.config.get("paradigm", ""))
    named = getattr(leaf.cls, "scorer", None)
    if named:
        reading = get_reading(named)
        if causal is not None and reading.causal:
            return causal_reading(causal, paradigm, key)
        return reading.scorer(key, paradigm, leaf.cls.read_offset, _rows_context(family, doc_start))
    if str(family) == "encoder-decoder":  # the decoder's log-likelihood (zoo.benchmarks.seq2seq_scoring)
        return get_reading("seq2seq-sentinel" if leaf.cls.sentinel_targets else "seq2seq").scorer(key, paradigm)
    layout = leaf.cls.layout_for(family)
    # Span corruption as a prefix LM (``Objective.sentinel_targets``): the sentence is the single noise span
    # of an empty text; other row-rebuilding prefix LMs (deshuffling) are scored causally, empty prefix.
    if layout == "prefix" and leaf.cls.rebuilds_rows_for(family) and leaf.cls.sentinel_targets:
        return get_reading("causal-sentinel").scorer(key, paradigm)
    if layout in ("causal", "prefix"):  # a prefix LM: a one-token prefix (or the paradigm token) is causal
        return causal_reading(causal or ("causal-start" if doc_start else "causal"), paradigm, key)
    if layout == "bidirectional":
        return get_reading(f"pll-{pll}").scorer(key, "", leaf.cls.read_offset, _rows_context(family, doc_start))
    log.info("%s declares no attention layout on a %s; it is not used for scoring", leaf.name, family)
    return None


def _rows_context(family: str, doc_start: bool) -> str:
    """What leads a row the way ``family`` packs them: [CLS] on encoder rows, else the start token or nothing."""
    return "cls" if family == "encoder" else ("start" if doc_start else "none")


def scorers_for(objective: str, family: str, heads: Mapping[str, nn.Module], pll: str = "word-l2r",
                doc_start: bool = False, causal: str | None = None) -> list[Scorer]:
    """The scorers for a model trained with ``objective`` (a spec: ``a``, ``a+b``, ``a:15|(b+c):1``, or a
    named mixture such as ``ul2``) on a backbone of ``family``, given its heads by name; ``doc_start``:
    its decoder rows had a start token before every document (``DataConfig.doc_start``); ``causal``:
    a registered causal reading (``causal_readings``) instead of the one it trained for. Mixture parts
    that predict tokens in different ways each contribute their scorer; a composition (``+``) shares
    one layout, and its token-predicting part is scored. Parts trained with a paradigm token (UL2's
    mode switching) give one scorer between them: the S mode (causal, empty prefix) when some part
    trained it, else the first part's mode. ``ConfigError`` when no part has a token-level head."""
    if pll not in PLL_VARIANTS:
        raise ConfigError(f"--pll must be one of {', '.join(PLL_VARIANTS)}, got {pll!r}")
    if causal is not None and causal not in causal_readings():
        raise ConfigError(f"--scorer must be one of {', '.join(causal_readings())}, got {causal!r}")
    found = [s for s in (_scorer(leaf, family, heads, pll, doc_start, causal)
                         for leaf in spec_leaves(parse_spec(objective))) if s]
    modes = [s for s in found if s.paradigm]
    mode = next((s for s in modes if not s.sentinel), modes[0]) if modes else None
    out: dict[str, Scorer] = {}
    for s in found:
        chosen = (mode or s) if s.paradigm else s
        out.setdefault(chosen.name, chosen)
    if causal is not None and not any(s.kind == "causal" and not s.sentinel for s in out.values()):
        raise ConfigError(f"--scorer {causal}: objective {objective!r} has no causal (next-token) reading to choose")
    if not out:
        raise ConfigError(f"objective {objective!r} has no token-level head (masked-LM or LM head) to score "
                          f"sentences with; minimal pairs need a model trained to predict tokens (mlm, clm, "
                          f"prefix, span, ...)")
    return list(out.values())


# --- encoding ----------------------------------------------------------------------------------------

@dataclass
class Encoded:
    ids: list[np.ndarray]  # per sentence: token ids without special tokens
    words: list[np.ndarray]  # per sentence: word index of each token


def encode(tokenizer: Tokenizer, sentences: Sequence[str]) -> Encoded:
    encs = tokenizer.encode_batch(list(sentences), add_special_tokens=False)
    ids = [np.asarray(e.ids, dtype=np.int64) for e in encs]
    words = [np.asarray([-1 if w is None else w for w in e.word_ids], dtype=np.int64) for e in encs]
    return Encoded(ids, words)


def _batches(lengths: Sequence[int], costs: Sequence[int], max_cost: int) -> list[list[int]]:
    """Indices grouped by equal length (no padding, so no attention mask), each group cut so that its
    summed cost stays under ``max_cost``; groups in order of length, indices in input order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    out: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for i in order.tolist():
        if cur and (total + costs[i] > max_cost or lengths[i] != lengths[cur[0]]):
            out.append(cur)
            cur, total = [], 0
        cur.append(i)
        total += costs[i]
    if cur:
        out.append(cur)
    return out


class VocabProjection:
    """A token head as (transform, vocabulary projection), the projection's weight cast once to ``dtype``
    (under bf16 autocast: the cast autocast would make at every call, made once)."""

    def __init__(self, head: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        decoder = head.decoder if isinstance(head, MaskedLMHead) else head
        if not isinstance(decoder, TiedLinear):
            raise TypeError(f"{type(head).__name__} is not a token-level head")
        self.transform = head.transform if isinstance(head, MaskedLMHead) else None
        self.weight = decoder.weight.detach().to(dtype)  # (V, h)
        self.bias = None if decoder.bias is None else decoder.bias.detach().to(dtype)

    def logprobs(self, rows: Tensor, targets: Tensor, chunk: int = 256) -> Tensor:
        """log p(target) for hidden ``rows`` (N, h), the log-softmax in fp32, ``chunk`` rows at a time (their
        (chunk, V) logits stay in cache)."""
        out = []
        for i in range(0, rows.shape[0], chunk):
            logits = self.logits(rows[i:i + chunk])  # (n, V)
            out.append(logits.log_softmax(-1, dtype=torch.float32).gather(1, targets[i:i + chunk, None]).squeeze(1))
        return torch.cat(out) if out else rows.new_zeros(0, dtype=torch.float32)

    def logits(self, rows: Tensor) -> Tensor:
        """Vocabulary logits (N, V) of hidden ``rows`` (N, h)."""
        return F.linear(rows if self.transform is None else self.transform(rows), self.weight, self.bias)


# --- scorers -----------------------------------------------------------------------------------------

def causal_context(special: SpecialTokens, sentinel: bool = False, paradigm: int | None = None,
                   start: bool = False) -> tuple[list[int], int]:
    """(context tokens before the sentence, how many of them form the bidirectional prefix). Plain: the
    start token with ``start`` (a run trained with ``data.doc_start``), else nothing. With a ``paradigm``
    token (UL2's mode switch) the context ends with it, as the prefix it trained as (the token leads
    each row); with ``sentinel`` it is ``[paradigm] <extra_id_0> eos <extra_id_0>``, all but the last
    the prefix."""
    lead = [] if paradigm is None else [paradigm]
    if sentinel:
        end = special.eos if special.eos is not None else special.sep  # the end token span-lm trained with
        if not special.sentinels or end is None:
            missing = "<extra_id_0>" if not special.sentinels else "an end-of-text or [SEP] token"
            raise ConfigError(f"the causal-sentinel scorer needs a tokenizer with <extra_id_0> and an end token "
                              f"(end-of-text or [SEP]); this one has no {missing}")
        return [*lead, special.sentinels[0], end, special.sentinels[0]], len(lead) + 2
    first: list[int] = []
    if start:
        token = start_token(special)
        if token is None:
            raise ConfigError("causal-start scoring needs a beginning-of-text, end-of-text or [SEP] token")
        first = [token]
    return [*lead, *first], (len(lead) + len(first) if lead else 0)


def with_context(context: Sequence[int], rows: np.ndarray, device: torch.device) -> Tensor:
    """Token rows (B, m) after the same ``context`` tokens: (B, c + m) ids on ``device``."""
    lead = np.broadcast_to(np.asarray(context, dtype=np.int64), (len(rows), len(context)))
    return torch.from_numpy(np.concatenate([lead, rows], axis=1)).to(device)


def causal_layout(ids: Tensor, prefix_len: int = 0) -> AttentionLayout:
    """The causal layout of rows ``ids`` (B, T) whose first ``prefix_len`` positions are read bidirectionally
    (a prefix LM's prefix; none at 0)."""
    prefix = None
    if prefix_len:
        prefix = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
        prefix[:, :prefix_len] = True
    return AttentionLayout(causal=True, prefix=prefix)


def _projection(head: nn.Module | VocabProjection) -> VocabProjection:
    return head if isinstance(head, VocabProjection) else VocabProjection(head)


def causal_scores(backbone: Backbone, head: nn.Module | VocabProjection, special: SpecialTokens, enc: Encoded,
                  sentinel: bool = False, batch_tokens: int = 16384, paradigm: int | None = None,
                  start: bool = False, unigram: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of token log-probs, tokens scored) per sentence, given the context of ``causal_context`` at
    positions from 0. Without any context the first token is left out (nothing predicts it), or scored
    by ``unigram`` (V,) log-probabilities when given."""
    context, prefix_len = causal_context(special, sentinel, paradigm, start)
    proj = _projection(head)
    n = len(enc.ids)
    lengths = np.asarray([len(x) for x in enc.ids])
    c = len(context)
    skip = 1 if c == 0 else 0  # tokens no position predicts
    sums, counts = np.zeros(n), np.maximum(lengths - skip, 0)
    device = next(backbone.parameters()).device
    widths = lengths + c
    for group in _batches(widths, widths, batch_tokens):
        m = int(lengths[group[0]])  # every sentence of the group has m tokens
        if m - skip <= 0:
            continue
        ids = with_context(context, np.stack([enc.ids[i] for i in group]), device)  # (B, c+m)
        hidden = backbone(ids, causal_layout(ids, prefix_len))  # (B, c+m, h)
        # position t predicts token t + 1: positions c+skip-1 .. c+m-2 predict sentence tokens skip .. m-1
        lo = c + skip - 1
        lp = proj.logprobs(hidden[:, lo:c + m - 1].reshape(-1, hidden.shape[-1]), ids[:, lo + 1:].reshape(-1))
        sums[group] = lp.view(len(group), m - skip).double().sum(1).cpu().numpy()
    if skip and unigram is not None:
        firsts = [i for i in range(n) if lengths[i]]
        sums[firsts] += unigram[np.asarray([enc.ids[i][0] for i in firsts], dtype=np.int64)]
        counts = lengths.copy()
    return sums, counts


def unigram_logprobs(counts: np.ndarray) -> np.ndarray:
    """Add-one smoothed unigram log-probabilities from token counts (V,)."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log((counts + 1.0) / (counts.sum() + len(counts)))


def masked_copies(n_pre: int, words: np.ndarray, word_l2r: bool) -> tuple[np.ndarray, np.ndarray]:
    """For rows of ``n_pre`` leading special tokens and L sentence tokens whose word indices are ``words``
    (L,) or (B, L): (..., L, L) bool masks, copy j masking token j (one copy per token), and the (L,)
    target position of each copy. With ``word_l2r`` a copy also masks the tokens of the target's word
    to its right (Kauf & Ivanova, 2023)."""
    n = words.shape[-1]
    masks = np.broadcast_to(np.eye(n, dtype=bool), (*words.shape[:-1], n, n))
    if word_l2r:
        w = words[..., :, None]  # the target's word, (..., L, 1)
        masks = masks | (np.triu(np.ones((n, n), dtype=bool), 1) & (w == words[..., None, :]) & (w >= 0))
    return masks, np.arange(n) + n_pre


def pll_context(special: SpecialTokens, context: str) -> tuple[list[int], list[int]]:
    """(tokens before, tokens after) the sentence in a PLL copy: ``[CLS]``/``[SEP]`` for encoder rows
    (``context="cls"``), the start token alone (``"start"``) or nothing (``"none"``) for decoder rows."""
    if context == "cls":
        if special.cls is None or special.sep is None:
            raise ConfigError("pseudo-log-likelihood scoring of an encoder needs [CLS] and [SEP] tokens")
        return [special.cls], [special.sep]
    if context == "start":
        token = start_token(special)
        if token is None:
            raise ConfigError("scoring after a start token needs a beginning-of-text, end-of-text or [SEP] token")
        return [token], []
    if context != "none":
        raise ValueError(f"unknown scoring context {context!r}; expected one of {', '.join(CONTEXTS)}")
    return [], []


def pll_scores(backbone: Backbone, head: nn.Module | VocabProjection, special: SpecialTokens, enc: Encoded,
               word_l2r: bool = True, offset: int = 0, batch_tokens: int = 16384,
               context: str = "cls") -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-log-likelihood, tokens scored) per sentence. Every token gets a copy of the row (led as
    ``pll_context`` says) with it (and, with ``word_l2r``, the rest of its word) replaced by the mask
    token; the copy's prediction is read at the target position minus ``offset``. Tokens that no
    position precedes by ``offset`` are left out."""
    if special.mask is None:
        raise ConfigError("pseudo-log-likelihood scoring needs a tokenizer with a mask token")
    pre, post = pll_context(special, context)
    skip = max(0, offset - len(pre))  # leading tokens whose read position would be before the row
    proj = _projection(head)
    n = len(enc.ids)
    lengths = np.asarray([len(x) for x in enc.ids])
    sums, counts = np.zeros(n), np.maximum(lengths - skip, 0)
    device = next(backbone.parameters()).device
    p, widths = len(pre), lengths + len(pre) + len(post)
    for group in _batches(widths, widths * lengths, batch_tokens):
        m, b = int(lengths[group[0]]), len(group)  # every sentence of the group has m tokens: m copies each
        if m - skip <= 0:
            continue
        sent = np.stack([enc.ids[i] for i in group])  # (b, m)
        rows = np.concatenate([np.broadcast_to(np.asarray(pre, dtype=np.int64), (b, p)), sent,
                               np.broadcast_to(np.asarray(post, dtype=np.int64), (b, len(post)))], axis=1)
        masks, pos = masked_copies(p, np.stack([enc.words[i] for i in group]), word_l2r)  # (b, m, m), (m,)
        copies = np.repeat(rows[:, None, :], m, axis=1)  # (b, m copies, T)
        copies[:, :, p:p + m][masks] = special.mask
        hidden = backbone(torch.from_numpy(copies.reshape(b * m, -1)).to(device),
                          AttentionLayout(causal=False))  # (b*m, T, h)
        read = torch.from_numpy(pos[skip:] - offset).to(device)
        copies_read = torch.arange(skip, m, device=device)
        at = hidden.view(b, m, *hidden.shape[1:])[:, copies_read, read]  # (b, m - skip, h): copy j at its target
        lp = proj.logprobs(at.reshape(b * (m - skip), -1), torch.from_numpy(sent[:, skip:].reshape(-1)).to(device))
        sums[group] = lp.view(b, m - skip).double().sum(1).cpu().numpy()
    return sums, counts


PRECISIONS = ("fp32", "bf16")


@torch.inference_mode()
def score_sentences(scorer: Scorer, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizer: Tokenizer,
                    special: SpecialTokens, sentences: Sequence[str], batch_tokens: int = 16384,
                    precision: str = "fp32", unigram: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Scores of every sentence under each of ``scorer.variants`` (higher = more acceptable);
    ``unigram`` (V,) log-probabilities for a scorer with ``unigram`` set. With
    ``precision="bf16"`` the matmuls run under bf16 autocast (layer norms, softmax and the log-softmax stay
    fp32): faster where the hardware has bf16 instructions, at the cost of exactness (scores shift by
    up to ~1e-2 relative). The model is not changed."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = next(backbone.parameters()).device
    bf16 = precision == "bf16"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        return _score(scorer, bf16_linears(backbone) if bf16 else backbone,
                      VocabProjection(heads[scorer.head].eval(), torch.bfloat16 if bf16 else torch.float32),
                      tokenizer, special, sentences, batch_tokens, unigram)


def bf16_linears(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose linear layers hold bf16 weights: under bf16 autocast it computes the same
    as ``module`` (autocast casts those weights to bf16 at every call), without the casts."""
    copied = copy.deepcopy(module)
    for m in copied.modules():
        if isinstance(m, nn.Linear):
            m.to(torch.bfloat16)
    return copied


def _score(scorer: Scorer, backbone: Backbone, head: VocabProjection, tokenizer: Tokenizer,
           special: SpecialTokens, sentences: Sequence[str], batch_tokens: int,
           unigram: np.ndarray | None = None) -> dict[str, np.ndarray]:
    backbone.eval()
    enc = encode(tokenizer, sentences)
    too_long = [i for i, x in enumerate(enc.ids) if len(x) + 4 > backbone.spec.max_positions]
    if too_long:
        raise ConfigError(f"sentence {too_long[0]} has {len(enc.ids[too_long[0]])} tokens; the model takes at most "
                          f"{backbone.spec.max_positions} positions")
    try:
        paradigm = special.extra_id(scorer.paradigm, by=f"the {scorer.name} scorer") if scorer.paradigm else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    reading = get_reading(scorer.reading)
    if reading.unigram and unigram is None:
        raise ConfigError(f"the {scorer.name} scorer needs the unigram counts of the model's training split")
    sums, counts = reading.compute(ScoreInputs(scorer, backbone, head, special, enc, batch_tokens, paradigm,
                                               unigram if reading.unigram else None))
    if scorer.kind in ("causal", "seq2seq"):
        return {scorer.name: sums, f"{scorer.name}-mean": sums / np.maximum(counts, 1)}
    return {scorer.name: sums}


# --- the built-in readings (registered in pyproject.toml under zoo.scorers; seq2seq: seq2seq_scoring) ------

def _causal(x: ScoreInputs) -> tuple[np.ndarray, np.ndarray]:
    s = x.scorer
    return causal_scores(x.backbone, x.head, x.special, x.enc, s.sentinel, x.batch_tokens, x.paradigm,
                         start=s.context == "start", unigram=x.unigram)


def _pll(word_l2r: bool) -> Callable[[ScoreInputs], tuple[np.ndarray, np.ndarray]]:
    def compute(x: ScoreInputs) -> tuple[np.ndarray, np.ndarray]:
        return pll_scores(x.backbone, x.head, x.special, x.enc, word_l2r, x.scorer.offset, x.batch_tokens,
                          x.scorer.context)
    return compute


CAUSAL = Reading("causal", "causal", _causal, "no leading token, positions from 0, the first token left out",
                 context="none")
CAUSAL_UNIGRAM = Reading("causal-unigram", "causal", _causal, "as causal, the first token scored by its unigram "
                         "log-probability in the training split", context="none", unigram=True)
CAUSAL_START = Reading("causal-start", "causal", _causal, "the start token before the sentence (the context of a "
                       "run trained with data.doc_start)", context="start")
CAUSAL_SENTINEL = Reading("causal-sentinel", "causal", _causal, "the sentence as the one noise span of an empty "
                          "text, after <extra_id_0> eos (span corruption as a prefix LM)", sentinel=True)
PLL_WORD_L2R = Reading("pll-word-l2r", "pll", _pll(True), "pseudo-log-likelihood, the rest of the target's word "
                       "masked too (Kauf & Ivanova 2023)")
PLL_ORIGINAL = Reading("pll-original", "pll", _pll(False), "pseudo-log-likelihood (Salazar et al. 2020)")
