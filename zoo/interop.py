"""Transformers interop, in one place: which ``transformers`` classes a backbone and its heads are,
and the translation of configs and weights both ways (``zoo export``, and ``zoo bench`` / ``--init``
reading a transformers directory).

It relies on an optional hook (docs/plugins.md), the same for built-in and plugin backbones:

* a backbone class declares ``hf = HFNames(model_type, base, prefix, heads, ...)`` and implements
  ``hf_config()``, ``hf_state_dict()``, ``load_hf_state_dict(state, strict)`` and the classmethod
  ``config_from_hf(hf_config)``; a backbone without ``hf`` has no transformers counterpart;
* a head module declares ``hf_role`` (one of ``ROLES``) and ``hf_parameters()``: its parameters under
  the names of BERT's head classes (``cls.predictions.*``, ``bert.pooler.*``), where ``bert.`` stands
  for the base model and becomes the backbone's ``hf.prefix``.

Which class an export becomes: the sorted roles of the exported heads looked up in ``hf.heads``
(``("mlm", "nsp")`` -> ``BertForPreTraining``), else ``hf.base`` (the backbone alone).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from zoo import registry
from zoo.batch import SpecialTokens
from zoo.errors import CheckpointError, PluginError
from zoo.family import Family
from zoo.models.attention import AttentionLayout
from zoo.models.base import Backbone, HFNames
from zoo.objectives.base import Objective
from zoo.zoo_model import ZooModel

log = logging.getLogger(__name__)

# Head roles: a masked-LM head (cls.predictions), BERT's next-sentence head (pooler + cls.seq_relationship),
# a pooler whose classifier has no counterpart, a tied causal-LM head (lm_head).
ROLES = ("mlm", "nsp", "pooler", "lm")
_WHERE = {"mlm": "cls.predictions (masked-LM head)", "nsp": "{prefix}.pooler + cls.seq_relationship (next-sentence head)",
          "pooler": "pooler only; its classifier has no transformers counterpart",
          "lm": "lm_head (tied to the token embedding)"}


def hf_names(backbone: Backbone | type[Backbone]) -> HFNames | None:
    """A backbone class's declared names, or an instance's (its config may choose another class)."""
    if not isinstance(backbone, type) and callable(getattr(backbone, "hf_names", None)):
        return backbone.hf_names()
    return getattr(backbone, "hf", None)


def hf_key(name: str, prefix: str, names: HFNames | None = None) -> str:
    """A head parameter name with the base model's ``bert.`` replaced by ``prefix`` (or dropped for the
    base class itself: ``prefix`` ""), and renamed as ``names.head_keys`` says (``cls.predictions.`` ->
    ``lm_head.`` for RoBERTa)."""
    for old, new in (names.head_keys.items() if names is not None else ()):
        if name.startswith(old):
            name = new + name[len(old):]
            break
    if not name.startswith("bert."):
        return name
    return f"{prefix}.{name[5:]}" if prefix else name[5:]


# --- reading a transformers directory --------------------------------------------------------------------

def backbones_by_model_type() -> dict[str, str]:
    """config.json ``model_type`` -> registered backbone that declares it (loads the backbones; a
    plugin that fails to load is skipped; with two for one type, the first by name wins)."""
    out: dict[str, str] = {}
    for name in registry.names("backbone"):
        try:
            names = hf_names(registry.load("backbone", name))
        except PluginError:
            continue
        if names is not None:
            for model_type in (names.model_type, *names.aliases):
                out.setdefault(model_type, name)
    return out


def known_classes() -> list[str]:
    """The transformers classes the registered backbones' adapters declare (their class-level names)."""
    out: list[str] = []
    for name in sorted(set(backbones_by_model_type().values())):
        names = hf_names(registry.load("backbone", name))
        if names is not None:
            out += [c for c in (*names.heads.values(), names.base) if c not in out]
    return out


def read_hf_config(p: Path) -> tuple[str, type[Backbone], Any, dict[str, Any]]:
    """The backbone of a transformers directory from its ``config.json`` alone (no remote code):
    (backbone name, backbone class, our config, the raw config.json)."""
    from transformers import AutoConfig

    try:
        raw = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p / 'config.json'}: cannot read ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{p / 'config.json'}: expected a JSON object")
    model_type = raw.get("model_type")
    types = backbones_by_model_type()
    if model_type not in types:
        archs = ", ".join(raw.get("architectures") or []) or "no architectures listed"
        raise CheckpointError(f"{p / 'config.json'}: model_type {model_type!r} ({archs}) is not supported; "
                              f"expected one of {', '.join(types)} (backbones {', '.join(types.values())})")
    try:
        hf_config = AutoConfig.from_pretrained(str(p))  # local files only, no remote code
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{p / 'config.json'}: not a usable {model_type} config ({exc})") from exc
    name = types[model_type]
    cls = registry.load("backbone", name)
    try:
        config = cls.config_from_hf(hf_config)
    except CheckpointError as exc:  # an option our backbone does not compute
        raise CheckpointError(f"{p / 'config.json'}: {exc}") from exc
    except ValueError as exc:  # sizes our config refuses
        raise CheckpointError(f"{p / 'config.json'}: not a usable {model_type} config ({exc})") from exc
    return name, cls, config, raw


def read_hf_tokenizer(p: Path) -> Tokenizer:
    """``tokenizer.json`` beside a transformers model."""
    tok_path = p / "tokenizer.json"
    if not tok_path.is_file():
        raise CheckpointError(f"{p}: no tokenizer.json beside the weights")
    try:
        return Tokenizer.from_file(str(tok_path))
    except Exception as exc:  # the tokenizers library raises plain Exceptions for bad files
        raise CheckpointError(f"{tok_path}: not a tokenizers JSON file ({exc})") from exc


def read_hf_weights(weights: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors`` file (safetensors only: nothing is unpickled)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise CheckpointError(f"{weights}: cannot read the weights ({exc})") from exc


def load_hf_backbone(backbone: Backbone, state: dict[str, torch.Tensor], weights: Path) -> None:
    """Load transformers tensors into ``backbone``, strictly: every tensor present, no stray layers."""
    try:
        backbone.load_hf_state_dict(state, strict=True)
    except (KeyError, ValueError, CheckpointError) as exc:
        raise CheckpointError(f"{weights}: does not fit config.json ({exc})") from exc


@dataclass
class HFDirectory:
    """A transformers directory, read through the adapter of the backbone that declares its ``model_type``
    (``hf`` / ``hf_names()``, ``config_from_hf``): ``--init``, ``zoo bench`` and zero-shot scoring all open
    one with ``open_hf``."""

    path: Path
    backbone: str  # the registered backbone that reads it
    cls: type[Backbone]
    config: Any  # the backbone's config, from config.json
    raw: dict[str, Any]  # config.json as written
    names: HFNames  # the adapter's transformers names for this config

    @property
    def architectures(self) -> list[str]:
        return [str(a) for a in self.raw.get("architectures") or []]

    @property
    def architecture(self) -> str:
        """The class the directory was saved as (``model_type`` when config.json lists none)."""
        return (self.architectures or [str(self.raw.get("model_type"))])[0]

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"

    def classes(self) -> tuple[str, ...]:
        """Every transformers class the adapter reads: the base model and its head classes."""
        return (self.names.base, *dict.fromkeys(self.names.heads.values()))

    def roles(self) -> tuple[str, ...]:
        """The head roles (``ROLES``) the directory's class holds: () for the base model."""
        return next((key for key, c in self.names.heads.items() if c == self.architecture), ())

    def token_objective(self) -> str | None:
        """The objective whose scorers read the class's token-level head (None: it has none): a masked-LM
        head is ``mlm``, a decoder's LM head ``clm``; an encoder-decoder's decoder is read the way the
        exporting run trained (``zoo_export.json``), else as T5's span corruption (``span-lm``)."""
        roles = self.roles()
        if "mlm" in roles:
            return "mlm"
        if "lm" not in roles:
            return None
        if str(self.cls.family) != "encoder-decoder":
            return "clm"
        recorded = export_record(self.path).get("objective")
        return str(recorded) if isinstance(recorded, str) and recorded else "span-lm"

    def tokenizer(self) -> Tokenizer:
        return read_hf_tokenizer(self.path)

    def load_backbone(self) -> Backbone:
        """The backbone with the directory's weights, strictly."""
        backbone = self.cls(self.config)
        load_hf_backbone(backbone, read_hf_weights(self.weights), self.weights)
        return backbone


def open_hf(path: str | Path) -> HFDirectory:
    """A transformers directory through its backbone's adapter; a ``CheckpointError`` naming the file when
    no registered backbone reads its config.json."""
    p = Path(path)
    name, cls, config, raw = read_hf_config(p)
    with torch.device("meta"):  # the names may depend on the config (bert's pre-LN); no weights are made
        names = hf_names(cls(config))
    if names is None:
        raise CheckpointError(f"{p / 'config.json'}: backbone {name!r} declares no transformers names")
    return HFDirectory(p, name, cls, config, raw, names)


def load_hf_model(model: nn.Module, weights: Path, where: str, architecture: str) -> tuple[dict[str, str], list[str]]:
    """Load a transformers checkpoint (``weights`` of class ``architecture``) into a ``ZooModel``: the
    backbone strictly, each head whose role the checkpoint holds (``load_hf_heads``)."""
    state = read_hf_weights(weights)
    load_hf_backbone(model.backbone, state, weights)
    return load_hf_heads(model.backbone, dict(model.heads.items()), state, weights, where, architecture)


def load_hf_heads(backbone: Backbone, heads: dict[str, nn.Module], state: dict[str, Tensor], weights: Path,
                  where: str, architecture: str) -> tuple[dict[str, str], list[str]]:
    """Copy into each of ``heads`` the tensors of its role (``hf_role``) that ``state`` holds. Returns (head ->
    where it came from, or "new"; the checkpoint's head groups nothing used). ``where`` starts each error."""
    if getattr(backbone, "lm_head", None) is None:  # an untied T5 (v1.1) holds its lm_head itself
        _check_tied(where, state)
    names = hf_names(backbone)
    prefix = names.prefix if names is not None else ""
    used: set[str] = set()  # keys of ``state`` copied into a head
    out: dict[str, str] = {}
    for name, head in heads.items():
        role = getattr(head, "hf_role", None)  # the transformers hook (zoo.interop)
        if role == "mlm":
            got = _copy_hf(where, weights, head.hf_parameters(), state, used, prefix, names)
            out[name] = _mlm_module(names) if got else "new"
        elif role in ("nsp", "pooler"):  # the classifier of any pair task but NSP has no counterpart
            nsp = role == "nsp"
            params = {k: v for k, v in head.hf_parameters().items() if nsp or k.startswith("bert.pooler.")}
            got = _copy_hf(where, weights, params, state, used, prefix, names)
            out[name] = "new" if not got else (f"{prefix}.pooler + cls.seq_relationship" if nsp
                                               else f"{prefix}.pooler; classifier new")
        elif role == "lm" and "lm_head.weight" in state:
            used.add("lm_head.weight")
            out[name] = "lm_head (tied to the token embedding)"
        elif role == "lm" and names is not None and architecture == names.heads.get(("lm",)):
            out[name] = "lm_head (tied to the token embedding)"  # saved without the tied copy
        else:
            out[name] = "new"
    groups = ("cls.predictions", "cls.seq_relationship", "bert.pooler", "pooler", "lm_head")
    tied = {"cls.predictions.decoder.weight", hf_key("cls.predictions.decoder.weight", prefix, names)}
    unused = sorted({g.removeprefix("bert.") for k in state if k not in used and k not in tied
                     for g in groups if k.startswith(g + ".")})
    return out, unused


def _mlm_module(names: HFNames | None) -> str:
    """Where the masked-LM head lives: ``cls.predictions`` (BERT) or as ``names.head_keys`` renames it."""
    return hf_key("cls.predictions.bias", "", names).rsplit(".", 1)[0]


def _copy_hf(where: str, weights: Path, params: dict[str, nn.Parameter], state: dict[str, torch.Tensor],
             used: set[str], prefix: str, names: HFNames | None = None) -> bool:
    """Copy one head's tensors from ``state`` (a base class's keys lack the ``prefix``, e.g. ``bert.``);
    False when the checkpoint holds none of them."""
    keys = {k: hf_key(k, prefix, names) if hf_key(k, prefix, names) in state else hf_key(k, "", names)
            for k in params}
    present = [k for k, key in keys.items() if key in state]
    if not present:
        return False
    missing = [k for k, key in keys.items() if key not in state]
    if missing:
        raise CheckpointError(f"{where}: {weights} holds part of a head ({present[0]}) but not "
                              f"{missing[0]}")
    with torch.no_grad():
        for k, param in params.items():
            t = state[keys[k]]
            if t.shape != param.shape:
                raise CheckpointError(f"{where}: {keys[k]} has shape {tuple(t.shape)}, expected "
                                      f"{tuple(param.shape)}")
            param.copy_(t)
    used.update(keys.values())
    if "cls.predictions.bias" in keys:  # the decoder's bias, stored twice by transformers
        used.add(hf_key("cls.predictions.decoder.bias", prefix, names))
    return True


def _check_tied(where: str, state: dict[str, torch.Tensor]) -> None:
    """Our output heads are tied to the token embedding; refuse a checkpoint whose decoder is not."""
    pairs = (("cls.predictions.decoder.weight", ("bert.embeddings.word_embeddings.weight",
                                                 "embeddings.word_embeddings.weight")),
             ("lm_head.decoder.weight", ("roberta_prelayernorm.embeddings.word_embeddings.weight",
                                         "embeddings.word_embeddings.weight")),
             ("lm_head.weight", ("transformer.wte.weight", "wte.weight", "shared.weight")))
    for head, embeddings in pairs:
        if head in state:
            emb = next((state[e] for e in embeddings if e in state), None)
            if emb is None or not torch.equal(state[head], emb):
                raise CheckpointError(f"{where}: {head} is not tied to the token embedding; "
                                      f"objective-zoo's output heads are tied, so these weights cannot be loaded")


# --- zero-shot scoring of a transformers directory ------------------------------------------------------------

def export_record(path: Path) -> dict[str, Any]:
    """``zoo_export.json`` of an exported directory ({} when absent or unreadable: saved by transformers)."""
    try:
        record = json.loads((path / "zoo_export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


# --- writing one: which heads go where ----------------------------------------------------------------------

@dataclass
class HeadPlan:
    """Which of a model's heads a transformers class holds, by role."""

    names: HFNames
    family: Family
    chosen: dict[str, nn.Module] = field(default_factory=dict)  # role -> head ("pooler": see below)
    pooler: nn.Module | None = None  # a sentence-pair head whose pooler the base class can keep
    heads: dict[str, str] = field(default_factory=dict)  # head slot -> where it went
    notes: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        return self.names.heads.get(tuple(sorted(self.chosen)), self.names.base)

    @property
    def prefix(self) -> str:
        """Where the backbone's tensors live in ``architecture``: "" for the base class."""
        return "" if self.architecture == self.names.base else self.names.prefix


def _parts(objective: Objective) -> list[tuple[Objective, str]]:
    """Every objective with a head, and the key of its head under ``model.heads`` (a mixture's parts
    with one ``head_key`` share one head; it is planned once)."""
    members = getattr(objective, "members", None)
    leaves = [leaf for m in members for leaf in m.leaves()] if members else \
        list(getattr(objective, "parts", None) or [objective])
    slots = getattr(objective, "head_slots", {})
    out, seen = [], set()
    for leaf in leaves:
        slot = slots.get(leaf.name, leaf.name)
        if slot not in seen:
            seen.add(slot)
            out.append((leaf, slot))
    return out


def plan_heads(model: ZooModel, names: HFNames | None = None) -> HeadPlan:
    """Map the model's heads onto the transformers classes its backbone declares."""
    names = names or hf_names(model.backbone)
    if names is None:
        raise PluginError(f"backbone {model.backbone.name!r} declares no transformers names (hf = HFNames(...))")
    plan = HeadPlan(names, Family.of(model.backbone.family))
    offered = {role for key in names.heads for role in key} | ({"pooler"} if names.pooler else set())
    for _, slot in _parts(model.objective):
        head = model.heads[slot] if slot in model.heads else None
        if head is None:
            continue
        role = getattr(head, "hf_role", None)
        if role in offered and role not in plan.chosen and not (role == "pooler" and plan.pooler is not None):
            if role == "pooler":
                plan.pooler = head
            else:
                plan.chosen[role] = head
            where = _WHERE[role].format(prefix=names.prefix)
            plan.heads[slot] = where.replace("cls.predictions", _mlm_module(names)) if role == "mlm" else where
        else:
            plan.heads[slot] = "not exported: no transformers counterpart"
            plan.notes.append(f"head {slot} ({type(head).__name__}) has no transformers counterpart; it is not exported")
    if plan.pooler is not None and plan.chosen:
        name = next(p for p, h in plan.heads.items() if h.startswith("pooler only"))
        if "nsp" not in plan.chosen:  # a head class without a pooler
            plan.heads[name] = f"not exported: {plan.architecture} has no pooler and no sentence-pair classifier"
            plan.notes.append(f"head {name} (pooler and classifier) is not exported: {plan.architecture} has neither")
        plan.pooler = None
    elif plan.pooler is not None:
        plan.notes.append(f"the sentence-pair classifier has no transformers counterpart; {names.base} keeps the "
                          f"pooler it trained")
    if plan.architecture == names.base:
        plan.notes.append(f"exported the backbone only, as {plan.architecture}: no head of "
                          f"{model.objective.name!r} has a transformers counterpart")
        if names.pooler and plan.pooler is None:
            plan.notes.append(f"no pooler was trained; {names.base} is exported without one (transformers "
                              f"initialises a fresh pooler if you load it with AutoModel)")
    return plan


def hf_state_dict(model: ZooModel, plan: HeadPlan) -> dict[str, Tensor]:
    """Tensors under the parameter names of ``plan.architecture`` (tied weights left out)."""
    prefix, names = plan.prefix, plan.names
    state = {(f"{prefix}." if prefix else "") + k: v for k, v in model.backbone.hf_state_dict().items()}
    for head in plan.chosen.values():
        if hasattr(head, "hf_state_dict"):
            state.update({hf_key(k, prefix, names): v for k, v in head.hf_state_dict().items()})
    if plan.pooler is not None:  # the base class: the pooler only
        state.update({hf_key(k, "", names): v for k, v in plan.pooler.hf_state_dict().items()
                      if k.startswith("bert.pooler.")})
    return state


def _positions_after_pad(config: Any, state: dict[str, Tensor], plan: HeadPlan) -> None:
    """RoBERTa numbers positions from ``pad_token_id + 1``: put our table's row i at row pad + 1 + i
    (the rows before it, which no token reads, are zeros) and count those rows in the config."""
    pad = config.pad_token_id
    if pad is None:
        raise PluginError(f"{plan.architecture} numbers positions from the padding id, and the tokenizer has none")
    key = (f"{plan.prefix}." if plan.prefix else "") + "embeddings.position_embeddings.weight"
    table = state[key]
    state[key] = torch.cat([table.new_zeros(pad + 1, table.shape[1]), table])
    config.max_position_embeddings = table.shape[0] + pad + 1
    plan.notes.append(f"{plan.architecture} numbers positions from pad_token_id + 1 = {pad + 1}: the position "
                      f"table holds {pad + 1} unused zero row(s) before the {table.shape[0]} trained ones, so "
                      f"unpadded or right-padded inputs see the trained positions")


def _set_token_ids(config: Any, tokens: SpecialTokens, family: Family) -> None:
    config.pad_token_id = tokens.pad
    eos = tokens.eos
    # GPT-2 convention: <|endoftext|> begins and ends texts; an encoder has neither unless the tokenizer does
    config.bos_token_id = tokens.bos if tokens.bos is not None else (eos if family == Family.DECODER else None)
    config.eos_token_id = eos
    if family == Family.ENCODER_DECODER:  # T5 starts the decoder with the pad token
        config.decoder_start_token_id = tokens.pad
    for role in ("cls", "sep", "mask"):
        value = getattr(tokens, role)
        if value is not None:
            setattr(config, f"{role}_token_id", value)


def build_hf_model(model: ZooModel, plan: HeadPlan, tokens: SpecialTokens) -> nn.Module:
    """The transformers model holding the run's weights (eval mode)."""
    import transformers

    config = model.backbone.hf_config()
    _set_token_ids(config, tokens, plan.family)
    state = hf_state_dict(model, plan)
    if plan.names.positions_after_pad:
        _positions_after_pad(config, state, plan)
    cls = getattr(transformers, plan.architecture)
    hf = cls(config, add_pooling_layer=plan.pooler is not None) if plan.architecture == plan.names.base \
        and plan.names.pooler else cls(config)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    tied = set(getattr(hf, "_tied_weights_keys", None) or {})
    prefix = f"{plan.prefix}." if plan.prefix else ""
    generated = {prefix + k for k in plan.names.generated}
    untied = sorted(set(missing) - tied - generated)
    if untied or unexpected:
        raise PluginError(f"backbone {model.backbone.name!r}: its hf_state_dict() does not fit {plan.architecture}: "
                          f"missing {untied[:4]}, unexpected {sorted(unexpected)[:4]}")
    if hasattr(hf, "tie_weights"):
        hf.tie_weights()
    return hf.eval()


@torch.no_grad()
def compare_outputs(model: ZooModel, hf: nn.Module, plan: HeadPlan, input_ids: Tensor,
                    token_type_ids: Tensor | None = None) -> dict[str, float]:
    """Max |difference| of every exported output, run model vs transformers model, on ``input_ids``
    (B, T) without padding. Keys: hidden, pooler, mlm, nsp, lm (those that exist)."""
    model.eval()
    if plan.family == Family.ENCODER_DECODER:
        return _compare_seq2seq(model, hf, plan, input_ids)
    causal = plan.family == Family.DECODER
    layout = AttentionLayout(causal=causal, doc_ids=torch.zeros_like(input_ids, dtype=torch.int32))
    hidden = model.backbone(input_ids, layout, token_type_ids=None if causal else token_type_ids)  # (B, T, h)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if not causal and token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    out = hf(**kwargs)
    diffs: dict[str, float] = {}

    def diff(name: str, ours: Tensor, theirs: Tensor) -> None:
        diffs[name] = float((ours.float() - theirs.float()).abs().max())

    if plan.architecture == plan.names.base:
        diff("hidden", hidden, out.last_hidden_state)
        if plan.pooler is not None:
            diff("pooler", torch.tanh(plan.pooler.pooler(hidden[:, 0])), out.pooler_output)
    both = len(plan.chosen) > 1  # a pre-training class names each head's logits
    for role, head in plan.chosen.items():
        theirs = {"mlm": "prediction_logits", "nsp": "seq_relationship_logits"}.get(role) if both else "logits"
        diff(role, head(hidden), getattr(out, theirs or "logits"))
    return diffs


# --- encoder-decoder (t5): T5Model / T5ForConditionalGeneration ------------------------------------------

@torch.no_grad()
def _compare_seq2seq(model: ZooModel, hf: nn.Module, plan: HeadPlan, input_ids: Tensor) -> dict[str, float]:
    """``compare_outputs`` for an encoder-decoder: ``input_ids`` is the encoder's input and, shifted right
    behind the start token, the decoder's. Keys: hidden (decoder states, base class), lm (logits)."""
    start = getattr(hf.config, "decoder_start_token_id", None)
    decoder_ids = torch.cat([torch.full_like(input_ids[:, :1], 0 if start is None else start), input_ids[:, :-1]], 1)
    layout = AttentionLayout(doc_ids=torch.zeros_like(input_ids, dtype=torch.int32))
    hidden = model.backbone(input_ids, layout, decoder_input_ids=decoder_ids)  # (B, Td, h)
    ones = torch.ones_like(input_ids)
    out = hf(input_ids=input_ids, attention_mask=ones, decoder_input_ids=decoder_ids, decoder_attention_mask=ones)
    diffs: dict[str, float] = {}
    if plan.architecture == plan.names.base:
        diffs["hidden"] = float((hidden.float() - out.last_hidden_state.float()).abs().max())
    for role, head in plan.chosen.items():
        diffs[role] = float((head(hidden).float() - out.logits.float()).abs().max())
    return diffs


def require_hf(backbone: Backbone, origin: str) -> HFNames:
    """The backbone's transformers names and config, or a ``PluginError`` saying it has none."""
    names = hf_names(backbone)
    try:
        if names is None:
            raise NotImplementedError
        config = backbone.hf_config()
        backbone.hf_state_dict()
    except NotImplementedError as exc:
        raise PluginError(f"backbone {backbone.name!r} ({origin}) has no transformers counterpart: it does not "
                          f"declare the transformers hook (hf = HFNames(...), hf_config(), hf_state_dict())") from exc
    if getattr(config, "model_type", None) != names.model_type:
        raise PluginError(f"backbone {backbone.name!r} ({origin}) exports a {getattr(config, 'model_type', None)!r} "
                          f"config but declares model_type {names.model_type!r}")
    return names
