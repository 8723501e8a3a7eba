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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
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
    kind: str  # "causal" | "pll"
    head: str  # key in the model's heads
    offset: int = 0  # pll: the masked token i is read at position i - offset
    sentinel: bool = False  # causal: the sentence is the one noise span of an empty text
    paradigm: str = ""  # causal: a mode-switching token (UL2's "[S]") the context ends with; "" for none

    @property
    def variants(self) -> tuple[str, ...]:
        """Score names this scorer reports (the causal ones also length-normalised)."""
        return (self.name, f"{self.name}-mean") if self.kind == "causal" else (self.name,)


def is_token_head(head: nn.Module | None) -> bool:
    return isinstance(head, (MaskedLMHead, TiedLinear))


def _scorer(leaf: Leaf, family: str, heads: Mapping[str, nn.Module], pll: str) -> Scorer | None:
    """How ``leaf``'s head scores a sentence, the way it trained (None: no token head, no layout)."""
    key = leaf.name if leaf.name in heads else leaf.cls.head_key  # shared heads live under heads.<head_key>
    if key is None or not is_token_head(heads.get(key)):
        return None
    paradigm = str(leaf.config.get("paradigm", ""))
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
    """Indices sorted by length, cut into groups whose summed cost stays under ``max_cost``."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    out: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for i in order.tolist():
        if cur and total + costs[i] > max_cost:
            out.append(cur)
            cur, total = [], 0
        cur.append(i)
        total += costs[i]
    if cur:
        out.append(cur)
    return out


def _head_logprobs(head: nn.Module, rows: Tensor, targets: Tensor, chunk: int = 4096) -> Tensor:
    """log p(target) for hidden ``rows`` (N, h) through the head (N, vocab), ``chunk`` rows at a time."""
    out = []
    for i in range(0, rows.shape[0], chunk):
        logits = head(rows[i:i + chunk]).float()  # (n, V)
        out.append(logits.log_softmax(-1).gather(1, targets[i:i + chunk, None]).squeeze(1))
    return torch.cat(out) if out else rows.new_zeros(0)


# --- scorers -----------------------------------------------------------------------------------------

def causal_context(special: SpecialTokens, sentinel: bool = False, paradigm: int | None = None) -> tuple[list[int], int]:
    """(context tokens before the sentence, how many of them form the bidirectional prefix). Plain:
    the start token alone, no prefix (a decoder's own scoring). With a ``paradigm`` token (UL2's mode
    switch) the context is the start token then the paradigm token, as the prefix it trained as;
    with ``sentinel`` it is ``[paradigm] <extra_id_0> eos <extra_id_0>``, all but the last the prefix."""
    lead = [] if paradigm is None else [paradigm]
    if sentinel:
        if not special.sentinels or special.eos is None:
            raise ConfigError("the causal-sentinel scorer needs a tokenizer with <extra_id_0> and an end token")
        return [*lead, special.sentinels[0], special.eos, special.sentinels[0]], len(lead) + 2
    start = next((t for t in (special.bos, special.eos, special.cls) if t is not None), None)
    if start is None:
        raise ConfigError("causal scoring needs a beginning-of-text, end-of-text or [CLS] token to start from")
    return [start, *lead], (1 + len(lead) if lead else 0)


def causal_scores(backbone: Backbone, head: nn.Module, special: SpecialTokens, enc: Encoded, sentinel: bool = False,
                  batch_tokens: int = 16384, paradigm: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of token log-probs, tokens scored) per sentence, given the context of ``causal_context``."""
    context, prefix_len = causal_context(special, sentinel, paradigm)
    n = len(enc.ids)
    sums, counts = np.zeros(n), np.asarray([len(x) for x in enc.ids])
    rows = [np.concatenate([np.asarray(context, dtype=np.int64), x]) for x in enc.ids]
    device = next(backbone.parameters()).device
    c = len(context)
    for group in _batches([len(r) for r in rows], [len(r) for r in rows], batch_tokens):
        width = max(len(rows[i]) for i in group)
        ids = torch.full((len(group), width), special.pad, dtype=torch.long)
        doc = torch.full((len(group), width), -1, dtype=torch.int32)
        for b, i in enumerate(group):
            ids[b, :len(rows[i])] = torch.from_numpy(rows[i])
            doc[b, :len(rows[i])] = 0
        prefix = None
        if prefix_len:
            prefix = torch.zeros(len(group), width, dtype=torch.bool)
            prefix[:, :prefix_len] = True
        layout = AttentionLayout(causal=True, doc_ids=doc.to(device), prefix=None if prefix is None else prefix.to(device))
        hidden = backbone(ids.to(device), layout)  # (B, T, h)
        # position t predicts token t + 1: read positions c-1 .. len-2 of each row
        b_idx = torch.cat([torch.full((counts[i],), b, dtype=torch.long) for b, i in enumerate(group)])
        t_idx = torch.cat([torch.arange(c - 1, c - 1 + counts[i]) for i in group])
        lp = _head_logprobs(head, hidden[b_idx.to(device), t_idx.to(device)], ids[b_idx, t_idx + 1].to(device))
        sums[group] = np.bincount(b_idx.numpy(), weights=lp.double().cpu().numpy(), minlength=len(group))
    return sums, counts


def masked_copies(n_pre: int, words: np.ndarray, word_l2r: bool) -> tuple[np.ndarray, np.ndarray]:
    """For a row of ``n_pre`` leading special tokens and len(words) sentence tokens: (copies, T) bool
    masks (one copy per token) and the target position of each copy. With ``word_l2r`` a copy also
    masks the tokens of the target's word to its right (Kauf & Ivanova, 2023)."""
    n = len(words)
    masks = np.eye(n, dtype=bool)
    if word_l2r:
        right = np.triu(np.ones((n, n), dtype=bool), 1)
        masks |= right & (words[:, None] == words[None, :]) & (words[:, None] >= 0)
    return masks, np.arange(n) + n_pre


def pll_scores(backbone: Backbone, head: nn.Module, special: SpecialTokens, enc: Encoded, word_l2r: bool = True,
               offset: int = 0, batch_tokens: int = 16384) -> tuple[np.ndarray, np.ndarray]:
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
    n = len(enc.ids)
    sums, counts = np.zeros(n), np.asarray([len(x) for x in enc.ids])
    rows = [np.concatenate([np.asarray(pre, dtype=np.int64), x, np.asarray(post, dtype=np.int64)]) for x in enc.ids]
    device = next(backbone.parameters()).device
    lengths = [len(r) for r in rows]
    for group in _batches(lengths, [len(r) * counts[i] for i, r in enumerate(rows)], batch_tokens):
        width = max(lengths[i] for i in group)
        copies = int(sum(counts[i] for i in group))
        if copies == 0:
            continue
        ids = torch.full((copies, width), special.pad, dtype=torch.long)
        doc = torch.full((copies, width), -1, dtype=torch.int32)
        targets, reads, owner = [], [], []
        k = 0
        for i in group:
            m = counts[i]
            if m == 0:
                continue
            masks, pos = masked_copies(len(pre), enc.words[i], word_l2r)
            block = np.broadcast_to(rows[i], (m, lengths[i])).copy()
            block[:, len(pre):len(pre) + m][masks] = special.mask
            ids[k:k + m, :lengths[i]] = torch.from_numpy(block)
            doc[k:k + m, :lengths[i]] = 0
            targets.append(rows[i][pos])
            reads.append(pos - offset)
            owner.append(np.full(m, i))
            k += m
        layout = AttentionLayout(causal=False, doc_ids=doc.to(device))
        hidden = backbone(ids.to(device), layout)  # (copies, T, h)
        read = torch.from_numpy(np.concatenate(reads)).to(device)
        lp = _head_logprobs(head, hidden[torch.arange(copies, device=device), read],
                            torch.from_numpy(np.concatenate(targets)).to(device))
        np.add.at(sums, np.concatenate(owner), lp.double().cpu().numpy())
    return sums, counts


PRECISIONS = ("fp32", "bf16")


@torch.inference_mode()
def score_sentences(scorer: Scorer, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizer: Tokenizer,
                    special: SpecialTokens, sentences: Sequence[str], batch_tokens: int = 16384,
                    precision: str = "fp32") -> dict[str, np.ndarray]:
    """Scores of every sentence under each of ``scorer.variants`` (higher = more acceptable). With
    ``precision="bf16"`` the matmuls run under bf16 autocast (log-softmax stays fp32): faster where
    the hardware has bf16 instructions, at the cost of exactness (scores shift by up to ~1e-2 relative)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = next(backbone.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return _score(scorer, backbone, heads, tokenizer, special, sentences, batch_tokens)


def _score(scorer: Scorer, backbone: Backbone, heads: Mapping[str, nn.Module], tokenizer: Tokenizer,
           special: SpecialTokens, sentences: Sequence[str], batch_tokens: int) -> dict[str, np.ndarray]:
    backbone.eval()
    head = heads[scorer.head]
    head.eval()
    enc = encode(tokenizer, sentences)
    too_long = [i for i, x in enumerate(enc.ids) if len(x) + 4 > backbone.spec.max_positions]
    if too_long:
        raise ConfigError(f"sentence {too_long[0]} has {len(enc.ids[too_long[0]])} tokens; the model takes at most "
                          f"{backbone.spec.max_positions} positions")
    if scorer.kind == "causal":
        try:
            paradigm = special.extra_id(scorer.paradigm, by=f"the {scorer.name} scorer") if scorer.paradigm else None
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        sums, counts = causal_scores(backbone, head, special, enc, scorer.sentinel, batch_tokens, paradigm)
        return {scorer.name: sums, f"{scorer.name}-mean": sums / np.maximum(counts, 1)}
    sums, _ = pll_scores(backbone, head, special, enc, scorer.name == "pll-word-l2r", scorer.offset, batch_tokens)
    return {scorer.name: sums}
