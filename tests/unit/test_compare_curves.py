"""Score-vs-compute curves and compute multipliers on simulated studies with a known multiplier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from zoo.compare.curves import (
    arm_curve,
    expit,
    fit_line,
    logit,
    multiplier,
    study_curves,
)
from zoo.compare.results import RunInfo

BUDGETS = [1e13 * 2**i for i in range(5)]  # 16x from the smallest to the largest


def simulate(rng: np.random.Generator, k: float, seeds: int = 5, slope: float = 0.3, sd_seed: float = 0.05,
             sd_point: float = 0.02, budgets: list[float] = BUDGETS, slope_b: float | None = None,
             ) -> tuple[dict[int, list[tuple[float, float]]], dict[int, list[tuple[float, float]]]]:
    """Per seed, (FLOPs, accuracy) of arms A and B: B's logit curve is A's shifted right by ln k in log
    FLOPs, so B needs exactly k times A's compute for any score. Seed s shares an effect in both arms."""
    a, b = {}, {}
    sb = slope if slope_b is None else slope_b
    for s in range(seeds):
        shared = rng.normal(0, 0.1)
        ia, ib = -9.0 + shared + rng.normal(0, sd_seed), -9.0 + shared + rng.normal(0, sd_seed)
        x = np.log(budgets)
        x0 = math.log(budgets[0])
        za = ia + slope * (x - x0) + 9.2 + rng.normal(0, sd_point, x.size)
        zb = ib + sb * (x - x0 - math.log(k)) + 9.2 + rng.normal(0, sd_point, x.size)
        a[s] = [(f, expit(v)) for f, v in zip(budgets, za, strict=True)]
        b[s] = [(f, expit(v)) for f, v in zip(budgets, zb, strict=True)]
    return a, b


def test_fit_line_matches_polyfit_and_linregress() -> None:
    rng = np.random.default_rng(3)
    x = np.log(BUDGETS)
    y = 0.2 + 0.3 * x + rng.normal(0, 0.05, x.size)
    fit = fit_line(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    ref = scipy.stats.linregress(x, y)
    assert fit.slope == pytest.approx(slope, rel=1e-10) and fit.intercept == pytest.approx(intercept, rel=1e-10)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-10) and fit.slope_se == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.solve(fit.predict(31.0)) == pytest.approx(31.0)
    with pytest.raises(ValueError, match="2 distinct x"):
        fit_line([1.0, 1.0], [0.0, 1.0])


def test_multiplier_recovered() -> None:
    a, b = simulate(np.random.default_rng(0), k=2.0, sd_seed=0.01, sd_point=0.005)
    m = multiplier(arm_curve("gpt", "clm", a), arm_curve("bert", "mlm", b))
    assert m.reason is None and m.bound is None
    assert m.k == pytest.approx(2.0, rel=0.1)
    assert m.log_k.low < math.log(2.0) < m.log_k.high
    assert m.log_k.excludes(0.0) and m.reading().startswith("bert mlm needs more compute than gpt clm (k 1.")
    assert m.reading(p_holm=0.0625).endswith("the sign-flip test over 5 seeds does not reach 0.05 after Holm")
    assert m.p == pytest.approx(2 / 2**5)  # every seed the same sign: the exact sign-flip floor
    inverse = multiplier(arm_curve("bert", "mlm", b), arm_curve("gpt", "clm", a))
    assert inverse.k == pytest.approx(1 / m.k, rel=1e-9)  # the same target, so exactly the inverse


def _coverage(k: float, replicates: int, seed: int, **kw: float) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(replicates):
        a, b = simulate(rng, k, **kw)
        m = multiplier(arm_curve("gpt", "clm", a), arm_curve("gpt", "prefix", b))
        assert m.reason is None, m.reason
        hits += m.log_k.low <= math.log(k) <= m.log_k.high
    return hits / replicates


@pytest.mark.parametrize(("k", "seed"), [(2.0, 1), (1.0, 2)])
def test_interval_covers_at_the_nominal_rate(k: float, seed: int) -> None:
    n = 200
    cover = _coverage(k, n, seed)
    tol = 3 * math.sqrt(0.95 * 0.05 / n)  # three binomial standard errors around 95%
    assert 0.95 - tol <= cover <= min(1.0, 0.95 + tol), cover


def test_unequal_slopes_take_the_middle_of_the_common_range() -> None:
    a, b = simulate(np.random.default_rng(4), k=1.0, sd_seed=0.0, sd_point=0.0, slope_b=0.6)
    m = multiplier(arm_curve("gpt", "clm", a), arm_curve("bert", "mlm", b))
    # both lines cross at the smallest budget; the common range's midpoint is half A's rise
    x0, rise = math.log(BUDGETS[0]), 0.3 * math.log(16)
    expected = (x0 + rise / 2 / 0.6) - (x0 + rise / 2 / 0.3)
    assert m.log_k.point == pytest.approx(expected, abs=1e-9)


def test_extrapolation_is_a_bound() -> None:
    a, b = simulate(np.random.default_rng(5), k=64.0, sd_seed=0.01, sd_point=0.005)
    m = multiplier(arm_curve("gpt", "clm", a), arm_curve("bert", "mlm", b))
    # the budgets span 16x: B's curve never reaches A's range, so the 64x is extrapolated
    assert m.bound == "above" and m.beyond == 5
    assert m.text().startswith("> 16") and m.reading() == "bert mlm needs more compute than gpt clm (k > 16)"
    assert m.range_high == pytest.approx(math.log(16))


@pytest.mark.parametrize(("change", "reason"), [
    ({"budgets": BUDGETS[:2]}, "2 budget(s), a fit needs 3"),
    ({"seeds": 1}, "1 seed(s), an interval needs 2"),
    ({"slope": -0.3}, "slope not positive"),
])
def test_not_applicable(change: dict, reason: str) -> None:
    kw = {"k": 1.0, **change}
    a, b = simulate(np.random.default_rng(6), **kw)
    m = multiplier(arm_curve("gpt", "clm", a), arm_curve("bert", "mlm", b))
    assert m.log_k is None and reason in m.reason and m.text().startswith("not applicable")
    assert m.to_dict()["k"] is None


def test_non_monotone_flags_the_arm_and_its_falling_paradigms() -> None:
    # a clm recipe's whole-suite accuracy fell early (52.4, 51.9, 51.8 at its first checkpoints) while word
    # frequencies misled the word-order paradigms; here it recovers later, so the line rises overall
    f = [1e12, 2e12, 4e12, 8e12]

    def at(*values: float) -> list[tuple[float, float]]:
        return list(zip(f, values, strict=True))

    per_seed = {0: at(0.524, 0.519, 0.56, 0.60), 1: at(0.526, 0.52, 0.57, 0.61)}
    paradigms = {"word_order": {0: at(0.43, 0.38, 0.34, 0.40), 1: at(0.44, 0.37, 0.35, 0.41)},
                 "agreement": {0: at(0.5, 0.55, 0.6, 0.7), 1: at(0.5, 0.56, 0.6, 0.7)}}
    c = arm_curve("gpt", "clm", per_seed, paradigms=paradigms)
    assert not c.monotone and c.falling == ("word_order",)
    assert c.reason == "curve not monotone (word_order fall)"


def test_slope_not_distinguishable_from_zero() -> None:
    per_seed = {0: [(1e12, 0.50), (1e13, 0.56), (1e14, 0.62)], 1: [(1e12, 0.52), (1e13, 0.51), (1e14, 0.505)]}
    c = arm_curve("gpt", "clm", per_seed)
    assert c.monotone and c.slope.point > 0 and c.reason.startswith("slope not distinguishable from 0")


def _runs(k: float) -> list[RunInfo]:
    a, b = simulate(np.random.default_rng(7), k, sd_seed=0.01, sd_point=0.005)
    runs = []
    for objective, pts in (("clm", a), ("prefix", b)):
        for seed, points in pts.items():
            for i, (flops, acc) in enumerate(points):
                runs.append(RunInfo(f"gpt-{objective}-{i}-seed{seed}", "gpt", objective, seed, "/nonexistent",
                                    flops=flops, scores={"p1": acc, "p2": acc, "p3": 0.5 + 0.003 * (-1) ** (seed + i)},
                                    final_loss=5.0 - 0.2 * i - (0.1 if objective == "clm" else 0.0)))
    return runs


def test_study_curves_from_runs() -> None:
    study = study_curves(_runs(2.0), ["p1", "p2"], {"agr": ["p1", "p2"], "flat": ["p3"]}, {"gpt": "decoder"})
    (m,) = study.pairs
    assert m.a == ("gpt", "clm") and m.b == ("gpt", "prefix") and m.k == pytest.approx(2.0, rel=0.1)
    assert study.phenomena["agr"][0].reason is None and study.phenomenon_pairs["agr"][0].k == pytest.approx(m.k)
    assert not study.phenomena["flat"][0].monotone and study.phenomenon_pairs["flat"][0].log_k is None
    assert study.loss_pairs == []  # different objectives: their losses are not on one scale
    d = study.to_dict()
    assert d["pairs"][0]["k"] == pytest.approx(m.k) and d["curves"][0]["budgets"] == 5


def test_logit_clips() -> None:
    assert logit(0.0) == pytest.approx(-logit(1.0)) and math.isfinite(logit(1.0))
    assert expit(logit(0.3)) == pytest.approx(0.3)


def _pairs_result(tmp_path, runs: list[RunInfo]):  # noqa: ANN001, ANN202
    from zoo.compare.results import ComparisonResult

    tasks = ["p1", "p2", "p3"]
    return ComparisonResult(out=str(tmp_path), mode="study", suite="blimp", tasks=tasks,
                            task_titles={t: t for t in tasks}, task_metrics={t: ["accuracy"] for t in tasks},
                            runs=runs, baselines=[], settings={"seeds": list(range(5)), "size": "tiny"},
                            bench={"kind": "minimal-pairs", "groups": {"agr": ["p1", "p2"], "flat": ["p3"]},
                                   "baselines": {"bigram": {"p1": 0.6, "p2": 0.62, "p3": 0.55},
                                                 "fewer tokens": {"p1": 0.5, "p2": 0.5, "p3": 0.5}}})


def test_report_section_json_and_figure(tmp_path) -> None:  # noqa: ANN001
    import json

    from zoo.compare.report import write_report

    path = write_report(_pairs_result(tmp_path, _runs(2.0)), tmp_path)
    text = path.read_text()
    assert "## Compute multipliers" in text and "![Accuracy vs training FLOPs](scaling.png)" in text
    assert "| gpt clm | gpt prefix |" in text and "gpt prefix needs more compute than gpt clm (k 1." in text
    assert "Not monotone: gpt clm on flat" in text
    assert (tmp_path / "scaling.png").stat().st_size > 0
    data = json.loads((tmp_path / "results.json").read_text())["multipliers"]
    assert data["pairs"][0]["k"] == pytest.approx(2.0, rel=0.1) and data["pairs"][0]["reason"] is None
    assert data["loss"]["pairs"] == []
    # equal arms: the interval covers 1 and the report says no more than that
    equal = write_report(_pairs_result(tmp_path / "eq", _runs(1.0)), tmp_path / "eq").read_text()
    assert "not distinguishable from 1" in equal


def test_no_section_with_one_budget(tmp_path) -> None:  # noqa: ANN001
    from zoo.compare.report import write_report

    one = [r for r in _runs(2.0) if r.flops == BUDGETS[-1]]
    path = write_report(_pairs_result(tmp_path, one), tmp_path)
    assert "Compute multipliers" not in path.read_text() and not (tmp_path / "scaling.png").exists()
    assert _pairs_result(tmp_path, one).to_dict()["multipliers"] is None


def test_loss_multiplier_only_for_the_same_objective_and_tokenizer_family() -> None:
    runs = []
    for backbone, shift in (("gpt", 0.0), ("gpt-wide", 0.4)):  # the wider one lower by 0.4 nats everywhere
        for seed in range(3):
            for i, flops in enumerate(BUDGETS):
                runs.append(RunInfo(f"{backbone}-{i}-{seed}", backbone, "clm", seed, "/nonexistent", flops=flops,
                                    final_loss=6.0 - 0.2 * math.log(flops / BUDGETS[0]) - shift + 0.01 * seed * i))
    (m,) = study_curves(runs, [], None, {"gpt": "decoder", "gpt-wide": "decoder"}).loss_pairs
    slopes = [0.2 - 0.01 * s / math.log(2) for s in range(3)]  # per seed, per unit ln FLOPs
    assert m.metric == "loss" and m.log_k.point == pytest.approx(np.mean([-0.4 / b for b in slopes]), rel=1e-9)
    assert study_curves(runs, [], None, {"gpt": "decoder", "gpt-wide": "encoder"}).loss_pairs == []
