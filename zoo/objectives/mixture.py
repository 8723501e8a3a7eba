"""Mixtures of objectives: ``mntp:15|clm:1`` (GPT-BERT), ``ul2`` (UL2's mixture of denoisers).

A mixture is itself an ``Objective``. Each optimiser step runs ONE of its parts, drawn by
``Mixture.draw(seed, step)``: a pure function of the run seed and the step number, so every
micro-batch of a gradient-accumulation step and every process run the same part, and a resumed
run draws exactly the parts an uninterrupted one would. The drawn part prepares its own batch
(its own data unit, row length, attention pattern) and computes its own loss on the shared
backbone. Heads are shared between parts whose objectives have the same ``head_key`` (they live
under ``heads.<head_key>``); every other head lives under ``heads.<objective name>`` as usual.

Metrics are namespaced by part: a part named ``clm`` reports ``clm/loss`` and ``clm/acc``; a part
that is a composition (``mlm+sop``) reports ``mlm+sop/loss`` beside its own ``mlm/acc``, ``sop/acc``.

Named mixtures (plugins, ``ul2``) subclass ``Mixture`` and list their ``components``::

    class MyMix(Mixture):
        name = "my-mix"
        components = (Component("short", "span", share=1, config={"mean_span": 3}),
                      Component("lm", "clm", share=1))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from zoo import registry
from zoo.batch import Batch, Segments, SpecialTokens
from zoo.errors import ConfigError, IncompatibleError
from zoo.family import Family
from zoo.models.base import Backbone, BackboneSpec
from zoo.objectives.base import LossOutput, Objective
from zoo.objectives.spec import Spec, parse_spec, require_spec

# Second word of the draw generator's seed, so the draws never share a stream with the batch
# preparation generators ([seed, step, micro-batch]) or the sampler's ([seed, epoch]).
DRAW_STREAM = 0x6D6978


@dataclass(frozen=True)
class Component:
    """One part of a named mixture: ``label`` names it (metrics, ``Batch.targets``, heads that are not
    shared); ``objective`` is a registered objective name; ``config`` sets fields of its Config."""

    label: str
    objective: str
    share: float = 1.0
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Member:
    """A built part of a mixture: its label, its objective (one objective or a composition), its share."""

    label: str
    objective: Objective
    share: float

    def prepare(self, data: Batch | Segments, rng: np.random.Generator) -> Batch:
        """The part's batch, tagged with the part's label so that the mixture routes it."""
        return self.objective.prepare(data, rng).replace(part=self.label)

    def leaves(self) -> list[Objective]:
        return list(getattr(self.objective, "parts", [self.objective]))


class _PartModel:
    """What a part's ``compute`` sees: the shared backbone and its heads by its own objective names."""

    def __init__(self, backbone: Backbone, heads: Mapping[str, nn.Module]) -> None:
        self.backbone = backbone
        self.heads = heads


class Mixture(Objective):
    """Several objectives that take turns: one part per optimiser step, drawn by share."""

    name = "mixture"
    components: ClassVar[tuple[Component, ...]] = ()  # set by named mixtures

    def __init__(self, members: Sequence[Member], tokens: SpecialTokens | None = None,
                 spec: BackboneSpec | None = None, name: str | None = None) -> None:
        if len(members) < 2:
            raise ConfigError("a mixture needs at least two parts")
        labels = [m.label for m in members]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"mixture parts must have distinct labels, got {labels}")
        first = members[0].objective
        super().__init__(None, tokens or first.tokens, spec or first.spec,
                         name=name or "|".join(f"{m.label}:{m.share:g}" for m in members))
        self.members = list(members)
        self.by_label = {m.label: m for m in self.members}
        shares = np.array([m.share for m in self.members], dtype=np.float64)
        if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
            raise ConfigError(f"mixture shares must be positive finite numbers, got {shares.tolist()}")
        self.probabilities = shares / shares.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self.requires = frozenset().union(*(m.objective.requires for m in self.members))
        self.randomized = True
        leaves = [leaf for m in self.members for leaf in m.leaves()]
        keys: dict[str, list[str]] = {}
        for leaf in leaves:
            key = getattr(leaf, "head_key", None)
            if key is not None:
                keys.setdefault(key, []).append(leaf.name)
        # leaf objective name -> key under model.heads (shared key when several leaves share a head)
        self.head_slots = {leaf.name: leaf.name for leaf in leaves}
        for key, names in keys.items():
            if len(names) > 1:
                self.head_slots.update({n: key for n in names})

    def __repr__(self) -> str:
        return f"Mixture({self.name})"

    # --- compatibility (named mixtures: every component must fit) -------------------------------------
    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        """The first component the backbone cannot train, named, with the reason (the one rule of
        ``zoo.objectives.compat``, applied to each component as to each ``|`` part of a spec)."""
        from zoo.objectives import compat

        backbone = SimpleNamespace(capabilities=capabilities, family=family)
        for comp in cls.components:
            reason = compat.incompatibility([(comp.objective, registry.load("objective", comp.objective))], backbone)
            if reason:
                return f"needs every part to fit; part {comp.label}: {reason}"
        return None

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        """The longest of the components' shortest rows: every part must fill the rows it is given."""
        return max((registry.load("objective", c.objective).min_seq_len(family) for c in cls.components),
                   default=super().min_seq_len(family))

    @classmethod
    def declared_special_tokens(cls, config: Any | None) -> tuple[str, ...]:
        """Every component's special tokens (e.g. UL2's paradigm tokens), each once."""
        from zoo.typed_config import from_dict

        out: list[str] = list(cls.special_tokens)
        for comp in cls.components:
            part_cls = registry.load("objective", comp.objective)
            part_config = from_dict(part_cls.Config, dict(comp.config), path=f"{cls.name}.{comp.label}")
            out.extend(t for t in part_cls.declared_special_tokens(part_config) if t not in out)
        return tuple(out)

    @classmethod
    def build(cls, tokens: SpecialTokens, spec: BackboneSpec, config: Any | None = None) -> Mixture:
        """A named mixture from its ``components`` (``config`` is the mixture's own ``Config``)."""
        from zoo.typed_config import from_dict

        if not cls.components:
            raise ConfigError(f"mixture {cls.name!r} lists no components")
        members = []
        for comp in cls.components:
            part_cls = registry.load("objective", comp.objective)
            if issubclass(part_cls, Mixture):
                raise IncompatibleError(f"mixture {cls.name!r}: part {comp.label} is itself a mixture "
                                        f"({comp.objective}); mixtures do not nest")
            part_config = from_dict(part_cls.Config, dict(comp.config), path=f"{cls.name}.{comp.label}")
            members.append(Member(comp.label, part_cls(part_config, tokens, spec, name=comp.label), comp.share))
        mixture = cls(members, tokens, spec, name=cls.name)
        mixture.config = config if config is not None else cls.Config()
        return mixture

    # --- drawing -----------------------------------------------------------------------------------
    def draw(self, seed: int, step: int) -> Member:
        """The part that optimiser step ``step`` (1-based) runs: a pure function of (seed, step)."""
        u = np.random.default_rng([seed, DRAW_STREAM, step]).random()
        index = int(np.searchsorted(self._cumulative, u, side="right"))
        return self.members[min(index, len(self.members) - 1)]

    def part_of(self, batch: Batch) -> Member:
        if batch.part is None or batch.part not in self.by_label:
            raise ValueError(f"mixture {self.name}: batch is not tagged with one of its parts "
                             f"({', '.join(self.by_label)}); prepare it with a member's prepare()")
        return self.by_label[batch.part]

    # --- data ----------------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        units = {m.objective.unit for m in self.members}
        return units.pop() if len(units) == 1 else "rows and segments"

    def prepare(self, data: Batch | Segments, rng: np.random.Generator) -> Batch:
        raise TypeError(f"mixture {self.name} prepares batches through its parts: use "
                        f"mixture.draw(seed, step).prepare(data, rng) or mixture.by_label[part].prepare")

    # --- model ---------------------------------------------------------------------------------
    def heads(self, backbone: Backbone) -> dict[str, nn.Module]:
        out: dict[str, nn.Module] = {}
        for member in self.members:
            for leaf in member.leaves():
                slot = self.head_slots[leaf.name]
                if slot in out:
                    continue  # shared with an earlier part
                built = leaf.heads(backbone)
                if built:
                    out[slot] = built[leaf.name]
        return out

    def build_heads(self, backbone: Backbone) -> nn.Module:
        return nn.ModuleDict(self.heads(backbone))

    def _view(self, backbone: Backbone, heads: Mapping[str, nn.Module]) -> _PartModel:
        return _PartModel(backbone, {leaf: heads[slot] for leaf, slot in self.head_slots.items() if slot in heads})

    def compute(self, model: Any, batch: Batch) -> LossOutput:
        member = self.part_of(batch)
        return self._namespaced(member, member.objective.compute(self._view(model.backbone, model.heads), batch))

    def loss(self, heads: Any, hidden: Tensor, batch: Batch) -> LossOutput:
        member = self.part_of(batch)
        view = self._view(None, heads)  # type: ignore[arg-type]
        obj = member.objective
        own = view.heads if hasattr(obj, "parts") else view.heads.get(obj.name)
        return self._namespaced(member, obj.loss(own, hidden, batch))

    @staticmethod
    def _key(label: str, key: str) -> str:
        return key if "/" in key else f"{label}/{key}"

    def _namespaced(self, member: Member, out: LossOutput) -> LossOutput:
        label = member.label
        metrics: dict[str, Tensor | float] = {self._key(label, k): v for k, v in out.metrics.items()}
        counts: dict[str, Tensor | int] = {self._key(label, k): v for k, v in out.metric_counts.items()}
        metrics[f"{label}/loss"] = out.loss.detach()
        return LossOutput(out.loss, out.count, metrics, counts)

    # --- accounting ------------------------------------------------------------------------------
    def head_flops(self, batch: Batch) -> float:
        return self.part_of(batch).objective.head_flops(batch)

    def backbone_passes(self) -> int:
        """The most of any part; the trainer charges each step with the passes of the part that ran."""
        return max(m.objective.backbone_passes() for m in self.members)

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for member in self.members:
            prefix = f"{member.label}/"
            leaves = {leaf.name for leaf in member.leaves()}
            own: dict[str, float] = {}
            for k, v in means.items():
                if k.startswith(prefix) and "/" not in k[len(prefix):]:
                    own[k[len(prefix):]] = v
                elif k.split("/", 1)[0] in leaves and "/" in k:
                    own[k] = v
            if f"{prefix}loss" not in means:
                continue  # the part did not run in this interval
            out.update({self._key(member.label, k): v for k, v in member.objective.derived_metrics(own).items()})
        return out


@dataclass(frozen=True)
class Leaf:
    """One objective a spec trains, as a run holds it: ``part`` is its mixture part's label, ``name``
    its name in the model (a named mixture's component label, else the objective name; its head lives
    under that name or, when shared, its class's ``head_key``), ``cls`` its registered class."""

    part: str
    name: str
    cls: type[Objective]
    config: Mapping[str, Any] = field(default_factory=dict)  # a named mixture's settings for it


def spec_leaves(spec: Spec) -> list[Leaf]:
    """Every objective of ``spec``, named mixtures expanded into their components, in order. Loads the
    named plugins, builds nothing."""
    parsed = require_spec(spec, "spec_leaves")
    out: list[Leaf] = []
    for part in parsed.parts:
        names = part.composition.names
        classes = [registry.load("objective", n) for n in names]
        if len(classes) == 1 and isinstance(classes[0], type) and issubclass(classes[0], Mixture):
            out.extend(Leaf(c.label, c.label, registry.load("objective", c.objective), c.config)
                       for c in classes[0].components)
        else:
            out.extend(Leaf(part.label, n, c) for n, c in zip(names, classes, strict=True))
    return out


def trained_attention(spec: str, family: str) -> dict[str, str]:
    """The attention pattern each part of ``spec`` trains a ``family`` backbone with: part label ->
    "bidirectional" | "causal" | "prefix". Parts that keep the rows' own layout count as the family's
    default (encoders bidirectional, decoders causal). Loads the named plugins, builds nothing."""
    default = Family.of(family).default_attention
    layouts: dict[str, str | None] = {}
    for leaf in spec_leaves(parse_spec(spec)):
        if layouts.get(leaf.part) is None:  # a composition: its first part that declares a layout
            layouts[leaf.part] = leaf.cls.layout_for(family)
    return {part: layout or default for part, layout in layouts.items()}


def finetune_attention(spec: str | None, family: str) -> str:
    """The attention a run of ``spec`` is fine-tuned with: "bidirectional" when any part trained with
    fully bidirectional attention, else "causal" (causal and prefix-LM parts: the backbone never saw a
    row without a causal part). Without a known objective: the family's default."""
    if not spec:
        return Family.of(family).default_attention
    return "bidirectional" if "bidirectional" in trained_attention(spec, family).values() else "causal"
