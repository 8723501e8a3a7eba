"""Text from a trained model: ``zoo generate`` (continue a prompt) and ``zoo fill`` (predict ``[MASK]``).

A run directory or an exported transformers directory is opened with its token head
(``zoo.benchmarks.zeroshot.open_scoring_model``), and the way it reads text is the way it was
trained (``zoo.benchmarks.lm_scoring.scorers_for``):

generate  causal models (``clm``) continue ``start token + prompt`` causally; prefix LMs (``prefix``,
          UL2's S mode) take ``start token [+ paradigm token] + prompt`` as their bidirectional
          prefix and continue it causally; sentinel span LMs (``span-lm``) read
          ``[paradigm] prompt <extra_id_0> end`` as the prefix and predict ``<extra_id_0> ...``, the
          span that ends the text, stopping at the end token or the next sentinel.
fill      masked models (``mlm``, ``mntp``) read ``[CLS] text [SEP]`` bidirectionally and rank the
          vocabulary at each mask (``mntp`` reads the prediction one position earlier).

Sampling follows transformers' ``generate``: the logits are divided by the temperature, then
filtered by top-k and by top-p (nucleus), then one token is drawn from their softmax with a seeded
``torch.Generator``; temperature 0 or ``greedy`` takes the most likely token. Generation stops at
the end-of-text token, at ``max_new_tokens`` or at the model's last position. Every step reruns the
model over the whole sequence (no key/value cache): these are small models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from zoo.batch import SpecialTokens
from zoo.benchmarks.lm_scoring import Scorer, VocabProjection, causal_context, causal_layout, scorers_for
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout

log = logging.getLogger(__name__)

MASK_TEXT = "[MASK]"  # accepted in ``zoo fill`` text whatever the tokenizer calls its mask token


@dataclass
class GenerateConfig:
    """How ``generate`` picks tokens (transformers' names and meanings)."""

    max_new_tokens: int = 50
    temperature: float = 1.0  # 0: greedy
    top_k: int = 0  # 0: no top-k filtering
    top_p: float = 1.0  # 1.0: no nucleus filtering
    greedy: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"--temperature must be >= 0 (0: greedy), got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"--top-k must be >= 0 (0: off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1] (1: off), got {self.top_p}")

    @property
    def sampling(self) -> bool:
        return not self.greedy and self.temperature > 0


# --- logits filtering (transformers' TopKLogitsWarper / TopPLogitsWarper) -----------------------------

def top_k_filter(logits: Tensor, k: int, filter_value: float = -float("inf")) -> Tensor:
    """``logits`` (..., V) with everything below the k-th largest value set to ``filter_value``."""
    if k <= 0:
        return logits
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, filter_value)


def top_p_filter(logits: Tensor, p: float, filter_value: float = -float("inf"), min_tokens_to_keep: int = 1) -> Tensor:
    """``logits`` (..., V) keeping the smallest set of most likely tokens whose probabilities sum to at least
    ``p`` (nucleus sampling, Holtzman et al. 2020), computed as transformers does: on the ascending sort,
    drop the tokens whose cumulative probability is at most ``1 - p``."""
    if p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - p)
    remove[..., -min_tokens_to_keep:] = False
    return logits.masked_fill(remove.scatter(-1, sorted_idx, remove), filter_value)


def next_token(logits: Tensor, cfg: GenerateConfig, generator: torch.Generator | None) -> int:
    """One token id from next-token ``logits`` (V,): argmax, or a draw after temperature, top-k, top-p."""
    if not cfg.sampling:
        return int(torch.argmax(logits))
    scores = top_p_filter(top_k_filter(logits.float() / cfg.temperature, cfg.top_k), cfg.top_p)
    probs = scores.softmax(dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


# --- the model ---------------------------------------------------------------------------------------

@dataclass
class TextModel:
    """A backbone with its token heads, the tokenizer, and how it was trained to read text."""

    name: str
    backbone: torch.nn.Module
    heads: dict[str, torch.nn.Module]
    tokenizer: object
    special: SpecialTokens
    objective: str
    family: str
    scorers: list[Scorer] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def projection(self, scorer: Scorer) -> VocabProjection:
        return VocabProjection(self.heads[scorer.head])


def open_text_model(path: str | Path, step: int | None = None, device: str = "cpu") -> TextModel:
    """A run directory (its newest or ``step`` checkpoint) or an exported transformers directory with a
    token head (``BertForMaskedLM``, ``BertForPreTraining``, ``GPT2LMHeadModel``)."""
    from zoo.benchmarks.recipe import resolve_device
    from zoo.benchmarks.source import open_source
    from zoo.benchmarks.zeroshot import open_scoring_model

    source = open_source(path, step)
    sm = open_scoring_model(source, step)
    dev = resolve_device(device)
    backbone = sm.backbone.to(dev).eval()
    heads = {k: h.to(dev).eval() for k, h in sm.heads.items()}
    scorers = scorers_for(sm.objective, backbone.family, heads)
    return TextModel(source.name, backbone, heads, source.tokenizer, source.special, sm.objective, backbone.family,
                     scorers)


def _trained_for(model: TextModel) -> str:
    kinds = {"causal": "next-token prediction", "pll": "masked-token prediction"}
    how = sorted({kinds.get(s.kind, "encoder-decoder prediction") for s in model.scorers})
    return f"{model.name} was trained with {model.objective!r} ({' and '.join(how) or 'no token head'})"


def generation_scorer(model: TextModel) -> Scorer:
    """The causal way of reading the model (a plain causal scorer before a sentinel one)."""
    causal = [s for s in model.scorers if s.kind == "causal"]
    if not causal and model.family == "encoder-decoder":
        raise ConfigError(f"{_trained_for(model)}: zoo generate reads decoder-only models (causal and prefix LMs), "
                          f"not encoder-decoders")
    if not causal:
        raise ConfigError(f"{_trained_for(model)}: zoo generate needs a causal or prefix language model (clm, prefix, "
                          f"span-lm, ul2, ...); use zoo fill for masked models")
    return next((s for s in causal if not s.sentinel), causal[0])


def fill_scorer(model: TextModel) -> Scorer:
    found = [s for s in model.scorers if s.kind == "pll"]
    if not found:
        raise ConfigError(f"{_trained_for(model)}: zoo fill needs a masked language model (mlm, mntp, ...); use "
                          f"zoo generate for causal models")
    return found[0]


# --- generate ----------------------------------------------------------------------------------------

@dataclass
class Generation:
    prompt: str
    text: str  # the generated continuation, decoded without special tokens
    prompt_ids: list[int]  # the model's whole input before the first generated token
    new_ids: list[int]  # generated tokens (the stop token included)
    stop: str  # "end token", "max new tokens", "max positions"
    mode: str  # the scorer name: causal, causal[S], causal-sentinel, ...
    prefix: int = 0  # leading tokens of ``prompt_ids`` read bidirectionally (a prefix LM's prefix)


def paradigm_token(model: TextModel, scorer: Scorer) -> int | None:
    if not scorer.paradigm:
        return None
    try:
        return model.special.extra_id(scorer.paradigm, by=f"the {scorer.name} reading")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _context(model: TextModel, scorer: Scorer, prompt_ids: list[int]) -> tuple[list[int], int, list[int], set[int]]:
    """(input ids, prefix length, forced first target tokens, stop ids) for a prompt."""
    special = model.special
    paradigm = paradigm_token(model, scorer)
    end = special.eos if special.eos is not None else special.sep
    stops = {t for t in (end,) if t is not None}
    if scorer.sentinel:
        if not special.sentinels or end is None:
            raise ConfigError("a sentinel span LM needs a tokenizer with <extra_id_0> and an end token")
        lead = [] if paradigm is None else [paradigm]
        ids = [*lead, *prompt_ids, special.sentinels[0], end]
        return ids, len(ids), [special.sentinels[0]], stops | set(special.sentinels[1:])
    context, prefix_len = causal_context(special, paradigm=paradigm, start=True)
    # a prefix LM: the prompt is its prefix
    prefix = len(context) + len(prompt_ids) if prefix_len or prompt_is_prefix(model, scorer) else 0
    return [*context, *prompt_ids], prefix, [], stops


def prompt_is_prefix(model: TextModel, scorer: Scorer) -> bool:
    """Whether the parts read by ``scorer`` are prefix LMs over plain text (``prefix``; not those that rebuild
    their rows, such as ``deshuffle``, whose prefix is another text): they read a prompt as their prefix."""
    from zoo.objectives.mixture import spec_leaves
    from zoo.objectives.spec import parse_spec

    layouts = [leaf.cls.layout_for(model.family) for leaf in spec_leaves(parse_spec(model.objective))
               if str(leaf.config.get("paradigm", "")) == scorer.paradigm
               and leaf.cls.layout_for(model.family) in ("causal", "prefix")
               and not leaf.cls.rebuilds_rows_for(model.family)]
    return bool(layouts) and all(layout == "prefix" for layout in layouts)


@torch.inference_mode()
def generate(model: TextModel, prompt: str, cfg: GenerateConfig | None = None) -> Generation:
    """Continue ``prompt`` (see the module docstring for how each kind of model reads it)."""
    cfg = cfg or GenerateConfig()
    scorer = generation_scorer(model)
    prompt_ids = list(model.tokenizer.encode(prompt, add_special_tokens=False).ids)
    ids, prefix_len, forced, stops = _context(model, scorer, prompt_ids)
    ids = ids + forced
    limit = model.backbone.spec.max_positions
    if len(ids) >= limit:
        raise ConfigError(f"the prompt is {len(prompt_ids)} tokens; with the {len(ids) - len(prompt_ids)} the model "
                          f"reads around it that leaves no room in its {limit} positions")
    proj = model.projection(scorer)
    generator = torch.Generator(device=model.device).manual_seed(cfg.seed) if cfg.sampling else None
    start = len(ids)
    stop = "max new tokens"
    device = model.device
    while len(ids) - start < cfg.max_new_tokens:
        if len(ids) >= limit:
            stop = "max positions"
            break
        x = torch.tensor([ids], dtype=torch.long, device=device)
        hidden = model.backbone(x, causal_layout(x, prefix_len))[0, -1:]  # (1, h)
        logits = logits_of(proj, hidden)[0]
        token = next_token(logits, cfg, generator)
        ids.append(token)
        if token in stops:
            stop = "end token"
            break
    new = ids[start:]
    shown = new[:-1] if stop == "end token" else new
    # decoded with the prompt, so that a word continued or a space opened by the first token reads right
    before = model.tokenizer.decode(ids[:start], skip_special_tokens=True)
    after = model.tokenizer.decode(ids[:start] + shown, skip_special_tokens=True)
    text = after[len(before):] if after.startswith(before) else model.tokenizer.decode(shown, skip_special_tokens=True)
    return Generation(prompt, text, ids[:start], new, stop, scorer.name, prefix_len)


def logits_of(proj: VocabProjection, hidden: Tensor) -> Tensor:
    """Vocabulary logits (N, V) of hidden rows (N, h) through a token head, in fp32."""
    return proj.logits(hidden).float()


# --- fill ----------------------------------------------------------------------------------------------

@dataclass
class Prediction:
    token: str
    token_id: int
    score: float  # probability


@dataclass
class Filled:
    text: str
    masks: list[list[Prediction]]  # per mask, in text order: the top-k predictions
    sequence: str  # the text with each mask replaced by its most likely token


@torch.inference_mode()
def fill(model: TextModel, text: str, top_k: int = 5) -> Filled:
    """Top-``top_k`` predictions for each mask of ``text`` (written ``[MASK]`` or as the tokenizer's mask token),
    from one bidirectional pass over ``[CLS] text [SEP]``."""
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}")
    scorer = fill_scorer(model)
    special = model.special
    if special.mask is None:
        raise ConfigError(f"{model.name}'s tokenizer has no mask token")
    mask_text = model.tokenizer.id_to_token(special.mask)
    if mask_text not in text and MASK_TEXT not in text:
        raise ConfigError(f"the text has no {MASK_TEXT} to fill: {text!r}")
    enc = model.tokenizer.encode(text.replace(MASK_TEXT, mask_text), add_special_tokens=False)
    body = list(enc.ids)
    if special.cls is not None and special.sep is not None:
        pre, post = [special.cls], [special.sep]
    else:
        start = special.bos if special.bos is not None else special.eos
        pre, post = ([] if start is None else [start]), []
    ids = [*pre, *body, *post]
    if len(ids) > model.backbone.spec.max_positions:
        raise ConfigError(f"the text is {len(body)} tokens; the model takes at most "
                          f"{model.backbone.spec.max_positions - len(pre) - len(post)}")
    positions = [i for i, t in enumerate(ids) if t == special.mask]
    x = torch.tensor([ids], dtype=torch.long, device=model.device)
    hidden = model.backbone(x, AttentionLayout(causal=False))[0]
    read = torch.tensor([p - scorer.offset for p in positions], device=model.device)
    probs = logits_of(model.projection(scorer), hidden[read]).softmax(-1)  # (masks, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    masks = [[Prediction(model.tokenizer.decode([int(i)]), int(i), float(s)) for s, i in zip(ss, ii, strict=True)]
             for ss, ii in zip(top.values.cpu(), top.indices.cpu(), strict=True)]
    best = list(ids)
    for p, preds in zip(positions, masks, strict=True):
        best[p] = preds[0].token_id
    sequence = model.tokenizer.decode(best, skip_special_tokens=True)
    return Filled(text, masks, sequence)
