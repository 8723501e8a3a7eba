"""``zoo bench --suite blimp|climp``: zero-shot minimal-pair accuracy, no training involved.

Each model scores both sentences of every pair with the scorer(s) its objective supports
(``lm_scoring.scorers_for``); a pair is correct when the good sentence scores strictly higher. The
headline is the macro average over paradigms; phenomena average their paradigms. Results go into
the model's ``bench.json`` under the suite name, in the layout GLUE/CLUE use (one "task" per
paradigm, metric ``accuracy``, one "seed"), plus per-scorer accuracies and the per-pair correctness
(``correct``: one ``0``/``1`` per pair, in file order) that paired comparisons need.

Results are cached like fine-tuning results (``bench.py``), in ``<model>/bench-cache/``, one file per
(scorer, paradigm) keyed by checkpoint, tokenizer, objective, scorer, precision, device type,
``max_eval_examples`` and the paradigm's data fingerprint: a rerun scores only what is missing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from zoo.benchmarks.bench_file import (
    CACHE_DIR,
    CACHE_VERSION,
    hash_key,
    merge_suite_report,
    write_result_json,
)
from zoo.benchmarks.lm_scoring import Scorer, score_sentences, scorers_for
from zoo.benchmarks.minimal_pairs import Paradigm, load_suite, phenomena
from zoo.benchmarks.pairs_results import KIND, PairsModelResult, PairsResult, flags
from zoo.benchmarks.recipe import Progress, resolve_device
from zoo.benchmarks.source import ModelSource, open_source
from zoo.errors import CheckpointError, ConfigError, ZooError
from zoo.models.base import Backbone
from zoo.objectives.base import TiedLinear
from zoo.objectives.mlm import MaskedLMHead

if TYPE_CHECKING:
    from zoo.interop import HFDirectory

log = logging.getLogger(__name__)

# --- models with their heads -------------------------------------------------------------------------

@dataclass
class ScoringModel:
    source: ModelSource
    backbone: Backbone
    heads: dict[str, nn.Module]
    objective: str  # the spec the scorers are chosen from (a baseline: the one of the model it mirrors)
    from_scratch: bool = False
    doc_start: bool = False  # decoder rows trained with a start token before every document
    train_store: str | None = None  # the run's training token store (unigram counts), where known

    def unigram(self) -> np.ndarray:
        """Add-one smoothed unigram log-probabilities of the training split's tokens (``causal-unigram``)."""
        from zoo.benchmarks.lm_scoring import unigram_logprobs
        from zoo.data.store import TokenStore

        where = self.train_store
        if where is None or not Path(where).is_dir():
            raise ConfigError(f"{self.source.name}: --scorer causal-unigram needs the run's training token store "
                              f"({where or 'not recorded'}); it is rebuilt by training, or use another scorer")
        tokens = np.asarray(TokenStore(Path(where)).tokens)
        return unigram_logprobs(np.bincount(tokens, minlength=self.backbone.spec.vocab_size))


def open_scoring_model(source: ModelSource, step: int | None = None, from_scratch: bool = False,
                       scratch_seed: int = 0) -> ScoringModel:
    """The backbone and heads of a run (its checkpoint, or a random init of the same model with
    ``scratch_seed``) or of an exported Hugging Face directory whose class has a token-level head."""
    if source.path is None:
        raise ConfigError(f"{source.name}: minimal pairs need a run or exported directory (the heads live there)")
    if source.hf is not None:
        return _open_hf(source, source.hf, from_scratch, scratch_seed)
    from zoo.runs import open_run

    run = open_run(source.path)
    if from_scratch:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(scratch_seed)
            model = run.build_model()
    else:
        model = run.load_model(step)
    heads = dict(model.heads.items())
    # parts that share a head (a mixture's ``head_slots``: part name -> head key) find it under their name
    slots = getattr(model.objective, "head_slots", None) or {}
    heads.update({part: heads[slot] for part, slot in slots.items() if slot in heads and part not in heads})
    return ScoringModel(source, model.backbone, heads, run.objective_name, from_scratch,
                        doc_start=run.config.data.doc_start, train_store=run.info.get("data", {}).get("train_store"))


def _open_hf(source: ModelSource, hf: HFDirectory, from_scratch: bool, scratch_seed: int = 0) -> ScoringModel:
    """The token head of a transformers directory, through its backbone's adapter: the head an objective
    of its class trains (``HFDirectory.token_objective``), loaded by role like ``--init`` loads it."""
    from zoo.interop import export_record, load_hf_heads, read_hf_weights

    assert source.path is not None
    objective = hf.token_objective()
    if objective is None:
        with_heads = [c for key, c in hf.names.heads.items() if "mlm" in key or "lm" in key]
        raise CheckpointError(f"{hf.path / 'config.json'}: {hf.architecture} has no token-level head (masked-LM or "
                              f"LM head) to score sentences with; expected one of {', '.join(with_heads)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(scratch_seed)  # the heads' random init, with the backbone's seed
        backbone = source.scratch().backbone(scratch_seed) if from_scratch else copy.deepcopy(source.backbone())
        head: nn.Module
        if str(backbone.spec.family) == "encoder-decoder":  # the decoder's LM head, output scale and all
            from zoo.objectives.clm import decoder_lm_head

            head = decoder_lm_head(backbone)
        elif objective == "mlm":
            head = MaskedLMHead(backbone.spec, backbone.input_embedding())
        else:
            head = TiedLinear(backbone.input_embedding(), bias=False)
    if not from_scratch and isinstance(head, MaskedLMHead):
        loaded, _ = load_hf_heads(backbone, {"mlm": head}, read_hf_weights(hf.weights), hf.weights,
                                  f"{hf.weights}", hf.architecture)
        if loaded["mlm"] == "new":
            raise CheckpointError(f"{hf.weights}: the {hf.architecture} masked-LM head is missing")
    data = export_record(source.path).get("data")  # a run trained with a start token before every document
    doc_start = isinstance(data, dict) and bool(data.get("doc_start"))
    return ScoringModel(source, backbone, _head_slots(objective, head), objective, from_scratch, doc_start=doc_start)


def _head_slots(objective: str, head: nn.Module) -> dict[str, nn.Module]:
    """The one token head of a transformers directory under every name the scorers of ``objective`` look
    it up by (each part's name and, when shared, its ``head_key``: ``ul2``'s parts share ``heads.lm``)."""
    from zoo.objectives.mixture import spec_leaves
    from zoo.objectives.spec import parse_spec

    slots: dict[str, nn.Module] = {objective: head}
    if objective in ("mlm", "clm"):
        return slots
    try:
        leaves = spec_leaves(parse_spec(objective))
    except ZooError as exc:
        raise CheckpointError(f"the export records objective {objective!r}, which cannot be read here ({exc})") from exc
    for leaf in leaves:
        slots[leaf.name] = head
        if leaf.cls.head_key:
            slots[leaf.cls.head_key] = head
    return slots


# --- trivial baselines --------------------------------------------------------------------------------

def add_pair_baselines(result: PairsResult, sources: Sequence[ModelSource], paradigms: list[Paradigm]) -> None:
    """Count models and the length heuristic with each distinct tokenizer of ``sources`` (count models only
    for runs, whose corpus is known), and every model's accuracy on the pairs of equal token length."""
    from zoo.benchmarks.ngram import PairBaselines, equal_length_accuracy, run_corpus, score_pair_baselines

    pairs = {p.name: ([x.good for x in p.pairs], [x.bad for x in p.pairs]) for p in paradigms}
    by_hash: dict[str, list[ModelSource]] = {}
    for src in sources:
        by_hash.setdefault(src.tokenizer_hash, []).append(src)
    several = len(by_hash) > 1
    for group in by_hash.values():
        src = group[0]
        run = next((s for s in group if s.path is not None and s.hf is None), None)
        base: PairBaselines | None = None
        if run is not None:
            try:
                tokens, offsets = run_corpus(run.path, src.tokenizer)
                base = score_pair_baselines(src.tokenizer, pairs, tokens, offsets)
            except (OSError, ZooError) as exc:  # a corpus moved away: the length rows still come
                result.baseline_notes.append(f"No count models for {run.name}: its corpus could not be read ({exc}).")
        else:
            result.baseline_notes.append(f"No count models for {src.name}: an exported model carries no corpus.")
        if base is None:
            base = score_pair_baselines(src.tokenizer, pairs, np.zeros(0, np.int64), np.zeros(1, np.int64), orders=())
        label = f"{src.name} tokens" if several else ""
        suffix = f" ({label})" if several else ""
        equal = base.equal_length()
        result.equal_masks[src.tokenizer_hash] = equal
        for name in base.names:
            result.baselines[name + suffix] = base.accuracy(name)
            result.baseline_equal_length[name + suffix] = equal_length_accuracy(base.outcomes[name], equal)[0]
        result.baseline_tokenizers[src.tokenizer_hash] = {
            "label": label, "baselines": [name + suffix for name in base.names],
            "equal_pairs": sum(int(x.sum()) for x in equal.values())}
        names = {s.name for s in group} | {f"{s.name} (from scratch)" for s in group}
        for m in result.models:
            if m.name in names:
                result.equal_pairs[m.name] = sum(int(x.sum()) for x in equal.values())
                result.equal_length[m.name] = {v: equal_length_accuracy({p: flags(b) for p, b in m.correct[v].items()},
                                                                        equal)[0] for v in m.scorers}


# --- the benchmark --------------------------------------------------------------------------------------

def _scoring_precision(setting: str, device: torch.device) -> str:
    """``auto``: bf16 where the CPU/GPU computes it natively, else fp32 (``zoo.train.precision``); an
    explicit bf16 on a CPU that emulates it is kept, with one warning."""
    from zoo.train.precision import PRECISIONS, resolve_precision, warn_if_emulated

    if setting not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    resolved = resolve_precision(setting, device)
    warn_if_emulated(resolved, device)
    if setting == "auto":
        log.info("scoring precision %s (%s)", resolved.name, resolved.reason)
    return resolved.name


def run_minimal_pairs(
    models: Sequence[str | Path | ModelSource],
    suite: str,
    data_dir: str | Path | None = None,
    max_eval_examples: int | None = None,
    pll: str = "word-l2r",
    precision: str = "fp32",
    from_scratch: bool = False,
    device: str = "auto",
    step: int | None = None,
    batch_tokens: int = 16384,
    write_reports: bool = True,
    progress: Progress | None = None,
    include_models: bool = True,
    scratch_seed: int = 0,
    use_cache: bool = True,
    baselines: bool = True,
    scorer: str | None = None,
) -> PairsResult:
    """Score every pair of ``suite`` with every model (and, with ``from_scratch``, a random init of each
    with ``scratch_seed``, scored the same way; without ``include_models`` only those). Paradigms already
    scored with the same key are read from the model's ``bench-cache/`` (``use_cache``). With ``baselines``,
    the count models, the length heuristic and every model's equal-length accuracy are added
    (``add_pair_baselines``). ``scorer``: a registered causal reading (``lm_scoring.causal_readings``) instead of the
    one each model trained for."""
    if not models:
        raise ConfigError("no model to benchmark: pass a run directory")
    paradigms = load_suite(suite, data_dir, max_eval_examples)
    sources = [m if isinstance(m, ModelSource) else open_source(m, step) for m in models]
    # refuse head-less models before scoring anything
    opened = []
    for src in sources:
        sm = open_scoring_model(src, step)
        scorers = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, pll, sm.doc_start, scorer)
        if include_models:
            opened.append((sm, scorers))
        if from_scratch:
            opened.append((open_scoring_model(src, step, from_scratch=True, scratch_seed=scratch_seed), scorers))
    if pll != "word-l2r" and not any(s.name.startswith("pll") for _, scorers in opened for s in scorers):
        used = ", ".join(sorted({f"{sm.source.name}: {scorers[0].name}" for sm, scorers in opened if scorers}))
        raise ConfigError(f"--pll {pll}: chooses the pseudo-log-likelihood of bidirectional models, but no model here "
                          f"is scored by PLL ({used}); leave --pll out")
    result = PairsResult(suite, [p.name for p in paradigms], phenomena(paradigms),
                         {p.name: p.fingerprint() for p in paradigms}, {p.name: len(p.pairs) for p in paradigms},
                         str(Path(data_dir).resolve()) if data_dir is not None else "hub", max_eval_examples)
    dev = resolve_device(device)
    precision = _scoring_precision(precision, dev)
    for sm, scorers in opened:
        cache = _PairsCache(sm, suite, precision, max_eval_examples, dev, scratch_seed) if use_cache else None
        try:
            result.models.append(_score_model(sm, scorers, paradigms, dev, batch_tokens, precision, progress, cache))
        except ZooError as exc:  # one model's failure keeps the others' results
            name = f"{sm.source.name} (from scratch)" if sm.from_scratch else sm.source.name
            log.error("%s: not scored: %s", name, exc)
            result.failed[name] = str(exc)
    if baselines:
        add_pair_baselines(result, sources, paradigms)
    if write_reports:
        result.written = [str(p) for p in write_reports_of(result)]
    return result


def _score_model(sm: ScoringModel, scorers: list[Scorer], paradigms: list[Paradigm], device: torch.device,
                 batch_tokens: int, precision: str, progress: Progress | None,
                 cache: _PairsCache | None = None) -> PairsModelResult:
    src = sm.source
    name = f"{src.name} (from scratch)" if sm.from_scratch else src.name
    res = PairsModelResult(name, str(src.path) if src.path else None, src.backbone_name, sm.objective,
                           src.scratch().checkpoint_id if sm.from_scratch else src.checkpoint_id, sm.from_scratch,
                           [v for s in scorers for v in s.variants])
    backbone = sm.backbone.to(device)
    heads = {k: h.to(device) for k, h in sm.heads.items()}
    load0, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    for scorer in scorers:
        correct: dict[str, dict[str, str]] = {}  # paradigm -> variant -> "0110..."
        for p in paradigms:
            if cache is not None and (hit := cache.read(scorer, p)) is not None:
                correct[p.name] = hit
        todo = [p for p in paradigms if p.name not in correct]
        res.cached += len(paradigms) - len(todo)
        if todo:
            correct.update(_score_paradigms(scorer, sm, backbone, heads, todo, batch_tokens, precision, progress, name))
            if cache is not None:
                for p in todo:
                    cache.write(scorer, p, correct[p.name])
        if len(todo) < len(paradigms):
            log.info("%s: %s: %d of %d paradigms from the result cache", name, scorer.name,
                     len(paradigms) - len(todo), len(paradigms))
        for p in paradigms:
            for variant, bits in correct[p.name].items():
                res.correct.setdefault(variant, {})[p.name] = bits
                res.accuracy.setdefault(variant, {})[p.name] = bits.count("1") / len(bits)
    res.seconds, res.cpu_seconds, res.precision = time.perf_counter() - t0, time.process_time() - c0, precision
    res.threads, res.loadavg = torch.get_num_threads(), [round(load0, 1), round(os.getloadavg()[0], 1)]
    log.info("%s: %s macro average %.1f (%.1f s, %.1f CPU s)", name, res.scorers[0], 100 * res.average(), res.seconds,
             res.cpu_seconds)
    return res


def _score_paradigms(scorer: Scorer, sm: ScoringModel, backbone: Backbone, heads: dict[str, nn.Module],
                     paradigms: list[Paradigm], batch_tokens: int, precision: str, progress: Progress | None,
                     name: str) -> dict[str, dict[str, str]]:
    """paradigm -> score variant -> per-pair correctness; all sentences in one call (full, length-sorted batches)."""
    good = [x.good for p in paradigms for x in p.pairs]
    bad = [x.bad for p in paradigms for x in p.pairs]
    bounds = np.cumsum([0, *(len(p.pairs) for p in paradigms)])
    if progress is not None:
        progress.start(f"{name}: {scorer.name}", 1)
    scores = score_sentences(scorer, backbone, heads, sm.source.tokenizer, sm.source.special, good + bad,
                             batch_tokens, precision, sm.unigram() if scorer.unigram else None)
    out: dict[str, dict[str, str]] = {}
    for variant, s in scores.items():
        ok = s[:len(good)] > s[len(good):]
        for p, lo, hi in zip(paradigms, bounds[:-1], bounds[1:], strict=True):
            out.setdefault(p.name, {})[variant] = "".join("1" if x else "0" for x in ok[lo:hi])
    if progress is not None:
        progress.advance(1)
        progress.finish()
    return out


class _PairsCache:
    """Per-pair correctness of one model, per (scorer, paradigm), in ``<model>/bench-cache/``."""

    def __init__(self, sm: ScoringModel, suite: str, precision: str, max_eval_examples: int | None,
                 device: torch.device, scratch_seed: int = 0) -> None:
        src = sm.source
        self.dir = None if src.path is None else src.path / CACHE_DIR
        self.suite, self.from_scratch = suite, sm.from_scratch
        self.parts = {"v": CACHE_VERSION, "kind": KIND, "suite": suite, "objective": sm.objective,
                      "checkpoint": src.scratch().checkpoint_id if sm.from_scratch else src.checkpoint_id,
                      "tokenizer": src.tokenizer_hash, "precision": precision, "max_eval_examples": max_eval_examples,
                      "device": device.type}
        if sm.from_scratch:  # each seed's random init is a different model
            self.parts["scratch_seed"] = scratch_seed

    def _where(self, scorer: Scorer, p: Paradigm) -> tuple[Path | None, str]:
        key = hash_key({**self.parts, "scorer": scorer.name, "reading": dataclasses.asdict(scorer), "paradigm": p.name,
                        "data": p.fingerprint()})
        if self.dir is None:
            return None, key
        scratch = f"scratch{self.parts['scratch_seed']}-" if self.from_scratch else ""
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.suite}-{p.name}-{scratch}{scorer.name}")
        return self.dir / f"{label}-{key[:16]}.json", key

    def read(self, scorer: Scorer, p: Paradigm) -> dict[str, str] | None:
        path, key = self._where(scorer, p)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            correct = {v: str(data["correct"][v]) for v in scorer.variants}
            if any(len(bits) != len(p.pairs) or bits.strip("01") for bits in correct.values()):
                raise ValueError(f"expected {len(p.pairs)} 0/1 flags per score")
            return correct
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable cached result %s (%s); recomputing", path, exc)
            return None

    def write(self, scorer: Scorer, p: Paradigm, correct: dict[str, str]) -> None:
        path, key = self._where(scorer, p)
        if path is None:
            return
        try:
            write_result_json(path, {"key": key, **self.parts, "scorer": scorer.name, "paradigm": p.name,
                               "data_fingerprint": p.fingerprint(), "pairs": len(p.pairs), "correct": correct,
                               "created": time.time()})
        except OSError as exc:
            log.warning("cannot write the result cache %s (%s); results are not cached", path, exc)


def write_reports_of(result: PairsResult) -> list[Path]:
    """The suite's entry in each model's ``bench.json`` / ``bench.md`` (a baseline goes beside its model)."""

    written = []
    by_path: dict[str, list[PairsModelResult]] = {}
    for m in result.models:
        if m.path is not None:
            by_path.setdefault(m.path, []).append(m)
    for path, models in by_path.items():
        names = {m.name for m in models}
        own = replace(result, models=models, equal_length={k: v for k, v in result.equal_length.items() if k in names},
                      equal_pairs={k: v for k, v in result.equal_pairs.items() if k in names})
        written += merge_suite_report(Path(path), result.suite, own.to_dict())
    return written
