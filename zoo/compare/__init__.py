"""``zoo compare``: which pretraining objective is better at equal compute?

Public API::

    from zoo.compare import StudySettings, BenchOptions, run_study, compare_runs
    settings = StudySettings(objectives=["mlm", "clm"], backbones=["bert", "gpt"], budget="3e14flops",
                             seeds=[0, 1, 2, 3, 4], data="corpus/", bench=BenchOptions(tasks=["sst2"], data_dir="glue/"))
    result = run_study(settings, "studies/demo")   # trains, benchmarks, writes report.md + PNGs
    result.groups[0].average                          # Estimate(point, low, high, n, confidence, method)
    result.pairs[0].seeds.p, result.pairs[0].items    # exact sign-flip p; per-task seed-and-item test
    result.curves()                                   # CurveStudy: compute multipliers when arms have several budgets

Importing this package is cheap; training, benchmarking and plotting load on use.
"""

from __future__ import annotations

from zoo._lazy import lazy_getattr

_EXPORTS = {
    "StudySettings": "zoo.compare.study", "BenchOptions": "zoo.compare.study", "expand_grid": "zoo.compare.study",
    "Grid": "zoo.compare.study", "Cell": "zoo.compare.study", "BASELINE": "zoo.compare.study",
    "run_study": "zoo.compare.runner", "compare_runs": "zoo.compare.runner",
    "ComparisonResult": "zoo.compare.results", "RunInfo": "zoo.compare.results", "Group": "zoo.compare.results",
    "Pair": "zoo.compare.results", "ItemValues": "zoo.compare.results",
    "Estimate": "zoo.compare.stats", "seed_estimate": "zoo.compare.stats", "compare_seeds": "zoo.compare.stats",
    "seed_item_test": "zoo.compare.stats", "sign_flip_test": "zoo.compare.stats", "holm": "zoo.compare.stats",
    "seeds_needed": "zoo.compare.stats", "bootstrap_ci": "zoo.compare.stats",
    "write_report": "zoo.compare.report", "objective_color": "zoo.compare.plots",
    "study_curves": "zoo.compare.curves", "arm_curve": "zoo.compare.curves", "multiplier": "zoo.compare.curves",
    "CurveStudy": "zoo.compare.curves", "Multiplier": "zoo.compare.curves", "ArmCurve": "zoo.compare.curves",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
