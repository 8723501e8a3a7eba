"""Start a run from trained weights: ``zoo train --init SOURCE`` (continued pretraining).

``SOURCE`` is one of

* a transformers directory: ``config.json`` of model_type bert, roberta-prelayernorm (a pre-LN
  bert) or gpt2, ``model.safetensors``,
  ``tokenizer.json`` (what ``save_pretrained`` and ``zoo export`` write),
* ``hf:NAME[@REVISION]``: the same files fetched through ``huggingface_hub`` into its cache
  (``HF_HUB_OFFLINE=1``: the cache only),
* a zoo run directory (its newest intact checkpoint) or one of its ``step-NNNNNN`` directories.

Two stages. ``init_settings`` runs when the config is resolved and reads only the source's
configuration and tokenizer: the backbone, its sizes and the vocabulary come from there (an
explicit setting that disagrees is an error naming both values), and the continued-pretraining
optimiser defaults apply. ``apply_init`` runs once, when a fresh run starts: it reads the weights
(safetensors only, never a pickle), checks and records their sha256, and copies the backbone and
every head the checkpoint holds into the model; heads it lacks keep their fresh initialisation. Its
``InitRecord`` is kept in ``run.json``, and its hub revision and sha256 pin the source in the run's
saved configuration (``InitRecord.pin``). A resumed run continues from its own checkpoint and never
reads the source again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer
from torch import nn

from zoo.errors import CheckpointError, ConfigError
from zoo.models.base import SIZES
from zoo.typed_config import to_dict

if TYPE_CHECKING:
    from zoo.train.config import InitConfig, RunConfig

log = logging.getLogger(__name__)

# Continued-pretraining defaults, used when ``--init`` is given and ``[optim]`` does not set them:
# a peak learning rate in the range BERT fine-tuning and domain-adaptive pretraining use (the
# from-scratch default, 5e-4, is for random weights), 6% linear warmup, linear decay.
CONTINUED_OPTIM: dict[str, Any] = {"lr": 1e-4, "warmup": 0.06, "schedule": "linear"}

# Backbone fields that may differ from the checkpoint's: regularisation and kernels, not what the
# weights mean.
RUNTIME_FIELDS = frozenset({"dropout", "attention_dropout", "attention", "activation_checkpointing",
                            "initializer_range"})
_NOT_RECORDED = ("attention", "activation_checkpointing")  # left to the run's own settings
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.txt"]
_STEP_DIR = re.compile(r"^step-(\d{6,})$")
_WHAT = ("a transformers directory (a model type a registered backbone reads), hf:NAME[@REVISION], or a zoo run "
         "or step directory")


@dataclass
class InitSource:
    """A located ``--init``: its backbone and tokenizer, weights not yet read."""

    source: str  # as given
    kind: str  # "transformers" | "hub" | "run"
    path: Path  # the transformers files (hub: the cached snapshot), or the step directory of a run
    backbone: str  # registry name
    model: dict[str, Any]  # backbone Config fields
    architecture: str  # e.g. "BertForPreTraining", or "zoo run: mlm+nsp"
    tokenizer: Tokenizer
    revision: str = ""  # hub commit
    step: int | None = None  # zoo run checkpoint

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def weights(self) -> Path:
        return self.path / "model.safetensors"


# --- locating a source --------------------------------------------------------------------------
def locate(source: str, revision: str = "") -> InitSource:
    """Find ``source`` and read its configuration and tokenizer (not its weights)."""
    if source.startswith("hf:"):
        name, _, rev = source[3:].partition("@")
        if not name:
            raise ConfigError(f"--init {source!r}: expected hf:NAME[@REVISION]")
        if rev and revision and rev != revision:
            raise ConfigError(f"--init {source} names revision {rev!r} but init.revision is {revision!r}")
        path, commit = _hub_snapshot(name, rev or revision or None)
        return _transformers(source, path, "hub", commit)
    p = Path(source).expanduser()
    if not p.is_dir():
        raise CheckpointError(f"--init {source}: no such directory; expected {_WHAT}")
    if (p / "run.json").is_file() or (_STEP_DIR.match(p.name) and (p.parent / "run.json").is_file()):
        return _zoo_run(source, p)
    if (p / "config.json").is_file():
        return _transformers(source, p, "transformers")
    raise CheckpointError(f"--init {source}: neither a transformers directory (config.json) nor a zoo run "
                          f"(run.json); expected {_WHAT}")


def _hub_snapshot(name: str, revision: str | None) -> tuple[Path, str]:
    """The hub files of ``name`` in the local cache (downloaded unless offline); (path, commit)."""
    from huggingface_hub import constants, snapshot_download

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        path = Path(snapshot_download(repo_id=name, revision=revision, allow_patterns=HUB_FILES,
                                      local_files_only=offline))
    except Exception as exc:  # huggingface_hub raises many types (offline, not found, HTTP, validation)
        where = ("is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it"
                 if offline else "could not be fetched from the Hugging Face hub")
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"--init hf:{name}{'@' + revision if revision else ''} {where} "
                              f"({type(exc).__name__}{': ' + detail if detail else ''})") from exc
    return path, path.name  # snapshots/<commit>


def _transformers(source: str, p: Path, kind: str, revision: str = "") -> InitSource:
    from zoo.data.tokenizer import check_tokenizer_fits
    from zoo.interop import known_classes, open_hf

    try:
        hf = open_hf(p)  # the adapter of the backbone that declares config.json's model_type
    except CheckpointError as exc:
        raise CheckpointError(f"--init {source}: {exc}; --init loads {', '.join(known_classes())} (the classes the "
                              f"registered backbones declare) or a zoo run") from exc
    archs = hf.architectures
    unsupported = [a for a in archs if a not in hf.classes()]
    if unsupported:
        raise CheckpointError(f"--init {source}: {unsupported[0]} is not supported; for model_type "
                              f"{hf.raw['model_type']!r} --init loads {', '.join(hf.classes())} (backbone "
                              f"{hf.backbone}) or a zoo run")
    if not hf.weights.is_file():
        if (p / "pytorch_model.bin").is_file():
            raise CheckpointError(f"--init {source}: the weights are only in pytorch_model.bin, a pickle, which "
                                  f"objective-zoo never loads; save them as model.safetensors (transformers: "
                                  f"save_pretrained(dir, safe_serialization=True))")
        raise CheckpointError(f"--init {source}: no model.safetensors in {p} (sharded or other formats are not "
                              f"loaded)")
    try:
        tok = hf.tokenizer()
    except CheckpointError as exc:
        raise CheckpointError(f"--init {source}: {exc}; --init uses the model's own tokenizer, save it with "
                              f"AutoTokenizer.from_pretrained(...).save_pretrained(dir)") from exc
    if tok.truncation is not None or tok.padding is not None:  # a saved encoding setting would cut documents
        tok.no_truncation()
        tok.no_padding()
    check_tokenizer_fits(tok.get_vocab_size(with_added_tokens=True), hf.config.vocab_size,
                         f"--init {source}: tokenizer.json", "its config.json (vocab_size)")
    model = {k: v for k, v in to_dict(hf.config).items() if k not in _NOT_RECORDED}
    return InitSource(source, kind, p, hf.backbone, model, hf.architecture, tok, revision)


def _zoo_run(source: str, p: Path) -> InitSource:
    from zoo.runs import open_run
    from zoo.train.build import backbone_config

    step_match = _STEP_DIR.match(p.name) if not (p / "run.json").is_file() else None
    run = open_run(p.parent if step_match else p)
    step = int(step_match.group(1)) if step_match else None
    path = run.checkpoint(step)  # verified against its manifest
    config = backbone_config(run.config, run.special_tokens().vocab_size)
    model = {k: v for k, v in to_dict(config).items() if k not in _NOT_RECORDED}
    return InitSource(source, "run", path, run.backbone_name, model, f"zoo run: {run.objective_name}",
                      run.tokenizer(), step=int(path.name.removeprefix("step-")))


# --- configuration -------------------------------------------------------------------------------
def init_settings(data: dict[str, Any]) -> tuple[dict[str, Any], InitSource | None]:
    """``data`` (a raw run config with ``init.source``) completed from the checkpoint: backbone, model
    fields, tokenizer size and optimiser defaults, and the source located (None for a run that exists: its
    configuration says what the source held). Explicit settings that disagree are refused."""
    data = copy.deepcopy(data)
    src: InitSource | None = None
    init = data["init"]
    source = str(init["source"])
    saved = _saved_config(data.get("out"), source)
    if saved is None:
        src = locate(source, str(init.get("revision", "")))
        found = {"backbone": src.backbone, "model": src.model, "vocab": src.vocab_size}
        what = f"--init {source} ({src.architecture})"
        from zoo.train.config import RunConfig

        default = RunConfig(backbone=src.backbone, objective=data.get("objective", "mlm+nsp"))
        saved = _saved_config(data.get("out") or default.run_dir, source)
    else:  # the run exists: its configuration says what the source held; the source is not read again
        found = {"backbone": saved["backbone"], "model": saved.get("model", {}),
                 "vocab": saved.get("tokenizer", {}).get("vocab_size")}
        what = f"--init {source} (as recorded in {data['out']}/config.json)"
    if saved is not None:  # a resumed run keeps the revision and hash it started from
        for key in ("revision", "sha256"):
            init.setdefault(key, saved["init"].get(key, ""))
            init[key] = init[key] or saved["init"].get(key, "")
    _merge(data, found, what)
    return data, src


def _saved_config(out: str | None, source: str) -> dict[str, Any] | None:
    if not out:
        return None
    try:
        saved = json.loads((Path(out) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(saved, dict) and isinstance(saved.get("init"), dict) and saved["init"].get("source") == source:
        return saved
    return None


def _merge(data: dict[str, Any], found: dict[str, Any], what: str) -> None:
    backbone, model = found["backbone"], found["model"]
    if data.get("backbone", backbone) != backbone:
        raise ConfigError(f"--backbone {data['backbone']} conflicts with {what}: it holds a {backbone} model")
    data["backbone"] = backbone
    layers, hidden = model.get("num_layers"), model.get("hidden_size")
    if "size" in data:
        if SIZES.get(data["size"]) != (layers, hidden):
            want = SIZES.get(data["size"], ("?", "?"))
            raise ConfigError(f"--size {data['size']} ({want[0]} layers x {want[1]}) conflicts with {what}: "
                              f"{layers} layers x {hidden}")
    else:
        match = [name for name, dims in SIZES.items() if dims == (layers, hidden)]
        if match:
            data["size"] = match[0]
    given = data.setdefault("model", {})
    for key, value in model.items():
        if key in given and given[key] != value and key not in RUNTIME_FIELDS:
            raise ConfigError(f"model.{key} = {given[key]!r} conflicts with {what}: its {key} is {value!r}")
        given.setdefault(key, value)
    tok = data.setdefault("tokenizer", {})
    if tok.get("path"):
        raise ConfigError(f"--tokenizer {tok['path']} conflicts with {what}: its own tokenizer is used as is")
    if found["vocab"] is not None:
        if "vocab_size" in tok and tok["vocab_size"] != found["vocab"]:
            raise ConfigError(f"--vocab-size {tok['vocab_size']} conflicts with {what}: its tokenizer has "
                              f"{found['vocab']} tokens")
        tok["vocab_size"] = found["vocab"]
    optim = data.setdefault("optim", {})
    for key, value in CONTINUED_OPTIM.items():
        optim.setdefault(key, value)


# --- loading the weights ------------------------------------------------------------------------
@dataclass(frozen=True)
class InitRecord:
    """What ``apply_init`` loaded, as ``run.json`` keeps it (``to_dict``)."""

    source: str  # as given
    kind: str  # "transformers" | "hub" | "run"
    path: str  # where the weights were read
    revision: str  # the hub commit loaded (other kinds: init.revision as configured)
    sha256: str  # of the weights file
    architecture: str
    step: int | None  # of a zoo run's checkpoint
    heads: dict[str, str]  # each head of the model: where its weights came from, or "new"
    unused: list[str]  # heads the checkpoint holds that the model lacks

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def pin(self, cfg: RunConfig) -> RunConfig:
        """``cfg`` with the revision and sha256 loaded as its ``init`` pins (what the run's saved
        configuration holds, and a resume keeps)."""
        return dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, revision=self.revision, sha256=self.sha256))


def apply_init(src: InitSource, model: nn.Module, pins: InitConfig) -> InitRecord:
    """Copy the backbone and the heads ``src`` holds into ``model`` (a ``ZooModel``) and say what was
    loaded. The weights' sha256 must match ``pins.sha256`` (the run's ``init.sha256``) when that is set."""
    from zoo.train import checkpoint as ckpt

    if not src.weights.is_file():
        raise CheckpointError(f"--init {src.source}: {src.weights} is missing")
    sha = ckpt.sha256_file(src.weights)
    if pins.sha256 and pins.sha256 != sha:
        raise CheckpointError(f"--init {src.source}: {src.weights} has sha256 {sha[:16]}..., but init.sha256 "
                              f"is {pins.sha256[:16]}...; the weights changed since the run was configured")
    if src.kind == "run":
        heads, unused = _load_zoo(src, model)
    else:
        heads, unused = _load_transformers(src, model)
    loaded = {k: v for k, v in heads.items() if v != "new"}
    new = [k for k, v in heads.items() if v == "new"]
    log.info("--init %s (%s): backbone loaded; heads loaded: %s; new heads: %s%s", src.source, src.architecture,
             ", ".join(f"{k} ({v})" for k, v in loaded.items()) or "none", ", ".join(new) or "none",
             f"; not used: {', '.join(unused)}" if unused else "")
    return InitRecord(src.source, src.kind, str(src.path), src.revision if src.kind == "hub" else pins.revision,
                      sha, src.architecture, src.step, heads, unused)


def _load_zoo(src: InitSource, model: nn.Module) -> tuple[dict[str, str], list[str]]:
    tensors = _read_zoo(src.weights)
    backbone = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
    try:
        model.backbone.load_state_dict(backbone, strict=True)
    except RuntimeError as exc:
        detail = "; ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise CheckpointError(f"--init {src.source}: the backbone weights do not fit ({detail})") from exc
    heads: dict[str, str] = {}
    for name, head in model.heads.items():
        own = head.state_dict()
        saved = {k: tensors.get(f"heads.{name}.{k}") for k in own}
        if not own:
            heads[name] = "no parameters of its own (tied to the embedding)"
        elif all(t is not None and t.shape == own[k].shape for k, t in saved.items()):
            head.load_state_dict(saved, strict=True)
            heads[name] = f"heads.{name}"
        else:
            heads[name] = "new"
    names = sorted({k.split(".")[1] for k in tensors if k.startswith("heads.")})
    return heads, [f"heads.{n}" for n in names if n not in model.heads]


def _read_zoo(path: Path) -> dict[str, torch.Tensor]:
    from zoo.train import checkpoint as ckpt

    return ckpt.load_tensors(path)


def _load_transformers(src: InitSource, model: nn.Module) -> tuple[dict[str, str], list[str]]:
    from zoo.interop import load_hf_model

    return load_hf_model(model, src.weights, f"--init {src.source}", src.architecture)
