"""Composition of objectives: ``mlm+nsp``, with optional weights ``mlm:1.0+nsp:0.5``.

A composition is itself an ``Objective``: parts prepare in a defined order (pair builders first,
then the parts that mask or label the rows), the backbone runs once, each part computes its loss
with its own head (``heads.<part>.*``), losses add with their weights, and metrics are namespaced
(``mlm/acc``, ``nsp/loss``). ``check_compatible`` validates a spec against a backbone class before
anything is allocated, with the rule of ``zoo.objectives.compat``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from zoo import registry
from zoo.batch import Batch, Segments, SpecialTokens
from zoo.errors import ConfigError, IncompatibleError, PluginError
from zoo.models.base import Backbone, BackboneSpec
from zoo.objectives import compat
from zoo.objectives.base import LossOutput, Objective
from zoo.objectives.compat import conflicts  # noqa: F401 - re-exported, part of the rule
from zoo.objectives.spec import Spec, require_spec
from zoo.typed_config import from_dict

ROLE_ORDER = {"pairs": 0, "tokens": 1}


def _load(name: str) -> type[Objective]:
    return registry.load("objective", name)


def compatible_objectives(backbone_cls: type[Backbone], limit: int | None = None) -> list[str]:
    """Registered objectives (and pair-builder + token compositions) that can train ``backbone_cls``
    (the first ``limit`` of them; every one by default)."""
    singles: list[tuple[str, type[Objective]]] = []
    for name in registry.names("objective"):
        try:
            cls = _load(name)
        except PluginError:
            continue
        if compat.compatible([(name, cls)], backbone_cls):
            singles.append((name, cls))
    out = [n for n, _ in singles]
    pairs = [(n, c) for n, c in singles if c.role == "pairs"]
    tokens = [(n, c) for n, c in singles if c.role != "pairs"]
    for t in tokens:
        for p in pairs:
            if compat.compatible([t, p], backbone_cls):
                out.append(f"{t[0]}+{p[0]}")
    return out[:limit] if limit is not None else out


def compatible_backbones(parts: Sequence[tuple[str, type[Objective]]]) -> list[str]:
    out = []
    for name in registry.names("backbone"):
        try:
            cls = registry.load("backbone", name)
        except PluginError:
            continue
        if compat.compatible(parts, cls):
            out.append(name)
    return out


def _named_mixture(name: str) -> bool:
    from zoo.objectives.mixture import Mixture

    cls = _load(name)
    return isinstance(cls, type) and issubclass(cls, Mixture)


def _refuse_nested(parsed: Spec) -> None:
    if len(parsed.parts) == 1 and parsed.parts[0].composition.single:
        return  # one name alone, e.g. "ul2": a named mixture is fine on its own
    for name in parsed.names:
        if _named_mixture(name):
            raise IncompatibleError(f"objective {name!r} in {parsed.text!r} is a mixture of its own; mixtures do not "
                                    f"nest or compose: train {name} alone")


def check_compatible(spec: Spec, backbone_cls: type[Backbone]) -> None:
    """Raise ``IncompatibleError`` (with the reason and what would work) unless ``spec`` can train
    ``backbone_cls``. A mixture is checked part by part (``compat.incompatibility`` per ``|`` part) and
    the error names the part. Imports the named plugins, allocates nothing."""
    parsed = require_spec(spec, "check_compatible")
    text = parsed.text
    _refuse_nested(parsed)
    bname = getattr(backbone_cls, "name", backbone_cls.__name__)
    for part in parsed.parts:
        parts = [(name, _load(name)) for name in part.composition.names]
        reason = compat.incompatibility(parts, backbone_cls)
        if reason is None:
            continue
        if parsed.is_mixture:
            raise IncompatibleError(f"objective {text!r} cannot train backbone {bname!r}: mixture part "
                                    f"{part.label!r}: {reason}")
        hints = []
        backbones = [b for b in compatible_backbones(parts) if b != bname]
        if backbones:
            hints.append(f"--backbone {' or '.join(backbones)}")
        objectives = compatible_objectives(backbone_cls)
        singles = [o for o in objectives if "+" not in o]  # every one; compositions by example
        if singles:
            pairs = [o for o in objectives if "+" in o][:2]
            hints.append(f"an objective for {bname}: {', '.join(singles)}"
                         + (f" (or compositions such as {', '.join(pairs)})" if pairs else ""))
        hint = f"; try {', or '.join(hints)}" if hints else ""
        raise IncompatibleError(f"objective {text!r} cannot train backbone {bname!r}: {reason}{hint}")


def declared_special_tokens(spec: Spec, configs: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, ...]:
    """The extra special tokens the parts of ``spec`` declare with their ``[objectives.<name>]`` options,
    in order, each once: what the run's tokenizer must reserve. Imports the named plugins only."""
    configs = configs or {}
    out: list[str] = []
    for name in require_spec(spec, "declared_special_tokens").names:
        cls = _load(name)
        config = from_dict(cls.Config, configs.get(name), path=f"objectives.{name}")
        out.extend(t for t in cls.declared_special_tokens(config) if t not in out)
    return tuple(out)


def _check_special_tokens(objective: Objective, tokens: SpecialTokens) -> None:
    missing = [t for t in type(objective).declared_special_tokens(objective.config) if t not in tokens.extra]
    if missing:
        have = ", ".join(sorted(tokens.extra)) or "none"
        raise ConfigError(f"objective {objective.name!r} needs the special token(s) {', '.join(missing)}, which "
                          f"the tokenizer lacks (its extra special tokens: {have}); a tokenizer trained for this "
                          f"run reserves them, a given one (tokenizer.path) must already have them")


def build_objective(spec: Spec, configs: Mapping[str, Mapping[str, Any]] | None, tokens: SpecialTokens,
                    backbone_spec: BackboneSpec) -> Objective:
    """The objective named by ``spec``: one part as itself, several (or a weighted one) as a ``Composite``,
    parts separated by ``|`` (or a registered named mixture) as a ``Mixture``.

    ``configs`` maps objective names to their ``[objectives.<name>]`` tables.
    """
    configs = configs or {}
    parsed = require_spec(spec, "build_objective")
    text = parsed.text
    _refuse_nested(parsed)
    built = []
    for part in parsed.parts:
        classes = [(t.name, _load(t.name)) for t in part.composition.terms]
        reason = compat.incompatibility(classes, backbone_spec)
        if reason:
            where = f"mixture part {part.label!r}: " if parsed.is_mixture else ""
            raise IncompatibleError(f"objective {text!r} cannot train backbone {backbone_spec.name!r}: {where}{reason}")
        objectives = []
        for term, (name, cls) in zip(part.composition.terms, classes, strict=True):
            config = from_dict(cls.Config, configs.get(name), path=f"objectives.{name}")
            if _named_mixture(name):
                objective: Objective = cls.build(tokens, backbone_spec, config)
            else:
                objective = cls(config, tokens, backbone_spec, name=name)
            _check_special_tokens(objective, tokens)
            objectives.append((objective, term.weight))
        one = objectives[0][0] if part.composition.single else Composite(objectives, tokens, backbone_spec)
        built.append((part, one))
    if not parsed.is_mixture:
        return built[0][1]
    from zoo.objectives.mixture import Member, Mixture

    return Mixture([Member(part.label, obj, part.share) for part, obj in built], tokens, backbone_spec,
                   name=text.replace(" ", ""))


def compose(parts: Sequence[tuple[Objective, float]], tokens: SpecialTokens | None = None,
            spec: BackboneSpec | None = None) -> Composite:
    """A composition of already-built objectives (what ``build_objective`` does after loading them)."""
    return Composite(parts, tokens, spec)


class Composite(Objective):
    """Several objectives trained together on one forward pass of the backbone."""

    name = "composite"

    def __init__(self, parts: Sequence[tuple[Objective, float]], tokens: SpecialTokens | None = None,
                 spec: BackboneSpec | None = None) -> None:
        if not parts:
            raise ConfigError("a composition needs at least one objective")
        first = parts[0][0]
        tokens = tokens or first.tokens
        spec = spec or first.spec
        reason = compat.incompatibility([(p.name, type(p)) for p, _ in parts], spec)
        if reason:
            raise IncompatibleError(f"cannot compose {'+'.join(p.name for p, _ in parts)}: {reason}")
        ordered = sorted(parts, key=lambda pw: ROLE_ORDER.get(pw[0].role, 1))  # stable
        super().__init__(None, tokens, spec, name="+".join(p.name for p, _ in parts))
        self.parts = [p for p, _ in ordered]
        self.weights = {p.name: float(w) for p, w in ordered}
        self.role = "pairs" if any(p.role == "pairs" for p in self.parts) else "tokens"
        self.requires = frozenset().union(*(p.requires for p in self.parts))
        self.corrupts_inputs = any(p.corrupts_inputs for p in self.parts)
        self.randomized = any(p.randomized for p in self.parts)
        self.attention = next((p.layout_for(spec.family) for p in self.parts
                               if p.layout_for(spec.family) is not None), None)

    def __repr__(self) -> str:
        return "Composite(" + " + ".join(f"{p.name}:{self.weights[p.name]:g}" for p in self.parts) + ")"

    # --- data ----------------------------------------------------------------------------------
    def row_length(self, seq_len: int) -> int:
        for part in reversed(self.parts):  # the last part produces seq_len rows
            seq_len = part.row_length(seq_len)
        return seq_len

    def prepare(self, data: Batch | Segments, rng: np.random.Generator) -> Batch:
        out: Any = data
        for part in self.parts:
            before = out.input_ids.shape if isinstance(out, Batch) else None
            earlier = sorted(out.targets) if isinstance(out, Batch) else []
            out = part.prepare(out, rng)
            if before is not None and earlier and tuple(out.input_ids.shape) != tuple(before):
                raise IncompatibleError(
                    f"cannot compose {self.name}: {part.name} changed the rows from shape {tuple(before)} to "
                    f"{tuple(out.input_ids.shape)} after {' and '.join(earlier)} made targets for the old rows; "
                    f"a part that rebuilds rows must set `rebuilds_rows` and be trained alone")
        return out

    # --- model ---------------------------------------------------------------------------------
    def heads(self, backbone: Backbone) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for part in self.parts:
            out.update(part.heads(backbone))
        return out

    def _own_compute(self, part: Objective) -> bool:
        return type(part).compute is not Objective.compute

    def compute(self, model: Any, batch: Batch) -> LossOutput:
        """Weighted sum of the parts' losses: one backbone pass for the parts that use ``Objective.compute``
        (their ``loss`` on the shared hidden states), each other part's own ``compute``."""
        outs: dict[str, LossOutput] = {}
        shared = [p for p in self.parts if not self._own_compute(p)]
        hidden = model.backbone(**batch.backbone_inputs()) if shared else None
        for p in self.parts:
            if self._own_compute(p):
                outs[p.name] = p.compute(model, batch)
            else:
                outs[p.name] = p.loss(model.heads[p.name] if p.name in model.heads else None, hidden, batch)
        return self._combine(outs, batch)

    def _combine(self, outs: dict[str, LossOutput], batch: Batch) -> LossOutput:
        total: Tensor | None = None
        metrics: dict[str, Tensor | float] = {}
        counts: dict[str, Tensor | int] = {}
        for name, out in outs.items():
            term = self.weights[name] * out.loss
            total = term if total is None else total + term
            part_metrics = {"loss": out.loss.detach(), **out.metrics}
            for key, value in part_metrics.items():
                metrics[f"{name}/{key}"] = value
                counts[f"{name}/{key}"] = out.metric_counts.get(key, out.count)
        assert total is not None
        rows = int(batch.input_ids.shape[0])
        metrics["loss"] = total.detach()
        return LossOutput(total, total.new_tensor(rows, dtype=torch.long), metrics, metric_counts=counts)

    # --- accounting ------------------------------------------------------------------------------
    def head_flops(self, batch: Batch) -> float:
        return float(sum(p.head_flops(batch) for p in self.parts))

    def backbone_passes(self) -> int:
        """One shared pass for the ordinary parts, plus the passes of parts with their own ``compute``."""
        own = [p for p in self.parts if self._own_compute(p)]
        return (len(own) < len(self.parts)) + sum(p.backbone_passes() for p in own)

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.parts:
            prefix = f"{p.name}/"
            own = {k[len(prefix):]: v for k, v in means.items() if k.startswith(prefix)}
            out.update({f"{prefix}{k}": v for k, v in p.derived_metrics(own).items()})
        return out
