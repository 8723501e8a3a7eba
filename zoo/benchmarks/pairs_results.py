"""Results of zero-shot minimal-pair suites: per model, per paradigm and phenomenon, with the per-pair
correctness that paired statistics need; their ``bench.json`` form and Markdown tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zoo import __version__
from zoo.benchmarks.model_record import ModelRecord

KIND = "minimal-pairs"
EQUAL_LENGTH_DEFINITION = ("accuracy on the pairs whose two sentences have the same number of tokens (the model's "
                           "tokenizer), where sentence length cannot decide")
BASELINES_NOTE = ("unigram / bigram / trigram: interpolated Kneser-Ney count models over the same tokenizer, trained "
                  "on the training split of the run's corpus, each sentence scored whole (start-of-sentence context, "
                  "end-of-sentence symbol); fewer tokens: the sentence with fewer tokens wins, ties count half. A "
                  "model has learnt something beyond counts only where it is above the best count model.")
AVERAGE_DEFINITION = ("macro average over paradigms of the share of pairs whose acceptable sentence scores strictly "
                      "higher; a phenomenon is the mean over its paradigms")


@dataclass
class PairsModelResult(ModelRecord):
    scorers: list[str]  # score variants, the headline one first
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> paradigm -> accuracy
    correct: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> paradigm -> "0110..."
    seconds: float = 0.0
    precision: str = "fp32"
    cpu_seconds: float = 0.0  # process CPU time of the scoring, all threads (a shared machine inflates wall time)
    threads: int = 0
    loadavg: list[float] = field(default_factory=list)  # 1-minute load average before and after the scoring
    cached: int = 0  # (scorer, paradigm) results read from the result cache: their time is not in ``seconds``

    def average(self, variant: str | None = None) -> float:
        return float(np.mean(list(self.accuracy[variant or self.scorers[0]].values())))

    def groups(self, groups: dict[str, list[str]], variant: str | None = None) -> dict[str, float]:
        acc = self.accuracy[variant or self.scorers[0]]
        return {g: float(np.mean([acc[p] for p in ps])) for g, ps in groups.items()}


@dataclass
class PairsResult:
    suite: str
    paradigms: list[str]
    groups: dict[str, list[str]]  # phenomenon -> paradigms
    fingerprints: dict[str, str]
    pairs: dict[str, int]
    data: str
    max_eval_examples: int | None
    models: list[PairsModelResult] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # model name -> why it could not be scored
    written: list[str] = field(default_factory=list)  # the report files written (bench.json, bench.md per model)
    # trivial baselines on the same pairs (``zoo.benchmarks.ngram``): name -> paradigm -> accuracy
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    baseline_equal_length: dict[str, float] = field(default_factory=dict)  # name -> accuracy on equal-length pairs
    equal_length: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> variant -> the same
    equal_pairs: dict[str, int] = field(default_factory=dict)  # model -> pairs of equal token length
    baseline_notes: list[str] = field(default_factory=list)
    equal_masks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # tokenizer hash -> paradigm -> mask
    # tokenizer hash -> {"label": the baselines' name suffix ("" with one tokenizer), "baselines": their names,
    # "equal_pairs": pairs of equal token length under it}
    baseline_tokenizers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def baseline_average(self, name: str) -> float:
        return float(np.mean([self.baselines[name][p] for p in self.paradigms]))

    def baseline_groups(self, name: str) -> dict[str, float]:
        acc = self.baselines[name]
        return {g: float(np.mean([acc[p] for p in ps])) for g, ps in self.groups.items()}

    def to_dict(self) -> dict[str, Any]:
        models = []
        for m in self.models:
            head = m.scorers[0]
            tasks = {}
            for p in self.paradigms:
                acc = m.accuracy[head][p]
                tasks[p] = {"metrics": ["accuracy"], "score": acc,
                            "summary": {"accuracy": {"median": acc, "min": acc, "max": acc, "std": 0.0}},
                            "seeds": [{"seed": 0, "scores": {"accuracy": acc}, "train_examples": 0,
                                       "eval_examples": {"pairs": self.pairs[p]}, "seconds": 0.0, "cached": False}],
                            "recipe": {"scorer": head}, "data_fingerprint": self.fingerprints[p]}
            models.append({
                **m.record(), "average": m.average(),
                "scorer": head, "seconds": m.seconds, "cpu_seconds": m.cpu_seconds, "threads": m.threads,
                "loadavg": m.loadavg, "cached": m.cached, "precision": m.precision, "groups": m.groups(self.groups), "tasks": tasks,
                "scorers": {v: {"average": m.average(v), "groups": m.groups(self.groups, v), "tasks": m.accuracy[v]}
                            for v in m.scorers},
                "correct": m.correct})
        return {"suite": self.suite, "kind": KIND, "tasks": self.paradigms, "groups": self.groups, "seeds": [0],
                "data": self.data, "max_train_examples": None, "max_eval_examples": self.max_eval_examples,
                "pairs": self.pairs, "zoo_version": __version__, "average_definition": AVERAGE_DEFINITION,
                "models": models, "baselines": {
                    name: {"average": self.baseline_average(name), "groups": self.baseline_groups(name),
                           "tasks": acc, "equal_length": _finite(self.baseline_equal_length.get(name))}
                    for name, acc in self.baselines.items()},
                "equal_length": {"definition": EQUAL_LENGTH_DEFINITION, "pairs": self.equal_pairs,
                                 "accuracy": {m: {v: _finite(x) for v, x in acc.items()}
                                              for m, acc in self.equal_length.items()}},
                "baseline_notes": self.baseline_notes, "baseline_tokenizers": self.baseline_tokenizers}

    def table(self) -> tuple[list[str], list[list[str]]]:
        """One row per phenomenon, the macro average and the accuracy on equal-length pairs; one column per
        (model, score variant), then one per trivial baseline (count models, the length heuristic)."""
        cols = [(m, v) for m in self.models for v in m.scorers]
        failed = [f"{name} [failed]" for name in self.failed]
        names = list(self.baselines)
        columns = ["phenomenon", "paradigms", *(f"{m.name} [{v}]" for m, v in cols), *failed, *names]
        rows = [[g, str(len(ps)), *(f"{100 * m.groups(self.groups, v)[g]:.1f}" for m, v in cols), *["failed"] * len(failed),
                 *(f"{100 * self.baseline_groups(n)[g]:.1f}" for n in names)]
                for g, ps in self.groups.items()]
        rows.append(["macro average (paradigms)", str(len(self.paradigms)),
                     *(f"{100 * m.average(v):.1f}" for m, v in cols), *["failed"] * len(failed),
                     *(f"{100 * self.baseline_average(n):.1f}" for n in names)])
        if self.equal_length:
            def cell(x: float | None) -> str:
                return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}"

            pairs = sorted(set(self.equal_pairs.values()))
            rows.append([f"equal-length pairs ({'/'.join(f'{n:,}' for n in pairs)})", "-",
                         *(cell(self.equal_length.get(m.name, {}).get(v)) for m, v in cols), *["-"] * len(failed),
                         *(cell(self.baseline_equal_length.get(n)) for n in names)])
        return columns, rows

    def markdown(self) -> str:
        columns, rows = self.table()
        n = sorted(set(self.pairs.values()))
        lines = [f"## {self.suite.upper()} (minimal pairs, zero-shot)", "",
                 f"Accuracy x100 by phenomenon; {len(self.paradigms)} paradigms, {'/'.join(map(str, n))} pairs each. "
                 f"Scorer in brackets. Data: {self.data}." + (f" {BASELINES_NOTE}" if self.baselines else ""),
                 *(["", *self.baseline_notes] if self.baseline_notes else []), "",
                 "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"


def _finite(x: float | None) -> float | None:
    """NaN (no pair of equal length) as JSON null."""
    return None if x is None or math.isnan(x) else x


def pairs_result_from_dict(d: dict[str, Any]) -> PairsResult:
    """The inverse of ``PairsResult.to_dict`` (a ``bench.json`` suite entry)."""
    models = [PairsModelResult(*ModelRecord.read(m), list(m["scorers"]), {v: s["tasks"] for v, s in m["scorers"].items()},
                               m.get("correct", {}), m.get("seconds", 0.0), m.get("precision", "fp32"),
                               m.get("cpu_seconds", 0.0), m.get("threads", 0), m.get("loadavg", []), m.get("cached", 0))
              for m in d["models"]]
    fingerprints = {p: t["data_fingerprint"] for p, t in d["models"][0]["tasks"].items()} if d["models"] else {}
    base = d.get("baselines") or {}
    equal = d.get("equal_length") or {}
    return PairsResult(d["suite"], d["tasks"], d["groups"], fingerprints, d["pairs"], d["data"],
                       d.get("max_eval_examples"), models, baselines={n: b["tasks"] for n, b in base.items()},
                       baseline_equal_length={n: math.nan if b.get("equal_length") is None else b["equal_length"]
                                              for n, b in base.items()},
                       equal_length={m: {v: math.nan if x is None else x for v, x in acc.items()}
                                     for m, acc in equal.get("accuracy", {}).items()},
                       equal_pairs=equal.get("pairs", {}),
                       baseline_notes=list(d.get("baseline_notes", [])),
                       baseline_tokenizers=dict(d.get("baseline_tokenizers") or {}))


def correctness(entry: dict[str, Any], variant: str | None = None) -> dict[str, np.ndarray]:
    """Per-pair correctness of one model entry of a ``bench.json`` minimal-pair suite: paradigm -> bool
    array in file order (for paired tests across models scored on the same pairs)."""
    correct = entry["correct"][variant or entry["scorer"]]
    return {p: flags(s) for p, s in correct.items()}


def flags(bits: str) -> np.ndarray:
    """A stored per-pair correctness string (``"0110..."``) as a bool array."""
    return np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1")
