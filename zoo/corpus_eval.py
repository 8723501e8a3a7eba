"""``zoo eval``: held-out loss, perplexity and bits per byte of a run or exported model on any corpus.

The corpus is read and tokenised by the training pipeline (``zoo.data``: the same readers,
cleaning, sentence chunking and token store) with the model's own tokenizer, into a temporary
store that is removed afterwards (the training cache is not touched). Two measures:

next-token (models that predict the next token: clm, prefix, span-lm, ul2, deshuffle, GPT-2 exports)
    Every token of every document is predicted, reading the document the way the model is scored
    zero-shot (``zoo.benchmarks.lm_scoring.causal_context``: after the start token, a prefix LM with an
    empty prefix, a sentinel span LM as the one span of an empty text). A document longer than the
    window (the run's ``train.seq_len``, or ``--seq-len``) is cut into consecutive windows, each read
    from the same context again. The end-of-text token is not predicted. Then
        loss            total nats / tokens predicted
        perplexity      exp(loss)  (per token: depends on the tokenizer)
        bits per byte   total nats / (ln 2 x UTF-8 bytes of the documents)
    where the documents are the corpus reader's text (line ends normalised to ``\\n``, surrounding
    whitespace stripped); the bytes between tokens (spaces, line breaks) count, so two tokenizers
    are compared on the same bytes.
objective (any run: ``--measure objective``; the default for models without next-token reading, e.g. mlm)
    The run's own objective loss over every row the pipeline packs from the corpus, as the held-out
    evaluation of training computes it (``zoo.train.evaluate``; random choices such as masking are
    seeded). A masked LM's perplexity is over its masked tokens; bits per byte is not defined.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import torch

from zoo.data import DataConfig
from zoo.errors import CheckpointError, ConfigError, DataError

MEASURES = ("auto", "next-token", "objective")
SPLITS = ("all", "valid", "train")


@dataclass
class EvalConfig:
    """What ``zoo eval`` reads and how."""

    data: DataConfig | None = None  # None: the run's own corpus settings (an export: the embedded corpus)
    split: Literal["all", "valid", "train"] = "all"  # valid/train: the documents training holds out / trains on
    measure: Literal["auto", "next-token", "objective"] = "auto"
    seq_len: int = 0  # window / row length; 0: the run's train.seq_len (an export: its positions)
    batch_size: int = 16
    step: int | None = None
    device: str = "cpu"
    seed: int = 0  # objective measure: the masking and other draws of ``prepare``

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.measure not in MEASURES:
            raise ConfigError(f"--measure must be one of {', '.join(MEASURES)}, got {self.measure!r}")
        if self.seq_len < 0 or self.batch_size < 1:
            raise ConfigError("--seq-len must be >= 0 and --batch-size >= 1")


@dataclass
class EvalResult:
    model: str
    objective: str
    measure: str  # "next-token" | "objective"
    reading: str  # next-token: the scorer (causal, causal[S], causal-sentinel); objective: the objective
    corpus: str
    split: str
    documents: int
    tokens: int  # next-token: tokens predicted; objective: tokens in the packed rows
    bytes: int | None  # UTF-8 bytes of the documents (next-token measure)
    loss: float
    perplexity: float | None
    bits_per_byte: float | None
    seq_len: int
    metrics: dict[str, float] = field(default_factory=dict)  # objective measure: the objective's other metrics
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        out = [("model", self.model), ("objective", self.objective), ("measure", f"{self.measure} ({self.reading})"),
               ("corpus", f"{self.corpus} [{self.split}]"), ("documents", f"{self.documents:,}"),
               ("tokens", f"{self.tokens:,}")]
        if self.bytes is not None:
            out.append(("bytes", f"{self.bytes:,}"))
        out.append(("loss", f"{self.loss:.4f}"))
        if self.perplexity is not None:
            out.append(("perplexity", f"{self.perplexity:.2f}"))
        if self.bits_per_byte is not None:
            out.append(("bits per byte", f"{self.bits_per_byte:.4f}"))
        out += [(k, f"{v:.4g}") for k, v in self.metrics.items()]
        out.append(("window" if self.measure == "next-token" else "row length", str(self.seq_len)))
        return out


def _documents(cfg: EvalConfig, data: DataConfig, validation_fraction: float) -> tuple[list[str], str]:
    from zoo.data.corpus import read_corpus
    from zoo.data.pipeline import split_documents, split_long_documents

    corpus = read_corpus(data)
    docs = corpus.documents
    if cfg.split != "all":
        if validation_fraction <= 0:
            raise ConfigError(f"--split {cfg.split}: the model holds out no documents (data.validation_fraction 0)")
        docs, _ = split_long_documents(docs, validation_fraction)
        train, valid = split_documents(docs, validation_fraction)
        docs = [docs[i] for i in (valid if cfg.split == "valid" else train)]
    return docs, corpus.description


def evaluate_corpus(path: str | Path, cfg: EvalConfig) -> EvalResult:
    """Evaluate the run or exported directory ``path`` on ``cfg.data`` (see the module docstring)."""
    from zoo.data import build_store
    from zoo.generate import generation_scorer, open_text_model

    t0 = time.perf_counter()
    model = open_text_model(path, cfg.step, cfg.device)
    run = None
    if (Path(path) / "run.json").is_file():
        from zoo.runs import open_run

        run = open_run(path)
    causal = [s for s in model.scorers if s.kind == "causal"]
    measure = cfg.measure if cfg.measure != "auto" else ("next-token" if causal else "objective")
    if measure == "next-token" and not causal:
        raise ConfigError(f"{model.name} was trained with {model.objective!r}, which does not predict the next token; "
                          f"--measure next-token needs a causal or prefix LM (use --measure objective)")
    if measure == "objective" and run is None:
        raise ConfigError(f"{path} is an exported directory without its objective; --measure objective needs the run")
    data = cfg.data or (run.config.data if run is not None else DataConfig())
    fraction = run.config.data.validation_fraction if run is not None else DataConfig().validation_fraction
    docs, description = _documents(cfg, data, fraction)
    if not docs:
        raise DataError(f"--split {cfg.split} of {description} holds no documents")
    tmp = Path(tempfile.mkdtemp(prefix="zoo-eval-"))
    try:
        store = build_store(docs, model.tokenizer, tmp / "store")
        if store.num_documents() == 0:
            raise DataError(f"{description}: no document yields a token with {model.name}'s tokenizer")
        if measure == "next-token":
            scorer = generation_scorer(model)
            seq_len = cfg.seq_len or (run.config.train.seq_len if run is not None else model.backbone.spec.max_positions)
            nats, tokens = _next_token_nats(model, scorer, store, seq_len, cfg.batch_size)
            # bytes of the documents that yield tokens (the store drops the others, whose text is not predicted)
            nbytes = sum(len(d.encode("utf-8")) for d in docs) if store.num_documents() == len(docs) else \
                _kept_bytes(docs, model.tokenizer)
            loss = nats / tokens
            return EvalResult(model.name, model.objective, measure, scorer.name, description, cfg.split,
                              store.num_documents(), tokens, nbytes, loss, math.exp(min(loss, 700.0)),
                              nats / (math.log(2) * nbytes), seq_len, seconds=time.perf_counter() - t0)
        assert run is not None
        return _objective_result(run, model, store, cfg, description, t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _kept_bytes(docs: list[str], tokenizer: Any) -> int:
    """UTF-8 bytes of the documents that yield at least one token."""
    encs = tokenizer.encode_batch(docs, add_special_tokens=False)
    return sum(len(d.encode("utf-8")) for d, e in zip(docs, encs, strict=True) if e.ids)


@torch.inference_mode()
def _next_token_nats(model: Any, scorer: Any, store: Any, seq_len: int, batch_size: int) -> tuple[float, int]:
    """(total nats, tokens) of predicting every token of every stored document (see the module docstring)."""
    from zoo.benchmarks.lm_scoring import causal_context, causal_layout, with_context
    from zoo.generate import paradigm_token

    context, prefix_len = causal_context(model.special, scorer.sentinel, paradigm_token(model, scorer), start=True)
    width = min(seq_len, model.backbone.spec.max_positions) - len(context)
    if width < 1:
        raise ConfigError(f"--seq-len {seq_len} leaves no room after the {len(context)} context token(s)")
    windows: dict[int, list[np.ndarray]] = {}
    for d in range(store.num_documents()):
        doc = np.asarray(store.document(d), dtype=np.int64)
        for i in range(0, len(doc), width):
            piece = doc[i:i + width]
            windows.setdefault(len(piece), []).append(piece)
    proj = model.projection(scorer)
    device, c = model.device, len(context)
    total, count = 0.0, 0
    for m, pieces in sorted(windows.items()):
        for i in range(0, len(pieces), batch_size):
            body = np.stack(pieces[i:i + batch_size])
            ids = with_context(context, body, device)
            hidden = model.backbone(ids, causal_layout(ids, prefix_len))
            lp = proj.logprobs(hidden[:, c - 1:c - 1 + m].reshape(-1, hidden.shape[-1]), ids[:, c:].reshape(-1))
            total -= float(lp.double().sum())
            count += lp.numel()
    return total, count


def _objective_result(run: Any, model: Any, store: Any, cfg: EvalConfig, description: str, t0: float) -> EvalResult:
    from zoo.registry import load
    from zoo.train.evaluate import evaluate_parts
    from zoo.train.parts import Parts

    zoo_model = run.load_model(cfg.step).to(model.device)
    objective = zoo_model.objective
    seq_len = cfg.seq_len or run.config.train.seq_len
    family = load("backbone", run.backbone_name).family
    try:
        parts = Parts(objective, SimpleNamespace(train=store, valid=store), seq_len, run.special_tokens(), family,
                      cfg.batch_size, cfg.seed)
    except ConfigError as exc:
        raise DataError(f"{description}: {str(exc).replace('training split', 'corpus')}") from None
    rows = max(len(p.valid) for p in parts)
    result = evaluate_parts(zoo_model, parts, parts.mixture is not None, cfg.batch_size,
                            math.ceil(rows / cfg.batch_size), cfg.seed, model.device, contextlib.nullcontext)
    if result is None:
        raise DataError(f"{description} yields no rows for {run.objective_name} at seq_len {seq_len}")
    loss, means = result
    derived = objective.derived_metrics({"loss": loss, **means})
    metrics = {k: v for k, v in {**means, **derived}.items() if k != "ppl"}
    if not math.isfinite(loss):
        raise CheckpointError(f"{run.path}: the loss on {description} is not finite")
    return EvalResult(model.name, run.objective_name, "objective", run.objective_name, description, cfg.split,
                      store.num_documents(), int(store.num_tokens), None, loss, derived.get("ppl"), None, seq_len, metrics,
                      time.perf_counter() - t0)
