"""Export a run to a Hugging Face ``transformers`` directory: ``zoo export RUN --to hf OUT``.

What is written (``OUT/``): ``config.json`` (with ``architectures`` and the special-token ids),
``model.safetensors``, ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``
(``vocab.txt`` for WordPiece), ``README.md`` (a short model card) and ``zoo_export.json``
(provenance: run, step, checkpoint hash, what became of each head).

Which class the heads map onto is the backbone's to declare (``zoo.interop``, the transformers hook):

    bert  MLM head (mlm, span)  + NSP head   BertForPreTraining
          MLM head only (mlm, mlm+sop, span) BertForMaskedLM
          NSP head only (nsp)                BertForNextSentencePrediction
          otherwise (sop, rtd, ...)          BertModel (with the pooler a sentence-pair head trained)
    bert, norm_position = "pre":
          MLM head                           RobertaPreLayerNormForMaskedLM (no NSP head class)
          otherwise                          RobertaPreLayerNormModel
    gpt   tied LM head (clm, prefix, span)   GPT2LMHeadModel
          otherwise                          GPT2Model

A model trained with ``bias = False`` exports with zero biases (the same function); the record
(``zoo_export.json``: ``zero_filled_biases``, ``notes``) says so.

Heads without a ``transformers`` counterpart (SOP's order classifier, a plugin's generator) are
left out, logged, and listed in the result's notes. The exported model is checked against the
run's model on a few tokens before anything is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zoo import __version__, fileio, markers, registry
from zoo.batch import SpecialTokens
from zoo.errors import CheckpointError, ConfigError, PluginError
from zoo.family import Family
from zoo.interop import build_hf_model, compare_outputs, hf_state_dict, plan_heads, require_hf
from zoo.objectives.mixture import finetune_attention, trained_attention
from zoo.runs import Run, open_run
from zoo.train import checkpoint as ckpt
from zoo.zoo_model import ZooModel

log = logging.getLogger(__name__)

FORMATS = ("hf",)
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
    replaced: str | None = None  # with ``force``: the earlier export that was replaced, in words


def _probe(tokens: SpecialTokens, max_positions: int) -> Tensor:
    ordinary = [i for i in range(tokens.vocab_size) if i not in tokens.all_ids]
    length = min(12, max_positions)
    g = torch.Generator().manual_seed(0)
    pick = torch.randint(0, len(ordinary), (2, length), generator=g)
    return torch.tensor(ordinary)[pick]  # (2, length)


def _check_out(out: Path, run: Run, force: bool) -> str | None:
    """Refuse an ``out`` that is a file, the run or inside it, or a non-empty directory other than an
    earlier export (which only ``force`` replaces). Returns what ``force`` will replace, in words."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    resolved, run_dir = out.resolve(), run.path.resolve()
    inside = resolved.relative_to(run_dir).parts[0] if run_dir in resolved.parents else ""
    if resolved == run_dir or re.match(r"^(step-\d+|\..*)$", inside):
        raise ConfigError(f"{out} is the run directory {run.path} or inside one of its checkpoints; "
                          f"export to a directory of its own")
    if not out.is_dir():
        return None
    found = markers.identify(out)
    if found.kind == "empty":
        return None
    if found.kind != "export":
        held = f"it holds {found.what}"
        raise ConfigError(f"{out} is not empty and not a zoo export ({held}); choose an empty or new directory "
                          f"(--force replaces only an earlier export, never other files)")
    if not force:
        raise ConfigError(f"{out} is not empty: it holds {found.what}; choose an empty or new directory, or pass "
                          f"--force to replace that export as a whole (with any benchmark results in it)")
    extra = sorted(n for n in ("bench.json", "bench.md", "bench-cache") if (out / n).exists())
    replaced = found.what + (f" and its benchmark results ({', '.join(extra)})" if extra else "")
    log.warning("--force: replacing %s in %s as a whole", replaced, out)
    return replaced


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
    """Put the directory ``tmp`` in place of ``out`` as a whole (readable as the umask allows, not just
    by the owner as temporary directories are): nothing of an earlier export in ``out`` (its
    benchmark results included) survives beside the new model."""
    umask = os.umask(0)
    os.umask(umask)
    for p in tmp.iterdir():
        os.chmod(p, 0o666 & ~umask)
    os.chmod(tmp, 0o777 & ~umask)
    fileio.replace_dir(tmp, out)


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
    replaced = _check_out(out, run, force)
    model, step, sha = _load(run, step)
    model.eval()
    backbone = model.backbone
    names = require_hf(backbone, registry.info("backbone", run.backbone_name).origin)
    plan = plan_heads(model, names)
    plan.notes.extend(backbone.hf_export_notes() if hasattr(backbone, "hf_export_notes") else [])
    tokens = run.special_tokens()
    hf = build_hf_model(model, plan, tokens)
    segments = plan.family == Family.ENCODER and backbone.spec.type_vocab_size > 0
    token_types = torch.zeros(2, 12, dtype=torch.long) if segments else None
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
    native = plan.family.default_attention  # what the transformers class always runs
    other = sorted({p for p in attention.values() if p != native})
    if other:
        plan.notes.append(f"the weights were trained with {', '.join(f'{k} {v}' for k, v in attention.items())} "
                          f"attention; {plan.architecture} always attends {native}ly, so the {' and '.join(other)} "
                          f"pattern(s) are not reproduced by it (zoo bench fine-tunes with "
                          f"{finetune_attention(run.objective_name, backbone.family)} attention)")
    for note in plan.notes:
        log.info("%s", note)
    result = ExportResult(out=out, architecture=plan.architecture, step=step, heads=plan.heads, notes=plan.notes,
                          attention=attention, max_abs_diff=worst, replaced=replaced)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.export-"))
    try:
        _save_quietly(hf, tmp)
        save_tokenizer(run.tokenizer(), tmp)
        tok_config = json.loads((tmp / "tokenizer_config.json").read_text(encoding="utf-8"))
        tok_config["model_max_length"] = backbone.spec.max_positions
        fileio.write_json(tmp / "tokenizer_config.json", tok_config, indent=2, ensure_ascii=False)
        fileio.write_text(tmp / "README.md", _model_card(run, result))
        provenance = {"format": 1, "zoo_version": __version__, "run": str(run.path), "step": step,
                      "checkpoint_sha256": sha, "objective": run.objective_name, "backbone": run.backbone_name,
                      "plugins": run.info.get("plugins", {}), "architecture": plan.architecture,
                      "heads": plan.heads, "notes": plan.notes, "self_check_max_abs_diff": diffs,
                      "zero_filled_biases": getattr(backbone.config, "bias", True) is False,
                      "attention": {"trained": attention, "architecture": native,
                                    "fine_tuning": finetune_attention(run.objective_name, backbone.family)}}
        fileio.write_json(tmp / markers.EXPORT_FILE, provenance)
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s step %d to %s as %s (max |diff| %.2e)", run.path, step, out, plan.architecture, worst)
    return result


def export(run: str | Path | Run, out: str | Path, to: str = "hf", **kwargs: Any) -> ExportResult:
    if to not in FORMATS:
        raise ConfigError(f"--to {to!r}: unknown export format; expected one of {', '.join(FORMATS)}")
    return export_hf(run, out, **kwargs)


__all__ = ["ExportResult", "build_hf_model", "compare_outputs", "export", "export_hf", "hf_state_dict", "plan_heads"]
