"""Aggregation, report and figures from synthetic results (no training, no fine-tuning)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from zoo.compare.plots import OBJECTIVE_COLORS, curves_figure, figures, objective_color, scores_figure
from zoo.compare.report import (
    cross_table,
    item_table,
    markdown,
    pair_table,
    reading,
    score_table,
    write_report,
)
from zoo.compare.results import ComparisonResult, ItemValues, RunInfo
from zoo.compare.stats import median_interval, seeds_needed
from zoo.compare.study import BASELINE

TASKS = ["sst2", "mrpc"]
# (backbone, objective) -> per-seed (sst2, mrpc) task scores
SCORES = {
    ("bert", "mlm"): [(0.80, 0.70), (0.82, 0.72), (0.79, 0.69)],
    ("bert", "mlm+nsp"): [(0.78, 0.71), (0.81, 0.70), (0.77, 0.66)],
    ("gpt", "clm"): [(0.70, 0.66), (0.72, 0.65), (0.69, 0.64)],
    ("bert", BASELINE): [(0.60, 0.60), (0.61, 0.62), (0.59, 0.61)],
    ("gpt", BASELINE): [(0.58, 0.60), (0.60, 0.61), (0.57, 0.60)],
}


def _run(backbone: str, objective: str, seed: int, scores: tuple[float, float], tmp: Path) -> RunInfo:
    baseline = objective == BASELINE
    info = RunInfo(name=f"{backbone}-{objective}-seed{seed}", backbone=backbone, objective=objective, seed=seed,
                   path=str(tmp / f"{backbone}-{objective}-{seed}"), baseline=baseline, budget="1e12flops")
    info.scores = dict(zip(TASKS, scores, strict=True))
    info.metrics = {"sst2": {"accuracy": scores[0]}, "mrpc": {"accuracy": scores[1] + 0.02, "f1": scores[1] - 0.02}}
    if not baseline:
        scale = {"mlm": 7.0, "mlm+nsp": 7.7, "clm": 6.0}[objective]
        info.steps, info.flops, info.tokens, info.train_time_s, info.wall_s = 100, 1e12, 200_000 + seed, 40.0, 55.0
        info.evals = [{"kind": "eval", "step": s, "flops": s * 1e10, "tokens": s * 2048, "loss": scale - 0.01 * s}
                      for s in (25, 50, 75, 100)]
    return info


def synthetic(tmp: Path, failed: bool = False, drop_seed: bool = False, **extra: object) -> ComparisonResult:
    runs, baselines = [], []
    for (bb, obj), per_seed in SCORES.items():
        for seed, scores in enumerate(per_seed):
            if drop_seed and (bb, obj) == ("bert", "mlm+nsp") and seed == 2:
                continue
            (baselines if obj == BASELINE else runs).append(_run(bb, obj, seed, scores, tmp))
    if failed:
        runs.append(RunInfo("gpt-span-seed0", "gpt", "span", 0, str(tmp / "x"), status="failed",
                            error="non-finite loss nan at step 3"))
    return ComparisonResult(out=str(tmp), mode="study", suite="glue", tasks=TASKS,
                            task_titles={"sst2": "SST-2", "mrpc": "MRPC"},
                            task_metrics={"sst2": ["accuracy"], "mrpc": ["accuracy", "f1"]}, runs=runs,
                            baselines=baselines, settings={"budget": "1e12flops", "seeds": [0, 1, 2], "size": "tiny",
                                                           "objectives": ["mlm", "mlm+nsp", "clm"]},
                            skipped=[{"objective": "mlm", "backbone": "gpt", "reason": "needs a bidirectional backbone"}],
                            bench={"fine_tune_seeds": 1, "data": "glue/", "recipes": {"sst2": {"lr": 1e-4}}},
                            command="zoo compare --objectives mlm,mlm+nsp,clm --budget 1e12flops",
                            **extra)  # type: ignore[arg-type]


def test_groups_hold_medians_and_order_statistic_intervals(tmp_path: Path) -> None:
    result = synthetic(tmp_path)
    labels = [g.label for g in result.groups]
    assert labels == ["bert mlm", "bert mlm+nsp", "gpt clm", f"bert {BASELINE}", f"gpt {BASELINE}"]
    mlm = result.groups[0]
    sst2 = [s[0] for s in SCORES[("bert", "mlm")]]
    assert mlm.tasks["sst2"] == median_interval(sst2)
    assert mlm.tasks["sst2"].point == pytest.approx(0.80)
    averages = [np.mean(s) for s in SCORES[("bert", "mlm")]]
    assert mlm.average.point == pytest.approx(np.median(averages))
    assert (mlm.average.low, mlm.average.high) == pytest.approx((min(averages), max(averages)))  # n = 3, median
    assert mlm.average.confidence == pytest.approx(0.75) and mlm.average.label == "75% order-statistic"
    mean = synthetic(tmp_path, statistic="mean").groups[0].average
    assert mean.label == "95% t" and mean.point == pytest.approx(np.mean(averages))


def test_pairs_are_same_backbone_and_paired_by_seed(tmp_path: Path) -> None:
    result = synthetic(tmp_path)
    keys = [(p.backbone, p.a, p.b) for p in result.pairs]
    assert keys == [("bert", "mlm", "mlm+nsp"), ("bert", "mlm", BASELINE), ("bert", "mlm+nsp", BASELINE),
                    ("gpt", "clm", BASELINE)]  # never bert x gpt
    first = result.pairs[0]
    assert first.paired
    diffs = [np.mean(a) - np.mean(b) for a, b in zip(SCORES[("bert", "mlm")], SCORES[("bert", "mlm+nsp")],
                                                     strict=True)]
    assert first.diff.point == pytest.approx(np.mean(diffs)) and first.diff.label == "95% t"
    assert first.wins == sum(d > 0 for d in diffs) == 3
    assert first.seeds.p == pytest.approx(2 / 2**3)  # all 3 seeds ahead: the smallest p 3 seeds allow
    # Holm over the 4 pairs: all have p = 0.25, so every adjusted p is min(1, 4 x 0.25) = 1
    assert [p.seeds.p_holm for p in result.pairs] == pytest.approx([1.0] * 4)
    assert all(p.diff.excludes(0.0) for p in result.pairs[1:])  # pretraining beats scratch on every seed


def test_missing_seed_makes_the_pair_unpaired(tmp_path: Path) -> None:
    result = synthetic(tmp_path, drop_seed=True)
    first = result.pairs[0]
    assert not first.paired and first.wins is None
    assert first.diff.n == 2 and first.seeds.test == "welch" and not first.items


def test_markdown_report(tmp_path: Path) -> None:
    result = synthetic(tmp_path, failed=True)
    text = markdown(result, {"scores": tmp_path / "scores.png", "curves": tmp_path / "curves.png"})
    assert "| backbone | objective | SST-2 | MRPC | average | seeds | interval |" in text
    mlm = result.groups[0]
    cell = f"{100 * mlm.tasks['sst2'].point:.1f} [{100 * mlm.tasks['sst2'].low:.1f}, {100 * mlm.tasks['sst2'].high:.1f}]"
    assert f"| bert | mlm | {cell} |" in text and "| 3 | 75% order-statistic |" in text
    assert "smallest p the sign-flip test can give is 2/2^3 = 0.25" in text and "4 pair(s) were tested" in text
    sd = float(np.median([p.seeds.sd for p in result.pairs]))
    assert (f"(sd {100 * sd:.2f} points; 80% power, paired t test at 0.05/4 = 0.0125): 0.5 points: "
            f"{seeds_needed(0.005, sd, tests=4)},") in text
    assert "asks for p <= 0.05/4 = 0.0125, which the sign-flip test can reach only from 8 seeds: with 3 no pair" in text
    assert "1e+12 flops" in text  # the budget is stated
    assert "not on one scale" in text
    assert "![Validation loss vs training FLOPs](curves.png)" in text
    assert "![Differences" not in text  # figure not given: not referenced
    assert "`mlm` x `gpt`: needs a bidirectional backbone" in text
    assert "`gpt-span-seed0`: non-finite loss" in text
    assert "| MRPC accuracy | MRPC f1 |" in text.replace("SST-2 accuracy | ", "")
    columns, rows = pair_table(result)
    assert rows[0][:3] == ["bert", "mlm", "mlm+nsp"] and rows[0][6] == "3/3 seeds"
    # the interval excludes 0, but 3 seeds cannot make a significant sign-flip test after Holm
    assert rows[1][8] == "mlm ahead, not significant after Holm"
    assert "constant predictor" not in text  # no constant scores given: no row


def test_constant_predictor_row_and_readings(tmp_path: Path) -> None:
    result = synthetic(tmp_path, constant={"sst2": 0.509, "mrpc": 0.748}, bag_of_words={"sst2": 0.8, "mrpc": 0.7})
    _, rows = score_table(result)
    assert rows[-2] == ["-", "constant predictor", "50.9", "74.8", "62.9", "-", "none (no randomness)"]
    assert rows[-1] == ["-", "bag of words", "80.0", "70.0", "75.0", "-", "none (no randomness)"]
    text = markdown(result, {})
    assert "majority class of the training labels" in text and "logistic regression" in text


def test_arms_on_different_backbones_are_compared_unpaired(tmp_path: Path) -> None:
    """bert mlm / mlm+nsp vs gpt clm: Welch over seeds (scipy's ttest_ind with unequal variances), Holm over
    those two rows alone; baselines and same-backbone pairs are not in this family."""
    import scipy.stats

    result = synthetic(tmp_path)
    keys = [(c.a.label, c.b.label) for c in result.cross_pairs]
    assert keys == [("bert mlm", "gpt clm"), ("bert mlm+nsp", "gpt clm")]
    clm = [float(np.mean(s)) for s in SCORES[("gpt", "clm")]]
    ps = []
    for c, arm in zip(result.cross_pairs, ("mlm", "mlm+nsp"), strict=True):
        a = [float(np.mean(s)) for s in SCORES[("bert", arm)]]
        ref = scipy.stats.ttest_ind(a, clm, equal_var=False)
        low, high = ref.confidence_interval(0.95)
        assert not c.seeds.paired and c.seeds.test == "welch" and c.seeds.wins is None
        assert c.seeds.diff.point == pytest.approx(np.mean(a) - np.mean(clm))
        assert (c.seeds.diff.low, c.seeds.diff.high) == pytest.approx((low, high))
        assert c.seeds.p == pytest.approx(ref.pvalue)
        ps.append(ref.pvalue)
    low_p, high_p = sorted(ps)  # Holm over two: 2 x the smaller p, then the larger p (kept monotone)
    adjusted = {low_p: min(1.0, 2 * low_p), high_p: max(min(1.0, 2 * low_p), high_p)}
    assert [c.seeds.p_holm for c in result.cross_pairs] == pytest.approx([adjusted[p] for p in ps])
    columns, rows = cross_table(result)
    assert columns[:4] == ["A", "B", "seeds (A, B)", "A - B (avg x100)"]
    first = result.cross_pairs[0].seeds
    assert rows[0][:4] == ["bert mlm", "gpt clm", "3, 3",
                           f"{100 * first.diff.point:+.1f} [{100 * first.diff.low:+.1f}, {100 * first.diff.high:+.1f}]"]
    assert rows[0][-1] == reading(first.diff, first.p_holm, "bert mlm", "gpt clm")
    text = markdown(result, {})
    assert "## Across backbones (unpaired)" in text and "Holm-adjusted over these 2 difference(s) alone" in text
    assert "| bert mlm | gpt clm | 3, 3 |" in text
    saved = result.to_dict()["across_backbones"]
    assert [(x["a"]["objective"], x["b"]["backbone"]) for x in saved] == [("mlm", "gpt"), ("mlm+nsp", "gpt")]
    assert saved[1]["seeds"] == result.cross_pairs[1].seeds.to_dict()
    one_backbone = ComparisonResult(out=str(tmp_path), mode="runs", suite="glue", tasks=TASKS, task_titles={},
                                    task_metrics={}, runs=[r for r in result.runs if r.backbone == "bert"],
                                    baselines=result.baselines)
    assert one_backbone.cross_pairs == [] and "Across backbones" not in markdown(one_backbone, {})


def _items(seed: int, n: int, p: float) -> ItemValues:
    return ItemValues("mean", (np.random.default_rng(seed).random((1, n)) < p).astype(float))


def test_item_level_pairs_with_holm(tmp_path: Path) -> None:
    """Per-item correctness on SST-2: mlm right on 90% of 400 items, mlm+nsp on 60%: distinguishable over
    items even with 3 seeds; clm has no per-item values and gets no item-level test."""
    items = {f"bert-mlm-seed{s}": {"sst2": _items(s, 400, 0.9)} for s in range(3)}
    items |= {f"bert-mlm+nsp-seed{s}": {"sst2": _items(10 + s, 400, 0.6)} for s in range(3)}
    items |= {f"bert-{BASELINE}-seed{s}": {"sst2": _items(20 + s, 400, 0.6)} for s in range(3)}
    result = synthetic(tmp_path, items=items)
    by_key = {(p.a, p.b): p for p in result.pairs}
    first = by_key[("mlm", "mlm+nsp")].items["sst2"]
    assert first.diff.point == pytest.approx(0.3, abs=0.05) and first.diff.low > 0.15 and first.p < 0.01
    assert first.seeds == 3 and first.items == 400
    null = by_key[("mlm+nsp", BASELINE)].items["sst2"]
    assert null.diff.low < 0 < null.diff.high  # same accuracy: not distinguishable
    assert not by_key[("clm", BASELINE)].items
    ps = sorted(p.items["sst2"].p for p in result.pairs if p.items)
    holms = sorted(p.items["sst2"].p_holm for p in result.pairs if p.items)
    assert holms[0] == pytest.approx(min(1.0, 3 * ps[0]))
    _, rows = item_table(result)
    assert [r[:4] for r in rows][0] == ["bert", "mlm", "mlm+nsp", "SST-2"]
    assert rows[0][-1] == "mlm ahead, the seed-level test does not agree (3 seeds)"  # 3 seeds: sign-flip p >= 0.25
    assert any(r[-1] == "not distinguishable" for r in rows)
    assert "over evaluation items" in markdown(result, {})


def test_item_sets_beyond_the_tasks(tmp_path: Path) -> None:
    """Per-item correctness under a key that is not a task (all pairs of a zero-shot suite) is compared too."""
    items = {f"bert-{o}-seed{s}": {"all pairs": _items(s + (0 if o == "mlm" else 10), 300, 0.8 if o == "mlm" else 0.5)}
             for o in ("mlm", "mlm+nsp") for s in range(3)}
    result = synthetic(tmp_path, items=items)
    first = result.pairs[0]
    assert (first.a, first.b) == ("mlm", "mlm+nsp") and list(first.items) == ["all pairs"]
    assert first.items["all pairs"].diff.low > 0.1 and first.items["all pairs"].items == 300
    assert item_table(result)[1][0][3] == "all pairs"


def test_score_table_single_seed_says_so(tmp_path: Path) -> None:
    one = RunInfo("bert-mlm-seed0", "bert", "mlm", 0, str(tmp_path), scores={"sst2": 0.8, "mrpc": 0.7})
    result = ComparisonResult(out=str(tmp_path), mode="runs", suite="glue", tasks=TASKS, task_titles={},
                              task_metrics={}, runs=[one], baselines=[])
    _, rows = score_table(result)
    assert rows == [["bert", "mlm", "80.0 (1 seed)", "70.0 (1 seed)", "75.0 (1 seed)", "1", "-"]]


def test_figures_one_panel_per_objective_and_fixed_colours(tmp_path: Path) -> None:
    result = synthetic(tmp_path)
    fig = curves_figure(result)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["mlm", "mlm+nsp", "clm"]
    for ax in panels:
        assert "FLOPs" in ax.get_xlabel() and "validation loss" in ax.get_ylabel()
        assert ax.get_legend() is not None
        colours = {to_hex(line.get_color()) for line in ax.get_lines() if line.get_label() != "_nolegend_"
                   and len(line.get_xdata()) > 2}
        assert colours == {objective_color(ax.get_title())}
    scores = scores_figure(result)
    ticks = scores.axes[0].get_xticklabels()
    assert [t.get_text().split("\n")[0] for t in ticks] == ["mlm", "mlm+nsp", "clm", BASELINE, BASELINE]
    assert [to_hex(t.get_color()) for t in ticks][:3] == [objective_color(o) for o in ("mlm", "mlm+nsp", "clm")]
    assert [ax.get_title() for ax in scores.axes if ax.get_visible()] == ["SST-2", "MRPC", "Average"]


def test_colour_map_is_fixed_by_name() -> None:
    assert objective_color("mlm") == OBJECTIVE_COLORS["mlm"]
    assert objective_color("clm") != objective_color("mlm")
    assert objective_color(BASELINE) == "#7f7f7f"
    made_up = objective_color("my-objective")
    assert made_up == objective_color("my-objective")  # stable, not by order of appearance
    assert made_up not in OBJECTIVE_COLORS.values()


def test_write_report_files(tmp_path: Path) -> None:
    result = synthetic(tmp_path, constant={"sst2": 0.509, "mrpc": 0.748})
    (tmp_path / "pairs.png").write_bytes(b"stale")
    path = write_report(result, tmp_path)
    assert path == tmp_path / "report.md"
    for name in ("curves", "scores", "pairs", "compute"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [g["objective"] for g in saved["groups"]][:3] == ["mlm", "mlm+nsp", "clm"]
    assert saved["constant"]["average"] == pytest.approx((0.509 + 0.748) / 2)
    assert saved["pairs"][0]["seeds"]["paired"] is True and saved["pairs"][0]["seeds"]["test"] == "sign-flip"
    assert saved["pairs"][0]["seeds"] == json.loads(json.dumps(result.pairs[0].seeds.to_dict()))
    # Without pairs (a single objective and no baseline) the old pairs.png must not linger.
    lone = ComparisonResult(out=str(tmp_path), mode="runs", suite="glue", tasks=TASKS, task_titles={},
                            task_metrics={}, runs=[r for r in result.runs if r.objective == "mlm"], baselines=[])
    write_report(lone, tmp_path)
    assert not (tmp_path / "pairs.png").exists()
    assert set(figures(lone)) == {"curves", "scores", "compute"}


PARADIGMS = ["anaphor_agreement", "npi_licensing"]


def _pairs_study(tmp: Path, per_seed: dict[tuple[str, str], list[float]], bench: dict,
                 tokenizers: dict | None = None) -> ComparisonResult:
    """A minimal-pair study: each arm's per-seed macro accuracy, both paradigms at that value."""
    runs, baselines = [], []
    for (bb, obj), values in per_seed.items():
        for seed, v in enumerate(values):
            info = RunInfo(name=f"{bb}-{obj}-seed{seed}", backbone=bb, objective=obj, seed=seed,
                           path=str(tmp / f"{bb}-{obj}-{seed}"), baseline=obj == BASELINE)
            info.scores = dict.fromkeys(PARADIGMS, v)
            (baselines if obj == BASELINE else runs).append(info)
    return ComparisonResult(out=str(tmp), mode="study", suite="blimp", tasks=PARADIGMS,
                            task_titles={p: p for p in PARADIGMS}, task_metrics={p: ["accuracy"] for p in PARADIGMS},
                            runs=runs, baselines=baselines, tokenizers=tokenizers or {},
                            settings={"budget": "1e12flops", "seeds": [0, 1, 2], "size": "tiny"},
                            bench={"kind": "minimal-pairs", "suite": "blimp", "scorers": {},
                                   "groups": {"agreement": PARADIGMS}, **bench})


def _flat(v: float) -> dict[str, float]:
    return dict.fromkeys(PARADIGMS, v)


def test_count_model_regime_against_the_best_count_model(tmp_path: Path) -> None:
    """One tokenizer: every arm against the best count model by macro average; the length heuristic is no
    count model even when it scores higher; below / at / above from the arm's interval over seeds."""
    from zoo.compare.report import count_model_regime

    result = _pairs_study(tmp_path, {("gpt", "clm"): [0.60, 0.62, 0.64], ("gpt", "prefix"): [0.52, 0.55, 0.58],
                                     ("gpt", BASELINE): [0.44, 0.46, 0.48]},
                          {"baselines": {"unigram": _flat(0.47), "bigram": _flat(0.53), "trigram": _flat(0.55),
                                         "fewer tokens": _flat(0.70)},
                           "baselines_equal_length": {"unigram": 0.4, "bigram": 0.5, "trigram": 0.5,
                                                      "fewer tokens": 0.5}, "equal_pairs": 2563})
    averages = {g.label: g.average for g in result.groups}
    assert averages["gpt clm"].low > 0.55 and averages["gpt prefix"].low < 0.55 < averages["gpt prefix"].high
    assert count_model_regime(result) == [
        "Against the best count model (trigram, 55.0): gpt clm above; gpt prefix at; gpt from scratch below. "
        "Pretraining has bought something a count cannot give only where a row is above it; a random init is no "
        "measure of that."]
    text = markdown(result, {})
    assert count_model_regime(result)[0] in text
    assert "The last row is the accuracy on the 2,563 pairs whose two sentences have the same number of tokens" in text
    # no count model (an exported model carries no corpus): no sentence
    assert count_model_regime(_pairs_study(tmp_path, {("gpt", "clm"): [0.6, 0.62, 0.64]},
                                           {"baselines": {"fewer tokens": _flat(0.5)}})) == []


def test_count_model_regime_per_tokenizer_family(tmp_path: Path) -> None:
    """A bert arm on WordPiece and a gpt arm on BPE: each is set against the best count model on its own
    tokens, not the best over both tokenizers, and the equal-length sentence gives each tokenizer's count."""
    from zoo.compare.report import count_model_regime

    bpe, wordpiece = "b" * 64, "w" * 64
    gpt_tokens, bert_tokens = "gpt-clm-seed0 tokens", "bert-mlm-seed0 tokens"
    counts = {f"unigram ({gpt_tokens})": 0.48, f"trigram ({gpt_tokens})": 0.60, f"fewer tokens ({gpt_tokens})": 0.49,
              f"unigram ({bert_tokens})": 0.50, f"trigram ({bert_tokens})": 0.52, f"fewer tokens ({bert_tokens})": 0.51}
    bench = {"baselines": {n: _flat(v) for n, v in counts.items()},
             "baselines_equal_length": dict.fromkeys(counts, 0.5), "equal_pairs": 2563,
             "count_model_tokenizers": {
                 bpe: {"label": gpt_tokens, "baselines": [n for n in counts if gpt_tokens in n], "equal_pairs": 2563},
                 wordpiece: {"label": bert_tokens, "baselines": [n for n in counts if bert_tokens in n],
                             "equal_pairs": 2410}},
             "run_tokenizers": {**{f"gpt-{o}-seed{s}": bpe for o in ("clm", BASELINE) for s in range(3)},
                                **{f"bert-{o}-seed{s}": wordpiece for o in ("mlm", BASELINE) for s in range(3)},
                                **{f"t5-span-lm-seed{s}": bpe for s in range(3)}}}
    tokenizers = {"decoder": {"tokenizer_hash": bpe, "tokenizer_kind": "BPE"},
                  "encoder": {"tokenizer_hash": wordpiece, "tokenizer_kind": "WordPiece"}}
    arms = {("gpt", "clm"): [0.58, 0.60, 0.62], ("bert", "mlm"): [0.54, 0.55, 0.57], ("t5", "span-lm"): [0.48, 0.49, 0.5],
            ("gpt", BASELINE): [0.46, 0.47, 0.48], ("bert", BASELINE): [0.50, 0.53, 0.55]}
    result = _pairs_study(tmp_path, arms, bench, tokenizers)
    [line] = count_model_regime(result)
    assert line.startswith(
        "Against the best count model on each arm's own tokenizer (a count model on other tokens scores other token "
        f"sequences): trigram ({gpt_tokens}), 60.0: gpt clm at, t5 span-lm below, gpt from scratch below; "
        f"trigram ({bert_tokens}), 52.0: bert mlm above, bert from scratch at.")
    # against the best over both tokenizers (the BPE trigram, 60.0) bert mlm would read "below"
    assert {g.label: g.average for g in result.groups}["bert mlm"].high < 0.60
    text = markdown(result, {})
    assert line in text
    assert ("The last row is the accuracy on the pairs whose two sentences have the same number of tokens under the "
            f"column's tokenizer, where length cannot decide (2,563 under the BPE tokenizer ({gpt_tokens}), 2,410 "
            f"under the WordPiece tokenizer ({bert_tokens})).") in text
    assert "the 2,563 pairs" not in text
    # count models on one family's tokenizer only (a rewritten report): the other arms say they have none
    bench["count_model_tokenizers"] = {bpe: {"label": "decoder tokens", "baselines": list(counts)[:3],
                                             "equal_pairs": 2563}}
    bench["baselines"] = {n: _flat(v) for n, v in list(counts.items())[:3]}
    [line] = count_model_regime(_pairs_study(tmp_path, arms, bench, tokenizers))
    assert f"trigram ({gpt_tokens}), 60.0: gpt clm at, t5 span-lm below, gpt from scratch below." in line
    assert "No count model on the tokenizer of: bert mlm, bert from scratch." in line
