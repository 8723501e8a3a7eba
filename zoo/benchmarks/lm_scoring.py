"""Sentence scores from a pretrained model's own token-prediction head, for minimal-pair suites.

Scorers
  causal          sum over the sentence of log p(token | beginning-of-text token, earlier tokens), and
                  the same divided by the number of tokens (length-normalised). Decoders trained with
                  ``clm`` or a prefix LM (scored with an empty prefix).
  causal-sentinel a decoder trained with T5 span corruption, scored the way it trained: the sentence is
                  the one noise span of an empty text, ``<extra_id_0> eos | <extra_id_0> sentence``
                  (prefix bidirectional), so the score is log p(sentence | that prefix).
  causal[P]       a run trained with paradigm tokens (UL2's mode switching, ``[R]``/``[S]``/``[X]``) is
                  scored in one mode, named in brackets: ``causal[S]`` (the S denoiser, a prefix LM) puts
                  the paradigm token after the start token and scores causally with an empty prefix;
                  ``causal-sentinel[R]`` (no S denoiser) leads the sentinel context with it.
  pll-word-l2r    pseudo-log-likelihood (Salazar et al., 2020): each token is masked in its own copy of
                  the sentence and scored from the rest; within-word tokens to the right of the target
                  are masked too (Kauf & Ivanova, 2023, "PLL-word-l2r"), so the rest of a word never
                  gives it away. The default for bidirectional models with a token head.
  pll-original    the same without the within-word masking (Salazar et al., 2020).

Which scorer a model gets is decided by ``scorers_for`` alone, from the objective classes' declared
attention layout and the heads the model has. Masked copies are batched, and only the positions
that are read go through the vocabulary projection.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from zoo.batch import SpecialTokens
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout
from zoo.models.base import Backbone
from zoo.objectives.base import TiedLinear
from zoo.objectives.mixture import Leaf, spec_leaves
from zoo.objectives.mlm import MaskedLMHead
from zoo.objectives.spec import parse

log = logging.getLogger(__name__)

PLL_VARIANTS = ("word-l2r", "original")


@dataclass(frozen=True)
class Scorer:
    """One way of scoring sentences with one of the model's heads."""

    name: str  # reported: "causal", "causal-sentinel", "causal[S]", "pll-word-l2r", "pll-original"
    kind: str  # "causal" | "pll" | "seq2seq" (an encoder-decoder: zoo.benchmarks.seq2seq_scoring)
    head: str  # key in the model's heads
    offset: int = 0  # pll: the masked token i is read at position i - offset
    sentinel: bool = False  # causal: the sentence is the one noise span of an empty text
    paradigm: str = ""  # causal: a mode-switching token (UL2's "[S]") the context ends with; "" for none

    @property
    def variants(self) -> tuple[str, ...]:
        """Score names this scorer reports (the causal ones also length-normalised)."""
        return (self.name, f"{self.name}-mean") if self.kind in ("causal", "seq2seq") else (self.name,)


def is_token_head(head: nn.Module | None) -> bool:
    return isinstance(head, (MaskedLMHead, TiedLinear))


def _scorer(leaf: Leaf, family: str, heads: Mapping[str, nn.Module], pll: str) -> Scorer | None:
    """How ``leaf``'s head scores a sentence, the way it trained (None: no token head, no layout)."""
    key = leaf.name if leaf.name in heads else leaf.cls.head_key  # shared heads live under heads.<head_key>
    if key is None or not is_token_head(heads.get(key)):
        return None
    paradigm = str(leaf.config.get("paradigm", ""))
    if str(family) == "encoder-decoder":  # the decoder's log-likelihood (zoo.benchmarks.seq2seq_scoring)
        sentinel = bool(leaf.cls.sentinel_targets)
        return Scorer(f"seq2seq{'-sentinel' if sentinel else ''}{paradigm}", "seq2seq", key, sentinel=sentinel,
                      paradigm=paradigm)
    layout = leaf.cls.layout_for(family)
    # Span corruption as a prefix LM (``Objective.sentinel_targets``): the sentence is the single noise span
    # of an empty text; other row-rebuilding prefix LMs (deshuffling) are scored causally, empty prefix.
    if layout == "prefix" and leaf.cls.rebuilds_rows_for(family) and leaf.cls.sentinel_targets:
        return Scorer(f"causal-sentinel{paradigm}", "causal", key, sentinel=True, paradigm=paradigm)
    if layout in ("causal", "prefix"):  # a prefix LM with an empty prefix
        return Scorer(f"causal{paradigm}", "causal", key, paradigm=paradigm)
    if layout == "bidirectional":
        return Scorer(f"pll-{pll}", "pll", key, leaf.cls.read_offset)
    log.info("%s declares no attention layout on a %s; it is not used for scoring", leaf.name, family)
    return None


def scorers_for(objective: str, family: str, heads: Mapping[str, nn.Module], pll: str = "word-l2r") -> list[Scorer]:
    """The scorers for a model trained with ``objective`` (a spec: ``a``, ``a+b``, ``a:15|(b+c):1``, or a
    named mixture such as ``ul2``) on a backbone of ``family``, given its heads by name. Mixture parts
    that predict tokens in different ways each contribute their scorer; a composition (``+``) shares
    one layout, and its token-predicting part is scored. Parts trained with a paradigm token (UL2's
    mode switching) give one scorer between them: the S mode (causal, empty prefix) when some part
    trained it, else the first part's mode. ``ConfigError`` when no part has a token-level head."""
    if pll not in PLL_VARIANTS:
        raise ConfigError(f"--pll must be one of {', '.join(PLL_VARIANTS)}, got {pll!r}")
    found = [s for s in (_scorer(leaf, family, heads, pll) for leaf in spec_leaves(parse(objective))) if s]
    modes = [s for s in found if s.paradigm]
    mode = next((s for s in modes if not s.sentinel), modes[0]) if modes else None
    out: dict[str, Scorer] = {}
    for s in found:
        chosen = (mode or s) if s.paradigm else s
        out.setdefault(chosen.name, chosen)
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
            x = rows[i:i + chunk]
            logits = F.linear(x if self.transform is None else self.transform(x), self.weight, self.bias)  # (n, V)
            out.append(logits.log_softmax(-1, dtype=torch.float32).gather(1, targets[i:i + chunk, None]).squeeze(1))
        return torch.cat(out) if out else rows.new_zeros(0, dtype=torch.float32)


# --- scorers -----------------------------------------------------------------------------------------

def causal_context(special: SpecialTokens, sentinel: bool = False, paradigm: int | None = None) -> tuple[list[int], int]:
    """(context tokens before the sentence, how many of them form the bidirectional prefix). Plain:
    the start token alone, no prefix (a decoder's own scoring). With a ``paradigm`` token (UL2's mode
    switch) the context is the start token then the paradigm token, as the prefix it trained as;
    with ``sentinel`` it is ``[paradigm] <extra_id_0> eos <extra_id_0>``, all but the last the prefix."""
    lead = [] if paradigm is None else [paradigm]
    if sentinel:
        end = special.eos if special.eos is not None else special.sep  # the end token span-lm trained with
        if not special.sentinels or end is None:
            missing = "<extra_id_0>" if not special.sentinels else "an end-of-text or [SEP] token"
            raise ConfigError(f"the causal-sentinel scorer needs a tokenizer with <extra_id_0> and an end token "
                              f"(end-of-text or [SEP]); this one has no {missing}")
        return [*lead, special.sentinels[0], end, special.sentinels[0]], len(lead) + 2
    start = next((t for t in (special.bos, special.eos, special.cls) if t is not None), None)
    if start is None:
        raise ConfigError("causal scoring needs a beginning-of-text, end-of-text or [CLS] token to start from")
    return [start, *lead], (1 + len(lead) if lead else 0)


def _projection(head: nn.Module | VocabProjection) -> VocabProjection:
    return head if isinstance(head, VocabProjection) else VocabProjection(head)


def causal_scores(backbone: Backbone, head: nn.Module | VocabProjection, special: SpecialTokens, enc: Encoded,
                  sentinel: bool = False, batch_tokens: int = 16384,
                  paradigm: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of token log-probs, tokens scored) per sentence, given the context of ``causal_context``."""
    context, prefix_len = causal_context(special, sentinel, paradigm)
    proj = _projection(head)
    n = len(enc.ids)
    sums, counts = np.zeros(n), np.asarray([len(x) for x in enc.ids])
    device = next(backbone.parameters()).device
    c = len(context)
    widths = counts + c
    for group in _batches(widths, widths, batch_tokens):
        m = int(counts[group[0]])  # every sentence of the group has m tokens
        if m == 0:
            continue
        ids = torch.from_numpy(np.concatenate([np.broadcast_to(np.asarray(context, dtype=np.int64), (len(group), c)),
                                               np.stack([enc.ids[i] for i in group])], axis=1)).to(device)  # (B, c+m)
        prefix = None
        if prefix_len:
            prefix = torch.zeros(ids.shape, dtype=torch.bool, device=device)
            prefix[:, :prefix_len] = True
        hidden = backbone(ids, AttentionLayout(causal=True, prefix=prefix))  # (B, c+m, h)
        # position t predicts token t + 1: positions c-1 .. c+m-2 predict the sentence
        lp = proj.logprobs(hidden[:, c - 1:c - 1 + m].reshape(-1, hidden.shape[-1]), ids[:, c:].reshape(-1))
        sums[group] = lp.view(len(group), m).double().sum(1).cpu().numpy()
    return sums, counts


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


def pll_scores(backbone: Backbone, head: nn.Module | VocabProjection, special: SpecialTokens, enc: Encoded,
               word_l2r: bool = True, offset: int = 0, batch_tokens: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-log-likelihood, tokens scored) per sentence. Every token gets a copy of the row with it
    (and, with ``word_l2r``, the rest of its word) replaced by the mask token; the copy's prediction
    is read at the target position minus ``offset``."""
    if special.mask is None:
        raise ConfigError("pseudo-log-likelihood scoring needs a tokenizer with a mask token")
    if special.cls is not None and special.sep is not None:
        pre, post = [special.cls], [special.sep]
    else:
        start = special.bos if special.bos is not None else special.eos
        pre, post = ([] if start is None else [start]), []
    if offset > len(pre):
        raise ConfigError(f"reading a prediction {offset} position(s) early needs {offset} leading token(s)")
    proj = _projection(head)
    n = len(enc.ids)
    sums, counts = np.zeros(n), np.asarray([len(x) for x in enc.ids])
    device = next(backbone.parameters()).device
    p, widths = len(pre), counts + len(pre) + len(post)
    for group in _batches(widths, widths * counts, batch_tokens):
        m, b = int(counts[group[0]]), len(group)  # every sentence of the group has m tokens: m copies each
        if m == 0:
            continue
        sent = np.stack([enc.ids[i] for i in group])  # (b, m)
        rows = np.concatenate([np.broadcast_to(np.asarray(pre, dtype=np.int64), (b, p)), sent,
                               np.broadcast_to(np.asarray(post, dtype=np.int64), (b, len(post)))], axis=1)
        masks, pos = masked_copies(p, np.stack([enc.words[i] for i in group]), word_l2r)  # (b, m, m), (m,)
        copies = np.repeat(rows[:, None, :], m, axis=1)  # (b, m copies, T)
        copies[:, :, p:p + m][masks] = special.mask
        hidden = backbone(torch.from_numpy(copies.reshape(b * m, -1)).to(device),
                          AttentionLayout(causal=False))  # (b*m, T, h)
        read = torch.from_numpy(pos - offset).to(device)
        at = hidden.view(b, m, *hidden.shape[1:])[:, torch.arange(m, device=device), read]  # (b, m, h): copy j at its target
        lp = proj.logprobs(at.reshape(b * m, -1), torch.from_numpy(sent.reshape(-1)).to(device))
        sums[group] = lp.view(b, m).double().sum(1).cpu().numpy()
    return sums, counts


PRECISIONS = ("fp32", "bf16")


@torch.inference_mode()
def score_sentences(scorer: Scorer, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizer: Tokenizer,
                    special: SpecialTokens, sentences: Sequence[str], batch_tokens: int = 16384,
                    precision: str = "fp32") -> dict[str, np.ndarray]:
    """Scores of every sentence under each of ``scorer.variants`` (higher = more acceptable). With
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
                      tokenizer, special, sentences, batch_tokens)


def bf16_linears(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose linear layers hold bf16 weights: under bf16 autocast it computes the same
    as ``module`` (autocast casts those weights to bf16 at every call), without the casts."""
    copied = copy.deepcopy(module)
    for m in copied.modules():
        if isinstance(m, nn.Linear):
            m.to(torch.bfloat16)
    return copied


def _score(scorer: Scorer, backbone: Backbone, head: VocabProjection, tokenizer: Tokenizer,
           special: SpecialTokens, sentences: Sequence[str], batch_tokens: int) -> dict[str, np.ndarray]:
    backbone.eval()
    enc = encode(tokenizer, sentences)
    too_long = [i for i, x in enumerate(enc.ids) if len(x) + 4 > backbone.spec.max_positions]
    if too_long:
        raise ConfigError(f"sentence {too_long[0]} has {len(enc.ids[too_long[0]])} tokens; the model takes at most "
                          f"{backbone.spec.max_positions} positions")
    if scorer.kind in ("causal", "seq2seq"):
        try:
            paradigm = special.extra_id(scorer.paradigm, by=f"the {scorer.name} scorer") if scorer.paradigm else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if scorer.kind == "seq2seq":
            from zoo.benchmarks.seq2seq_scoring import seq2seq_scores

            sums, counts = seq2seq_scores(backbone, head, special, enc, scorer.sentinel, batch_tokens, paradigm)
        else:
            sums, counts = causal_scores(backbone, head, special, enc, scorer.sentinel, batch_tokens, paradigm)
        return {scorer.name: sums, f"{scorer.name}-mean": sums / np.maximum(counts, 1)}
    sums, _ = pll_scores(backbone, head, special, enc, scorer.name == "pll-word-l2r", scorer.offset, batch_tokens)
    return {scorer.name: sums}
