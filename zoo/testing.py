"""Conformance kit for objective plugins, and the fixtures plugin tests need.

A plugin package runs the same checks as objective-zoo's own objectives::

    from zoo.testing import check_objective

    def test_my_objective_conforms():
        check_objective(MyObjective)            # every compatible registered backbone
        check_objective("my-objective+nsp")     # or a registered spec, composition included

``check_objective`` raises ``ConformanceError`` (an ``AssertionError``) naming the objective, the
backbone and what went wrong. Fixtures: ``special_tokens_for_tests``, ``InMemorySource``,
``synthetic_source``, ``synthetic_rows``, ``synthetic_segments``, ``tiny_backbone``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo import registry
from zoo.batch import Batch, Chunk, Segments, SpecialTokens
from zoo.errors import IncompatibleError
from zoo.family import Family
from zoo.models.base import Backbone
from zoo.objectives import compat
from zoo.objectives.base import LossOutput, Objective
from zoo.objectives.common import IGNORE, unmaskable_ids
from zoo.objectives.compose import (
    Composite,
    build_objective,
    check_compatible,
    compose,
    declared_special_tokens,
)
from zoo.objectives.mixture import Mixture
from zoo.objectives.spec import parse
from zoo.typed_config import from_dict

LAYOUTS = (None, "bidirectional", "causal", "prefix")
FAMILIES = tuple(f.value for f in Family)


class ConformanceError(AssertionError):
    """An objective does not satisfy the plugin contract."""


# --- fixtures ----------------------------------------------------------------------------------------
def special_tokens_for_tests(vocab_size: int = 512, num_sentinels: int = 32) -> SpecialTokens:
    """Special tokens of a made-up vocabulary: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4,
    end-of-text 5, and ``num_sentinels`` sentinels at the top of the vocabulary (T5 style:
    <extra_id_0> is the last id)."""
    if vocab_size < 6 + num_sentinels + 16:
        raise ValueError(f"vocab_size {vocab_size} leaves too few ordinary tokens")
    sentinels = tuple(vocab_size - 1 - i for i in range(num_sentinels))
    return SpecialTokens(vocab_size=vocab_size, pad=0, unk=1, cls=2, sep=3, mask=4, eos=5, sentinels=sentinels)


class InMemorySource:
    """A ``DocumentSource`` over documents held in memory: a list of documents, each a list of sentences."""

    def __init__(self, documents: Sequence[Sequence[Sequence[int]]],
                 word_starts: Sequence[Sequence[Sequence[bool]]] | None = None) -> None:
        self.documents = [[np.asarray(s, dtype=np.int64) for s in doc] for doc in documents]
        if word_starts is None:
            self.word_starts = [[np.ones(len(s), dtype=bool) for s in doc] for doc in self.documents]
        else:
            self.word_starts = [[np.asarray(w, dtype=bool) for w in doc] for doc in word_starts]

    def num_documents(self) -> int:
        return len(self.documents)

    def document_sentences(self, doc: int) -> list[np.ndarray]:
        return self.documents[doc]

    def document_word_starts(self, doc: int) -> list[np.ndarray]:
        return self.word_starts[doc]

    def tokens(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """All token ids and word starts of a document."""
        sents = self.documents[doc]
        if not sents:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        return np.concatenate(sents), np.concatenate(self.word_starts[doc])


def _ordinary_ids(tokens: SpecialTokens) -> np.ndarray:
    return np.setdiff1d(np.arange(tokens.vocab_size), np.fromiter(tokens.all_ids, dtype=np.int64))


def synthetic_source(tokens: SpecialTokens, num_documents: int = 64, seed: int = 0,
                     sentences: tuple[int, int] = (2, 12), sentence_words: tuple[int, int] = (3, 16),
                     max_word_pieces: int = 3) -> InMemorySource:
    """Random documents of sentences of words; a word is 1..max_word_pieces ordinary tokens."""
    rng = np.random.default_rng(seed)
    pool = _ordinary_ids(tokens)
    piece_p = np.array([0.6, 0.3, 0.1][:max_word_pieces] + [0.0] * max(0, max_word_pieces - 3))
    piece_p = np.where(piece_p > 0, piece_p, 0.05)
    piece_p = piece_p / piece_p.sum()
    docs, starts = [], []
    for _ in range(num_documents):
        doc, doc_starts = [], []
        for _ in range(int(rng.integers(sentences[0], sentences[1] + 1))):
            pieces = rng.choice(np.arange(1, max_word_pieces + 1), p=piece_p,
                                size=int(rng.integers(sentence_words[0], sentence_words[1] + 1)))
            ws = np.zeros(int(pieces.sum()), dtype=bool)
            ws[np.cumsum(pieces) - pieces] = True
            doc.append(pool[rng.integers(0, len(pool), size=len(ws))])
            doc_starts.append(ws)
        docs.append(doc)
        starts.append(doc_starts)
    return InMemorySource(docs, starts)


def synthetic_rows(tokens: SpecialTokens, family: str = Family.ENCODER, batch_size: int = 8, seq_len: int = 64,
                   seed: int = 0, source: InMemorySource | None = None, pad_last: bool = True) -> Batch:
    """Packed rows as the data pipeline makes them.

    encoder: ``[CLS] piece [SEP]`` pieces; decoder: documents each ending with end-of-text. A
    document that does not fit continues in the next piece; ``doc_ids`` number the pieces of a row,
    ``position_ids`` restart per piece, and with ``pad_last`` the last row ends in padding.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    rng = np.random.default_rng(seed)
    source = source or synthetic_source(tokens, seed=seed)
    encoder = Family.of(family).rows == Family.ENCODER
    order = rng.permutation(source.num_documents())
    ids = np.full((batch_size, seq_len), tokens.pad, dtype=np.int64)
    doc_ids = np.full((batch_size, seq_len), -1, dtype=np.int32)
    positions = np.zeros((batch_size, seq_len), dtype=np.int64)
    special = np.ones((batch_size, seq_len), dtype=bool)
    starts = np.zeros((batch_size, seq_len), dtype=bool)
    doc_pos, offset = 0, 0

    if not any(len(source.tokens(d)[0]) for d in range(source.num_documents())):
        raise ValueError("the source holds no tokens (every document is empty)")

    def current() -> tuple[np.ndarray, np.ndarray]:
        nonlocal doc_pos
        toks, ws = source.tokens(int(order[doc_pos % len(order)]))
        while len(toks) == 0:  # an empty document contributes nothing (as in the data pipeline)
            doc_pos += 1
            toks, ws = source.tokens(int(order[doc_pos % len(order)]))
        if not encoder:
            toks, ws = np.append(toks, tokens.eos), np.append(ws, True)
        return toks, ws

    overhead = 2 if encoder else 0
    for r in range(batch_size):
        capacity = seq_len if not (pad_last and r == batch_size - 1) else int(rng.integers(seq_len // 2, seq_len))
        t, piece = 0, 0
        while capacity - t > overhead:
            toks, ws = current()
            take = min(capacity - t - overhead, len(toks) - offset)
            body, body_ws = toks[offset:offset + take], ws[offset:offset + take].copy()
            body_ws[0] = True
            if encoder:
                body = np.concatenate([[tokens.cls], body, [tokens.sep]])
                body_ws = np.concatenate([[True], body_ws, [True]])
            n = len(body)
            ids[r, t:t + n] = body
            doc_ids[r, t:t + n] = piece
            positions[r, t:t + n] = np.arange(n)
            starts[r, t:t + n] = body_ws
            special[r, t:t + n] = np.isin(body, unmaskable_ids(tokens))
            t, piece, offset = t + n, piece + 1, offset + take
            if offset >= len(toks):
                doc_pos, offset = doc_pos + 1, 0
    return Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions,
                 token_type_ids=np.zeros_like(ids) if encoder else None,
                 special_mask=special, word_starts=starts)


def synthetic_segments(tokens: SpecialTokens, batch_size: int = 8, seq_len: int = 64, seed: int = 0,
                       source: InMemorySource | None = None) -> Segments:
    """Chunks of consecutive sentences (at most ``seq_len - 3`` tokens, at least one sentence) from
    random documents, as the data pipeline delivers them to pair builders."""
    rng = np.random.default_rng(seed)
    source = source or synthetic_source(tokens, seed=seed)
    target = seq_len - 3
    chunks = []
    for _ in range(batch_size):
        doc = int(rng.integers(0, source.num_documents()))
        sents, ws = source.document_sentences(doc), source.document_word_starts(doc)
        start = int(rng.integers(0, max(1, len(sents) - 1)))
        end, total = start, 0
        while end < len(sents) and (end == start or total + len(sents[end]) <= target):
            total += len(sents[end])
            end += 1
        chunks.append(Chunk(doc=doc, sentences=list(sents[start:end]), word_starts=list(ws[start:end])))
    return Segments(chunks=chunks, seq_len=seq_len, source=source)


def tiny_backbone(name: str | type[Backbone], vocab_size: int, hidden_size: int = 32, num_layers: int = 2,
                  num_heads: int = 2, max_positions: int = 256, seed: int = 0, **overrides: Any) -> Backbone:
    """A small backbone without dropout, from the registry (``name``) or a Backbone class."""
    cls = registry.load("backbone", name) if isinstance(name, str) else name
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    values = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                  max_positions=max_positions, dropout=0.0, attention_dropout=0.0)
    values = {k: v for k, v in values.items() if k in fields}
    values.update(overrides)
    torch.manual_seed(seed)
    return cls(cls.Config(**values))


# --- the checks --------------------------------------------------------------------------------------
@dataclass
class ConformanceReport:
    """What ``check_objective`` measured on one backbone."""

    objective: str
    backbone: str
    losses: list[float] = field(default_factory=list)
    composed_with: str | None = None  # the first partner composed with
    partners: list[str] = field(default_factory=list)  # every registered partner composed with
    notes: list[str] = field(default_factory=list)


def _fail(where: str, message: str) -> None:
    raise ConformanceError(f"{where}: {message}")


def _classes(objective: str | type[Objective]) -> list[tuple[str, type[Objective]]]:
    """Every objective class the spec (or class) names, over all parts of a mixture."""
    if isinstance(objective, str):
        return [(name, registry.load("objective", name)) for name in parse(objective).names]
    return [(objective.name, objective)]


def _incompatibility(objective: str | type[Objective], backbone: type[Backbone]) -> str | None:
    """The one compatibility rule, applied per ``|`` part of a mixture spec."""
    if not isinstance(objective, str):
        return compat.incompatibility([(objective.name, objective)], backbone)
    for part in parse(objective).parts:
        reason = compat.incompatibility([(n, registry.load("objective", n)) for n in part.composition.names],
                                        backbone)
        if reason:
            return reason
    return None


def _label(objective: str | type[Objective]) -> str:
    return objective if isinstance(objective, str) else f"{objective.__module__}.{objective.__qualname__}"


def build(objective: str | type[Objective], tokens: SpecialTokens, backbone: Backbone,
          configs: Mapping[str, Mapping[str, Any]] | None = None) -> Objective:
    """An objective instance for ``backbone`` from a registered spec or an Objective class."""
    configs = configs or {}
    if isinstance(objective, str):
        return build_objective(objective, configs, tokens, backbone.spec)
    config = from_dict(objective.Config, configs.get(objective.name), path=f"objectives.{objective.name}")
    if issubclass(objective, Mixture):  # a named mixture builds its components
        return objective.build(tokens, backbone.spec, config)
    return objective(config, tokens, backbone.spec)


def compatible_backbones(objective: str | type[Objective]) -> list[str]:
    """Registered backbones the objective (or spec) can train."""
    return [name for name in registry.names("backbone") if _incompatibility(objective, registry.load("backbone", name))
            is None]


def check_capabilities(objective: str | type[Objective]) -> None:
    """The declaration is consistent: names, roles, Config, ``requires`` enforced by
    ``incompatibility``, compatible registered backbones accepted and incompatible ones refused
    with a message."""
    label = _label(objective)
    for name, cls in _classes(objective):
        where = f"{label} [{name}]"
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            _fail(where, "the class sets no `name`")
        if cls.role not in ("pairs", "tokens"):
            _fail(where, f"role must be 'pairs' or 'tokens', got {cls.role!r}")
        if not dataclasses.is_dataclass(cls.Config):
            _fail(where, "Config must be a dataclass")
        try:
            cls.Config()
        except Exception as exc:  # noqa: BLE001 - reported as a contract violation
            _fail(where, f"Config() must build with defaults: {exc}")
        if not isinstance(cls.requires, frozenset) or not all(isinstance(c, str) for c in cls.requires):
            _fail(where, "requires must be a frozenset of capability names")
        for family in FAMILIES:
            if cls.layout_for(family) not in LAYOUTS:
                _fail(where, f"layout_for({family!r}) must be one of {LAYOUTS}")
        for bname in registry.names("backbone"):
            bcls = registry.load("backbone", bname)
            reason = cls.incompatibility(bcls.capabilities, bcls.family)
            if reason is not None and (not isinstance(reason, str) or not reason.strip()):
                _fail(where, f"incompatibility() must return None or a message, got {reason!r} for {bname}")
            if reason is None and not cls.requires <= bcls.capabilities:
                _fail(where, f"requires {sorted(cls.requires)} but incompatibility() accepts {bname} "
                             f"(capabilities {sorted(bcls.capabilities)})")
    spec = objective if isinstance(objective, str) else None
    if spec is None and objective.name in registry.names("objective") and \
            registry.load("objective", objective.name) is objective:
        spec = objective.name
    if spec is None:
        return
    for bname in registry.names("backbone"):
        bcls = registry.load("backbone", bname)
        reason = _incompatibility(objective, bcls)
        try:
            check_compatible(spec, bcls)
        except IncompatibleError as exc:
            if reason is None:
                _fail(label, f"check_compatible refused {bname} although every part accepts it: {exc}")
            if reason not in str(exc):
                _fail(label, f"the refusal of {bname} does not give the reason: {exc}")
        else:
            if reason is not None:
                _fail(label, f"check_compatible accepted {bname} although: {reason}")


def make_data(objective: Objective, tokens: SpecialTokens, family: str, batch_size: int, seq_len: int,
              seed: int) -> Batch | Segments:
    """What the data pipeline would hand this objective: Segments or packed rows of ``row_length``."""
    if objective.unit == "segments":
        return synthetic_segments(tokens, batch_size=batch_size, seq_len=seq_len, seed=seed)
    return synthetic_rows(tokens, family, batch_size=batch_size, seq_len=objective.row_length(seq_len), seed=seed)


def _diff(a: Any, b: Any, path: str = "batch") -> str | None:
    """Where two prepared batches differ (None if identical)."""
    if isinstance(a, Batch) and isinstance(b, Batch):
        for f in dataclasses.fields(Batch):
            d = _diff(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
            if d:
                return d
        return None
    if isinstance(a, Segments) and isinstance(b, Segments):
        return _diff([(c.doc, c.sentences, c.word_starts) for c in a.chunks],
                     [(c.doc, c.sentences, c.word_starts) for c in b.chunks], f"{path}.chunks")
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path} keys {sorted(a)} != {sorted(b)}"
        for k in a:
            d = _diff(a[k], b[k], f"{path}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{path} lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, (np.ndarray, torch.Tensor)) or isinstance(b, (np.ndarray, torch.Tensor)):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y):
            return f"{path} differs"
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def check_prepare(objective: Objective, data: Batch | Segments, seq_len: int, seed: int = 0,
                  where: str = "") -> Batch:
    """``prepare`` is a pure function of (data, rng): same seed -> identical batch, input untouched,
    different seed -> a different batch for randomized objectives; the result is well-formed."""
    where = where or objective.name
    before = copy.deepcopy(data)
    first = objective.prepare(data, np.random.default_rng(seed))
    d = _diff(data, before, "input")
    if d:
        _fail(where, f"prepare modified its input ({d})")
    again = objective.prepare(data, np.random.default_rng(seed))
    d = _diff(first, again)
    if d:
        _fail(where, f"prepare is not deterministic under a seed: {d} between two calls with the same rng seed "
                     f"(keep no RNG state; draw only from the rng argument)")
    other = objective.prepare(data, np.random.default_rng(seed + 1))
    d = _diff(first, other)
    if objective.randomized and d is None:
        _fail(where, "prepare gave identical batches for different seeds; if it is deterministic by "
                     "design, set `randomized = False`")
    if not objective.randomized and d is not None:
        _fail(where, f"randomized = False but different seeds gave different batches ({d})")
    if not isinstance(first, Batch):
        _fail(where, f"prepare must return a Batch, got {type(first).__name__}")
    ids = first.input_ids
    if not isinstance(ids, np.ndarray) or ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        _fail(where, "input_ids must be a 2-D integer numpy array")
    rows = len(data.chunks) if isinstance(data, Segments) else data.input_ids.shape[0]
    if ids.shape[0] != rows or ids.shape[1] > seq_len:
        _fail(where, f"prepared rows have shape {ids.shape}; expected ({rows}, <= {seq_len})")
    if np.asarray(first.doc_ids).shape != ids.shape:
        _fail(where, "doc_ids must have the shape of input_ids")
    if ids.min() < 0 or ids.max() >= objective.tokens.vocab_size:
        _fail(where, "input ids outside the vocabulary")
    if first.prefix is not None and not first.causal:
        _fail(where, "a prefix layout must be causal")
    parts = objective.parts if isinstance(objective, Composite) else [objective]
    for p in parts:
        if p.name not in first.targets:
            _fail(where, f"batch.targets has no entry {p.name!r} (targets go under the objective's name)")
    _check_targets(first, where)
    layout = objective.layout_for(objective.spec.family) if not isinstance(objective, Composite) else objective.attention
    if layout is not None:
        got = "prefix" if first.prefix is not None else ("causal" if first.causal else "bidirectional")
        if got != layout:
            _fail(where, f"declares the {layout} layout but prepared a {got} batch")
    return first


def _check_targets(batch: Batch, where: str) -> None:
    """Every 2-D target array has one row per prepared row; on causal rows, dense ``labels`` (no
    ``positions`` beside them) have the shape of the rows and never predict a token of the
    bidirectional prefix, which the predicting position can see."""
    ids = np.asarray(batch.input_ids)
    rows = ids.shape[0]
    prefix = None if batch.prefix is None else np.asarray(batch.prefix, dtype=bool)
    for name, arrays in batch.targets.items():
        if not isinstance(arrays, Mapping):
            _fail(where, f"batch.targets[{name!r}] must map names to arrays, got {type(arrays).__name__}")
        for key, value in arrays.items():
            arr = np.asarray(value)
            if arr.ndim == 2 and arr.shape[0] != rows:
                _fail(where, f"batch.targets[{name!r}][{key!r}] has shape {arr.shape} but the batch has "
                             f"{rows} rows of shape {ids.shape}")
        labels = arrays.get("labels")
        if not batch.causal or labels is None or "positions" in arrays or np.asarray(labels).ndim != 2:
            continue
        labels = np.asarray(labels)
        if labels.shape != ids.shape:
            _fail(where, f"batch.targets[{name!r}]['labels'] has shape {labels.shape} but the causal rows "
                         f"have shape {ids.shape} (labels at t predict the token at t + 1)")
        if prefix is not None:
            leak = (labels[:, :-1] != IGNORE) & prefix[:, 1:]
            if leak.any():
                r, t = (int(x) for x in np.argwhere(leak)[0])
                _fail(where, f"batch.targets[{name!r}]: row {r} position {t} predicts token {t + 1}, which is in "
                             f"the bidirectional prefix and so visible to it ({int(leak.sum())} such labels)")


def _finite(x: Any) -> bool:
    return bool(torch.isfinite(torch.as_tensor(x, dtype=torch.float64)).all())


def check_training(model: torch.nn.Module, objective: Objective, batch: Batch, steps: int = 8,
                   lr: float = 3e-3, where: str = "", heads: Sequence[str] | None = None) -> list[float]:
    """Finite loss, count and metrics; gradients reach every head parameter (of ``heads``, when given:
    the heads a mixture part trains); the loss decreases over a few AdamW steps on the repeated batch."""
    where = where or objective.name
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        out = model(batch)
        if not isinstance(out, LossOutput):
            _fail(where, f"compute must return a LossOutput, got {type(out).__name__}")
        if out.loss.dim() != 0 or not _finite(out.loss.detach()):
            _fail(where, f"step {step}: loss must be a finite scalar, got {out.loss}")
        if not _finite(out.count) or float(torch.as_tensor(out.count)) <= 0:
            _fail(where, f"step {step}: count must be positive, got {out.count}")
        for k, v in out.metrics.items():
            if not _finite(v.detach() if isinstance(v, torch.Tensor) else v):
                _fail(where, f"step {step}: metric {k!r} is not finite ({v})")
        losses.append(float(out.loss.detach()))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if step == 0:
            for name, p in model.heads.named_parameters():
                if heads is not None and name.split(".", 1)[0] not in heads:
                    continue
                if p.requires_grad and (p.grad is None or not _finite(p.grad)):
                    _fail(where, f"head parameter heads.{name} gets no finite gradient")
        opt.step()
    if not losses[-1] < losses[0]:
        _fail(where, f"loss did not decrease over {steps} steps on a repeated batch: {losses}")
    means = {k: float(v) for k, v in out.metrics.items()}
    for k, v in objective.derived_metrics(means).items():
        if not math.isfinite(v):
            _fail(where, f"derived metric {k!r} is not finite")
    flops = objective.head_flops(batch)
    if not math.isfinite(flops) or flops < 0:
        _fail(where, f"head_flops must be finite and >= 0, got {flops}")
    if flops == 0 and any(True for n, _ in model.heads.named_parameters()
                          if heads is None or n.split(".", 1)[0] in heads):
        _fail(where, "head_flops is 0 although the heads have parameters")
    return losses


def check_state_dict(model: torch.nn.Module, objective: Objective, fresh: torch.nn.Module, batch: Batch,
                     where: str = "") -> None:
    """Heads live under ``heads.<name>.``, never duplicate the embedding, and a safetensors round
    trip into a freshly initialised model gives the identical loss."""
    from safetensors.torch import load_file, save_file

    where = where or objective.name
    names = set(model.heads.keys())
    if isinstance(objective, Mixture):  # per objective name, or the head_key that several parts share
        allowed = set(objective.head_slots.values())
    else:
        allowed = {p.name for p in objective.parts} if isinstance(objective, Composite) else {objective.name}
    if not names <= allowed:
        _fail(where, f"heads {sorted(names - allowed)} are not named after the objective ({sorted(allowed)})")
    state = model.state_dict()
    for key in state:
        if not (key.startswith("backbone.") or any(key.startswith(f"heads.{n}.") for n in names)):
            _fail(where, f"state-dict key {key!r} is neither backbone.* nor heads.<objective>.*")
    for n, head in model.heads.items():
        if any(True for _ in head.parameters()) and not any(k.startswith(f"heads.{n}.") for k in state):
            _fail(where, f"head {n!r} has parameters but no heads.{n}.* keys")
    backbone_ptrs = {t.data_ptr() for k, t in state.items() if k.startswith("backbone.")}
    for key, t in state.items():
        if key.startswith("heads.") and t.data_ptr() in backbone_ptrs:
            _fail(where, f"{key} duplicates a backbone tensor (tie weights with TiedLinear)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))
        fresh.load_state_dict(load_file(str(path)), strict=True)
    model.eval()
    fresh.eval()
    with torch.no_grad():
        a, b = model(batch).loss, fresh(batch).loss
    if not torch.equal(a, b):
        _fail(where, f"loss after a safetensors round trip differs: {float(a)} != {float(b)}")


def _partners(objective: Objective, backbone: type[Backbone]) -> list[str]:
    """Every registered objective this one composes with on the backbone (nsp for token objectives,
    mlm for pair builders first, then the rest by name)."""
    if isinstance(objective, Composite):
        return []
    first = "mlm" if objective.role == "pairs" else "nsp"
    out = []
    for name in registry.names("objective"):
        if name == objective.name:
            continue
        try:
            cls = registry.load("objective", name)
        except Exception:  # noqa: BLE001 - a broken third-party plugin is not this objective's fault
            continue
        if compat.compatible([(objective.name, type(objective)), (name, cls)], backbone):
            out.append(name)
    return sorted(out, key=lambda n: (n != first, n))


def check_objective(objective: str | type[Objective], backbone: str | type[Backbone] | Sequence[Any] | None = None,
                    *, configs: Mapping[str, Mapping[str, Any]] | None = None, tokens: SpecialTokens | None = None,
                    seq_len: int = 64, batch_size: int = 8, steps: int = 8, lr: float = 3e-3,
                    seed: int = 0) -> list[ConformanceReport]:
    """Run every conformance check of ``objective`` (a registered spec such as ``"mlm+nsp"``, or an
    Objective class) on ``backbone`` (a name, a class, a list of them, or None for every compatible
    registered backbone). Raises ``ConformanceError`` on the first violation."""
    label = _label(objective)
    tokens = tokens or _tokens_for(objective, configs, seq_len)
    check_capabilities(objective)
    if backbone is None:
        backbones: list[Any] = compatible_backbones(objective)
        if not backbones:
            _fail(label, "no registered backbone is compatible")
    else:
        backbones = list(backbone) if isinstance(backbone, (list, tuple)) else [backbone]
    reports = []
    for bb in backbones:
        bname = bb if isinstance(bb, str) else getattr(bb, "name", bb.__name__)
        where = f"{label} on {bname}"
        bcls = registry.load("backbone", bb) if isinstance(bb, str) else bb
        reason = _incompatibility(objective, bcls)
        if reason:
            _fail(where, f"the objective refuses this backbone: {reason}")
        report = ConformanceReport(objective=label, backbone=bname)
        model, obj = _model(objective, tokens, bcls, configs, seed, seq_len)
        if isinstance(obj, Mixture):
            reports.append(_check_mixture(objective, model, obj, tokens, bcls, configs, seq_len, batch_size, steps,
                                          lr, seed, report, where))
            continue
        data = make_data(obj, tokens, bcls.family, batch_size, seq_len, seed)
        batch = check_prepare(obj, data, seq_len, seed, where).to("cpu")
        report.losses = check_training(model, obj, batch, steps, lr, where)
        fresh, _ = _model(objective, tokens, bcls, configs, seed + 1, seq_len)
        check_state_dict(model, obj, fresh, batch, where)
        partners = _partners(obj, bcls)
        if not partners:
            report.notes.append("composition not checked: no compatible partner objective")
        else:
            report.composed_with, report.partners = partners[0], partners
            for partner in partners:
                _check_composition(obj, partner, tokens, bcls, configs, seq_len, batch_size, steps, lr, seed,
                                   f"{where} composed with {partner}")
        reports.append(report)
    return reports


def _tokens_for(objective: str | type[Objective], configs: Mapping[str, Mapping[str, Any]] | None,
                seq_len: int) -> SpecialTokens:
    """The test vocabulary, with the extra special tokens the objective declares (ids after eos) and
    sentinels for up to ``seq_len / 4`` noise spans."""
    tokens = special_tokens_for_tests(num_sentinels=max(32, seq_len // 4))
    if isinstance(objective, str):
        declared = declared_special_tokens(objective, configs)
    else:
        config = from_dict(objective.Config, (configs or {}).get(objective.name), path=f"objectives.{objective.name}")
        declared = objective.declared_special_tokens(config)
    return dataclasses.replace(tokens, extra={t: 6 + i for i, t in enumerate(declared)}) if declared else tokens


def _check_mixture(objective: str | type[Objective], model: torch.nn.Module, mixture: Mixture,
                   tokens: SpecialTokens, bcls: type[Backbone], configs: Mapping[str, Mapping[str, Any]] | None,
                   seq_len: int, batch_size: int, steps: int, lr: float, seed: int, report: ConformanceReport,
                   where: str) -> ConformanceReport:
    """Each part prepares its own batch (checked like any objective's), trains the shared backbone and
    its own heads with metrics under its label; the draw is a pure function of (seed, step); the heads
    survive a safetensors round trip."""
    draws = [mixture.draw(seed, s).label for s in range(1, 65)]
    if draws != [mixture.draw(seed, s).label for s in range(1, 65)]:
        _fail(where, "Mixture.draw is not a pure function of (seed, step)")
    batches = []
    for member in mixture.members:
        part_where = f"{where} [part {member.label}]"
        data = make_data(member.objective, tokens, bcls.family, batch_size, seq_len, seed)
        batch = check_prepare(member.objective, data, seq_len, seed, part_where).replace(part=member.label).to("cpu")
        slots = {mixture.head_slots[leaf.name] for leaf in member.leaves()}
        losses = check_training(model, mixture, batch, steps, lr, part_where, heads=sorted(slots))
        with torch.no_grad():
            out = model(batch)
        if f"{member.label}/loss" not in out.metrics:
            _fail(part_where, f"metrics lack {member.label}/loss (got {sorted(out.metrics)})")
        report.losses = report.losses or losses
        batches.append(batch)
    fresh, _ = _model(objective, tokens, bcls, configs, seed + 1, seq_len)
    check_state_dict(model, mixture, fresh, batches[-1], where)  # every head is in the state dict
    report.notes.append(f"mixture of {', '.join(m.label for m in mixture.members)}: each part checked; "
                        f"compositions not checked")
    return report


def _model(objective: str | type[Objective], tokens: SpecialTokens, bcls: type[Backbone],
           configs: Mapping[str, Mapping[str, Any]] | None, seed: int,
           seq_len: int = 0) -> tuple[torch.nn.Module, Objective]:
    from zoo.zoo_model import ZooModel

    backbone = tiny_backbone(bcls, tokens.vocab_size, seed=seed, max_positions=max(256, seq_len))
    obj = build(objective, tokens, backbone, configs)
    return ZooModel(backbone, obj), obj


def _check_composition(objective: Objective, partner: str, tokens: SpecialTokens, bcls: type[Backbone],
                       configs: Mapping[str, Mapping[str, Any]] | None, seq_len: int, batch_size: int,
                       steps: int, lr: float, seed: int, where: str) -> None:
    from zoo.zoo_model import ZooModel

    backbone = tiny_backbone(bcls, tokens.vocab_size, seed=seed)
    own = type(objective)(objective.config, tokens, backbone.spec, name=objective.name)
    other = build_objective(partner, configs, tokens, backbone.spec)
    combined = compose([(own, 1.0), (other, 0.5)], tokens, backbone.spec)
    model = ZooModel(backbone, combined)
    expected = set(own.heads(backbone)) | set(other.heads(backbone))
    if set(model.heads.keys()) != expected:
        _fail(where, f"heads {sorted(model.heads.keys())}, expected {sorted(expected)}")
    data = make_data(combined, tokens, bcls.family, batch_size, seq_len, seed)
    batch = check_prepare(combined, data, seq_len, seed, where).to("cpu")
    out = model(batch)
    for name in (own.name, other.name):
        if f"{name}/loss" not in out.metrics:
            _fail(where, f"composition metrics lack {name}/loss (got {sorted(out.metrics)})")
    check_training(model, combined, batch, steps, lr, where)
