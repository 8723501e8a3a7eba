"""The conformance checks of objective plugins: ``check_objective`` and what it is made of."""

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
from zoo.batch import Batch, Segments, SpecialTokens
from zoo.errors import IncompatibleError
from zoo.models.base import Backbone
from zoo.objectives import compat
from zoo.objectives.base import LossOutput, Objective
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import (
    Composite,
    build_objective,
    check_compatible,
    compose,
    declared_special_tokens,
)
from zoo.objectives.mixture import Mixture
from zoo.objectives.spec import parse_spec
from zoo.testing.fixtures import (
    FAMILIES,
    special_tokens_for_tests,
    synthetic_rows,
    synthetic_segments,
    tiny_backbone,
)
from zoo.typed_config import from_dict

LAYOUTS = (None, "bidirectional", "causal", "prefix")


class ConformanceError(AssertionError):
    """A plugin does not satisfy its contract."""


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
        return [(name, registry.load("objective", name)) for name in parse_spec(objective).names]
    return [(objective.name, objective)]


def _incompatibility(objective: str | type[Objective], backbone: type[Backbone]) -> str | None:
    """The one compatibility rule, applied per ``|`` part of a mixture spec."""
    if not isinstance(objective, str):
        return compat.incompatibility([(objective.name, objective)], backbone)
    for part in parse_spec(objective).parts:
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
        return build_objective(parse_spec(objective), configs, tokens, backbone.spec)
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
            check_compatible(parse_spec(spec), bcls)
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
        declared = declared_special_tokens(parse_spec(objective), configs)
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
    other = build_objective(parse_spec(partner), configs, tokens, backbone.spec)
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
