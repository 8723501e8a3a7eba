"""Export a run to a Hugging Face ``transformers`` directory: ``zoo export RUN --to hf OUT``.

What is written (``OUT/``): ``config.json`` (with ``architectures`` and the special-token ids),
``model.safetensors``, ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``
(``vocab.txt`` for WordPiece), ``README.md`` (a short model card) and ``zoo_export.json``
(provenance: run, step, checkpoint hash, what became of each head).

Which class the heads map onto:

    bert  MLM head (mlm, span)  + NSP head   BertForPreTraining
          MLM head only (mlm, mlm+sop, span) BertForMaskedLM
          NSP head only (nsp)                BertForNextSentencePrediction
          otherwise (sop, rtd, ...)          BertModel (with the pooler a sentence-pair head trained)
    gpt   tied LM head (clm, prefix, span)   GPT2LMHeadModel
          otherwise                          GPT2Model

Heads without a ``transformers`` counterpart (SOP's order classifier, a plugin's generator) are
left out, logged, and listed in the result's notes. The exported model is checked against the
run's model on a few tokens before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo import __version__, registry
from zoo.batch import SpecialTokens
from zoo.errors import CheckpointError, ConfigError, PluginError
from zoo.model import ZooModel
from zoo.models.attention import AttentionLayout
from zoo.objectives.base import Objective, TiedLinear
from zoo.objectives.mixture import finetune_attention, trained_attention
from zoo.objectives.mlm import MaskedLMHead
from zoo.objectives.nsp import NextSentencePrediction
from zoo.objectives.pairs import PairHead
from zoo.runs import Run, open_run
from zoo.train import checkpoint as ckpt

log = logging.getLogger(__name__)

FORMATS = ("hf",)
# Files an export owns: with ``force`` they are replaced, and removed when the new export lacks them.
_OWNED = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
          "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "README.md",
          "zoo_export.json")
SELF_CHECK_TOLERANCE = 1e-3  # max |difference| of any output between the run's model and the export


@dataclass
class ExportResult:
    out: Path
    architecture: str  # the transformers class, e.g. "BertForPreTraining"
    step: int
    heads: dict[str, str]  # objective part -> where its head went (or why it was left out)
    notes: list[str] = field(default_factory=list)
    attention: dict[str, str] = field(default_factory=dict)  # objective part -> pattern it trained with
    max_abs_diff: float = 0.0  # self-check: largest output difference, run model vs export


@dataclass
class _Plan:
    """Which heads go where."""

    family: str  # "bert" | "gpt2"
    mlm: MaskedLMHead | None = None
    nsp: PairHead | None = None
    pooler: PairHead | None = None  # a sentence-pair head whose pooler BertModel can keep
    lm: TiedLinear | None = None
    heads: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        if self.family == "gpt2":
            return "GPT2LMHeadModel" if self.lm is not None else "GPT2Model"
        if self.mlm is not None:
            return "BertForPreTraining" if self.nsp is not None else "BertForMaskedLM"
        return "BertForNextSentencePrediction" if self.nsp is not None else "BertModel"


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


def plan_heads(model: ZooModel, family: str) -> _Plan:
    """Map the model's heads onto a transformers architecture of ``family`` ("bert" / "gpt2")."""
    plan = _Plan(family)
    for part, slot in _parts(model.objective):
        head = model.heads[slot] if slot in model.heads else None
        if head is None:
            continue
        what = f"{slot} ({type(head).__name__})"
        if family == "bert" and isinstance(head, MaskedLMHead) and plan.mlm is None:
            plan.mlm = head
            plan.heads[slot] = "cls.predictions (masked-LM head)"
        elif family == "bert" and isinstance(head, PairHead) and isinstance(part, NextSentencePrediction) \
                and plan.nsp is None:
            plan.nsp = head
            plan.heads[slot] = "bert.pooler + cls.seq_relationship (next-sentence head)"
        elif family == "bert" and isinstance(head, PairHead) and plan.pooler is None:
            plan.pooler = head
            plan.heads[slot] = "pooler only; its classifier has no transformers counterpart"
        elif family == "gpt2" and isinstance(head, TiedLinear) and head.bias is None and plan.lm is None:
            plan.lm = head
            plan.heads[slot] = "lm_head (tied to the token embedding)"
        else:
            plan.heads[slot] = "not exported: no transformers counterpart"
            plan.notes.append(f"head {what} has no transformers counterpart; it is not exported")
    if plan.pooler is not None and (plan.nsp is not None or plan.mlm is not None):
        name = next(p for p, h in plan.heads.items() if h.startswith("pooler only"))
        if plan.nsp is None:  # BertForMaskedLM has no pooler
            plan.heads[name] = "not exported: BertForMaskedLM has no pooler and no sentence-pair classifier"
            plan.notes.append(f"head {name} (pooler and classifier) is not exported: BertForMaskedLM has neither")
        plan.pooler = None
    elif plan.pooler is not None:
        plan.notes.append("the sentence-pair classifier has no transformers counterpart; BertModel keeps the "
                          "pooler it trained")
    if plan.architecture in ("BertModel", "GPT2Model"):
        plan.notes.append(f"exported the backbone only, as {plan.architecture}: no head of "
                          f"{model.objective.name!r} has a transformers counterpart")
        if family == "bert" and plan.pooler is None:
            plan.notes.append("no pooler was trained; BertModel is exported without one (transformers "
                              "initialises a fresh pooler if you load it with AutoModel)")
    return plan


def _hf_classes(architecture: str) -> Any:
    import transformers

    return getattr(transformers, architecture)


def hf_state_dict(model: ZooModel, plan: _Plan) -> dict[str, Tensor]:
    """Tensors under the parameter names of ``plan.architecture`` (tied weights left out)."""
    base = model.backbone.hf_state_dict()
    arch = plan.architecture
    prefix = {"BertModel": "", "GPT2Model": "", "GPT2LMHeadModel": "transformer."}.get(arch, "bert.")
    state = {prefix + k: v for k, v in base.items()}
    if plan.mlm is not None:
        state.update(plan.mlm.hf_state_dict())
    if plan.nsp is not None:
        state.update(plan.nsp.hf_state_dict())
    if plan.pooler is not None:  # BertModel: the pooler only, without the "bert." prefix
        state.update({k.removeprefix("bert."): v for k, v in plan.pooler.hf_state_dict().items()
                      if k.startswith("bert.pooler.")})
    return state


def _set_token_ids(config: Any, tokens: SpecialTokens, family: str) -> None:
    config.pad_token_id = tokens.pad
    eos = tokens.eos
    # GPT-2 convention: <|endoftext|> begins and ends texts; an encoder has neither unless the tokenizer does
    config.bos_token_id = tokens.bos if tokens.bos is not None else (eos if family == "gpt2" else None)
    config.eos_token_id = eos
    for role in ("cls", "sep", "mask"):
        value = getattr(tokens, role)
        if value is not None:
            setattr(config, f"{role}_token_id", value)


def build_hf_model(model: ZooModel, plan: _Plan, tokens: SpecialTokens) -> nn.Module:
    """The transformers model holding the run's weights (eval mode)."""
    config = model.backbone.hf_config()
    _set_token_ids(config, tokens, plan.family)
    cls = _hf_classes(plan.architecture)
    hf = cls(config, add_pooling_layer=plan.pooler is not None) if plan.architecture == "BertModel" else cls(config)
    state = hf_state_dict(model, plan)
    missing, unexpected = hf.load_state_dict(state, strict=False)
    tied = set(getattr(hf, "_tied_weights_keys", None) or {})
    untied = sorted(set(missing) - tied)
    if untied or unexpected:
        raise PluginError(f"backbone {model.backbone.name!r}: its hf_state_dict() does not fit {plan.architecture}: "
                          f"missing {untied[:4]}, unexpected {sorted(unexpected)[:4]}")
    if hasattr(hf, "tie_weights"):
        hf.tie_weights()
    return hf.eval()


def _probe(tokens: SpecialTokens, max_positions: int) -> Tensor:
    ordinary = [i for i in range(tokens.vocab_size) if i not in tokens.all_ids]
    length = min(12, max_positions)
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(0, len(ordinary), (2, length), generator=g)
    return torch.tensor(ordinary)[pick]  # (2, length)


@torch.no_grad()
def compare_outputs(model: ZooModel, hf: nn.Module, plan: _Plan, input_ids: Tensor,
                    token_type_ids: Tensor | None = None) -> dict[str, float]:
    """Max |difference| of every exported output, run model vs transformers model, on ``input_ids``
    (B, T) without padding. Keys: hidden, pooler, mlm, nsp, lm (those that exist)."""
    model.eval()
    causal = plan.family == "gpt2"
    layout = AttentionLayout(causal=causal, doc_ids=torch.zeros_like(input_ids, dtype=torch.int32))
    hidden = model.backbone(input_ids, layout, token_type_ids=None if causal else token_type_ids)  # (B, T, h)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    if not causal and token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    out = hf(**kwargs)
    diffs: dict[str, float] = {}

    def diff(name: str, ours: Tensor, theirs: Tensor) -> None:
        diffs[name] = float((ours.float() - theirs.float()).abs().max())

    arch = plan.architecture
    if arch in ("BertModel", "GPT2Model"):
        diff("hidden", hidden, out.last_hidden_state)
        if plan.pooler is not None:
            diff("pooler", torch.tanh(plan.pooler.pooler(hidden[:, 0])), out.pooler_output)
    if plan.mlm is not None:
        diff("mlm", plan.mlm(hidden), out.prediction_logits if arch == "BertForPreTraining" else out.logits)
    if plan.nsp is not None:
        diff("nsp", plan.nsp(hidden), out.seq_relationship_logits if arch == "BertForPreTraining" else out.logits)
    if plan.lm is not None:
        diff("lm", plan.lm(hidden), out.logits)
    return diffs


def _check_out(out: Path, run: Run, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    resolved, run_dir = out.resolve(), run.path.resolve()
    inside = resolved.relative_to(run_dir).parts[0] if run_dir in resolved.parents else ""
    if resolved == run_dir or re.match(r"^(step-\d+|\..*)$", inside):
        raise ConfigError(f"{out} is the run directory {run.path} or inside one of its checkpoints; "
                          f"export to a directory of its own")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"{out} is not empty; choose an empty or new directory, or pass --force to "
                          f"overwrite the exported files in it")


def _load(run: Run, step: int | None) -> tuple[ZooModel, int, str]:
    steps = run.steps()
    if not steps:
        raise CheckpointError(f"{run.path} has no checkpoints to export")
    try:
        snap = run.snapshot(step)  # the newest intact step, read once: a training may be writing the run
        model = run.load_model(step)
        step, sha = snap.step, snap.model_sha256
    except CheckpointError as exc:
        step = steps[-1] if step is None else step
        intact, _ = ckpt.newest_valid(run.path)
        hint = ""
        if intact is not None and intact.name != ckpt.step_name(step):
            hint = f"; the newest intact checkpoint is {intact.name} (--step {int(intact.name.split('-')[1])})"
        raise CheckpointError(f"cannot export step {step}: {exc}{hint}") from exc
    return model, step, sha


def _model_card(run: Run, result: ExportResult) -> str:
    lines = [
        f"# {run.name}",
        "",
        f"Pretrained with [objective-zoo](https://pypi.org/project/objective-zoo/) {__version__}: objective "
        f"`{run.objective_name}`, backbone `{run.backbone_name}`, step {result.step}.",
        "",
        "```python",
        f"from transformers import AutoTokenizer, {result.architecture}",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")',
        f'model = {result.architecture}.from_pretrained("path/to/this/directory")',
        "```",
        "",
        "Heads:",
        "",
        *(f"- `{part}`: {where}" for part, where in result.heads.items()),
    ]
    if result.notes:
        lines += ["", "Notes:", "", *(f"- {n}" for n in result.notes)]
    return "\n".join(lines) + "\n"


def _install(tmp: Path, out: Path) -> None:
    """Move the files written to ``tmp`` into ``out`` (readable as the umask allows, not just by the
    owner as temporary files are); remove owned files the new export lacks."""
    out.mkdir(parents=True, exist_ok=True)
    umask = os.umask(0)
    os.umask(umask)
    new = {p.name for p in tmp.iterdir()}
    for p in out.iterdir():
        stale = p.name in _OWNED or (p.name.startswith("model-") and p.name.endswith(".safetensors"))
        if p.is_file() and stale and p.name not in new:
            p.unlink()
    for name in sorted(new):
        os.chmod(tmp / name, 0o666 & ~umask)
        os.replace(tmp / name, out / name)


def _save_quietly(hf: nn.Module, directory: Path) -> None:
    """``save_pretrained`` without its progress bar (library code logs; the CLI prints)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        hf.save_pretrained(str(directory))
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def export_hf(run: str | Path | Run, out: str | Path, *, step: int | None = None, force: bool = False) -> ExportResult:
    """Write ``run`` (its newest checkpoint, or ``step``) to ``out`` as a transformers directory."""
    from zoo.data import save_tokenizer

    run = run if isinstance(run, Run) else open_run(run)
    out = Path(out).expanduser()
    _check_out(out, run, force)
    model, step, sha = _load(run, step)
    model.eval()
    backbone = model.backbone
    try:
        config = backbone.hf_config()
        backbone.hf_state_dict()
    except NotImplementedError as exc:
        origin = registry.info("backbone", run.backbone_name).origin
        raise PluginError(f"backbone {run.backbone_name!r} ({origin}) has no transformers counterpart: it does "
                          f"not implement hf_config() / hf_state_dict()") from exc
    family = getattr(config, "model_type", None)
    if family not in ("bert", "gpt2"):
        raise PluginError(f"backbone {run.backbone_name!r} exports a {family!r} config; zoo export writes "
                          f"bert and gpt2 models")
    plan = plan_heads(model, family)
    tokens = run.special_tokens()
    hf = build_hf_model(model, plan, tokens)
    token_types = None if family == "gpt2" else torch.zeros(2, 12, dtype=torch.long)
    probe = _probe(tokens, backbone.spec.max_positions)
    if token_types is not None:
        token_types = token_types[:, :probe.shape[1]]
    diffs = compare_outputs(model, hf, plan, probe, token_types)
    worst = max(diffs.values())
    if not worst <= SELF_CHECK_TOLERANCE:
        origin = registry.info("backbone", run.backbone_name).origin
        raise PluginError(f"the {plan.architecture} export of backbone {run.backbone_name!r} ({origin}) does not "
                          f"reproduce the run's model (max abs diff {diffs}, tolerance {SELF_CHECK_TOLERANCE}); "
                          f"nothing was written")
    attention = trained_attention(run.objective_name, backbone.family)
    native = "causal" if family == "gpt2" else "bidirectional"  # what the transformers class always runs
    other = sorted({p for p in attention.values() if p != native})
    if other:
        plan.notes.append(f"the weights were trained with {', '.join(f'{k} {v}' for k, v in attention.items())} "
                          f"attention; {plan.architecture} always attends {native}ly, so the {' and '.join(other)} "
                          f"pattern(s) are not reproduced by it (zoo bench fine-tunes with "
                          f"{finetune_attention(run.objective_name, backbone.family)} attention)")
    for note in plan.notes:
        log.info("%s", note)
    result = ExportResult(out=out, architecture=plan.architecture, step=step, heads=plan.heads, notes=plan.notes,
                          attention=attention, max_abs_diff=worst)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{out.name}.export-") as tmp_name:
        tmp = Path(tmp_name)
        _save_quietly(hf, tmp)
        save_tokenizer(run.tokenizer(), tmp)
        tok_config = json.loads((tmp / "tokenizer_config.json").read_text(encoding="utf-8"))
        tok_config["model_max_length"] = backbone.spec.max_positions
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
        (tmp / "README.md").write_text(_model_card(run, result), encoding="utf-8")
        provenance = {"format": 1, "zoo_version": __version__, "run": str(run.path), "step": step,
                      "checkpoint_sha256": sha, "objective": run.objective_name, "backbone": run.backbone_name,
                      "plugins": run.info.get("plugins", {}), "architecture": plan.architecture,
                      "heads": plan.heads, "notes": plan.notes, "self_check_max_abs_diff": diffs,
                      "attention": {"trained": attention, "architecture": native,
                                    "fine_tuning": finetune_attention(run.objective_name, backbone.family)}}
        (tmp / "zoo_export.json").write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
        _install(tmp, out)
    log.info("exported %s step %d to %s as %s (max |diff| %.2e)", run.path, step, out, plan.architecture, worst)
    return result


def export(run: str | Path | Run, out: str | Path, to: str = "hf", **kwargs: Any) -> ExportResult:
    if to not in FORMATS:
        raise ConfigError(f"--to {to!r}: unknown export format; expected one of {', '.join(FORMATS)}")
    return export_hf(run, out, **kwargs)


__all__ = ["ExportResult", "build_hf_model", "compare_outputs", "export", "export_hf", "hf_state_dict", "plan_heads"]
