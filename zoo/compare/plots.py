"""The comparison's figures (PNG, matplotlib's Agg canvas; nothing is ever shown on screen).

One colour per objective everywhere, from a fixed map keyed by the objective's name (names
outside it get a colour derived from a hash of the name, so they too keep it across studies);
one line style and marker per backbone.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo import fileio
from zoo.compare.results import ComparisonResult, Group
from zoo.compare.stats import format_level
from zoo.compare.study import BASELINE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

OBJECTIVE_COLORS = {
    "mlm": "#1f77b4",  # blue
    "mlm+nsp": "#ff7f0e",  # orange
    "span": "#2ca02c",  # green
    "clm": "#d62728",  # red
    "prefix": "#9467bd",  # purple
    "mlm+sop": "#8c564b",  # brown
    "rtd": "#e377c2",  # pink
    "nsp": "#bcbd22",  # olive
    "sop": "#17becf",  # cyan
    BASELINE: "#7f7f7f",  # grey
}
_EXTRA = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
          "#636363", "#9c9ede", "#cedb9c", "#e7ba52", "#e7969c", "#de9ed6"]
BACKBONE_STYLES = {"bert": ("-", "o"), "gpt": ("--", "s")}
_EXTRA_STYLES = [(":", "^"), ("-.", "D"), ((0, (5, 1)), "v"), ((0, (1, 1)), "P")]


def _stable_index(name: str, n: int) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % n


def objective_color(name: str) -> str:
    """The colour of ``name`` in every plot of every study."""
    return OBJECTIVE_COLORS.get(name) or _EXTRA[_stable_index(name, len(_EXTRA))]


def backbone_style(name: str) -> tuple[object, str]:
    """(line style, marker) of a backbone."""
    return BACKBONE_STYLES.get(name) or _EXTRA_STYLES[_stable_index(name, len(_EXTRA_STYLES))]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def figures(result: ComparisonResult) -> dict[str, Any]:
    """Every figure that has data: {name: matplotlib Figure}."""
    out = {}
    per_task = phenomena_figure if result.bench.get("kind") == "minimal-pairs" else scores_figure
    for name, fn in (("curves", curves_figure), ("scores", per_task), ("pairs", pairs_figure),
                     ("compute", compute_figure), ("scaling", scaling_figure)):
        fig = fn(result)
        if fig is not None:
            out[name] = fig
    return out


def plot_all(result: ComparisonResult, out: Path, keep: tuple[str, ...] = ()) -> dict[str, Path]:
    """Write every figure that has data as ``out/<name>.png``; returns {name: path}. A figure without data
    is removed, unless named in ``keep`` (a report rewritten without the runs keeps their curves)."""
    out = Path(out)
    made = figures(result)
    written = {}
    for name in ("curves", "scores", "pairs", "compute", "scaling"):
        path = out / f"{name}.png"
        if name in made:
            with fileio.staged(path) as tmp:
                made[name].savefig(tmp, format="png")
            written[name] = path
        elif path.exists() and name in keep:
            written[name] = path
        elif path.exists():
            path.unlink()  # a stale figure from an earlier report would contradict this one
    return written


def curves_figure(result: ComparisonResult) -> Figure | None:
    """Validation loss vs training FLOPs, one panel per objective (losses of different objectives
    measure different things and are not on one scale)."""
    objectives = [o for o in result.objectives() if o != BASELINE]
    runs = [r for r in result.runs if r.status == "done" and r.evals]
    if not runs:
        return None
    ncols = min(3, len(objectives))
    nrows = -(-len(objectives) // ncols)
    fig = _figure(4.6 * ncols, 3.5 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    budget_flops = _budget_flops(result)
    x_max = max([budget_flops or 0.0] + [e["flops"] for r in runs for e in r.evals]) * 1.04
    for ax, objective in zip(axes, objectives, strict=False):
        labelled = set()
        for r in runs:
            if r.objective != objective:
                continue
            xs = [e["flops"] for e in r.evals]
            ys = [e["loss"] for e in r.evals]
            style, marker = backbone_style(r.backbone)
            label = None
            if r.backbone not in labelled:
                n = sum(1 for x in runs if x.objective == objective and x.backbone == r.backbone)
                label = f"{r.backbone} ({n} seed{'s' if n > 1 else ''})"
                labelled.add(r.backbone)
            ax.plot(xs, ys, linestyle=style, marker=marker, markersize=3, color=objective_color(objective),
                    alpha=0.8, linewidth=1.4, label=label)
        if budget_flops:
            ax.axvline(budget_flops, color="#555555", linestyle=":", linewidth=1)
        ax.set_title(objective, color=objective_color(objective), fontweight="bold")
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel("validation loss (nats per target)")
        ax.set_xlim(0, x_max)  # the same compute axis in every panel
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        ax.grid(alpha=0.3)
        if labelled:
            ax.legend(fontsize=8, title="backbone", title_fontsize=8)
    for ax in axes[len(objectives):]:
        ax.set_visible(False)
    note = " (dotted line: the budget)" if budget_flops else ""
    fig.suptitle("Validation loss vs training compute, one panel per objective: each objective's loss "
                 "is on its own scale, compare shapes, not heights" + note, fontsize=10)
    return fig


def _budget_flops(result: ComparisonResult) -> float | None:
    b = result.budget
    return b.value if b is not None and b.kind == "flops" else None


def _group_label(g: Group) -> str:
    return f"{g.objective}\n({g.backbone})"


def scores_figure(result: ComparisonResult) -> Figure | None:
    """Per task and on average: each seed's score, the statistic and its interval over seeds, and the
    constant predictor as a dashed line."""
    groups = [g for g in result.groups if g.average is not None or g.tasks]
    if not groups:
        return None
    panels = [(t, f"{result.task_titles.get(t, t)}", ", ".join(result.task_metrics.get(t, [])))
              for t in result.tasks] + [("__average__", "Average", "mean of task scores")]
    ncols = 2 if len(panels) == 4 else min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    width = max(3.8, 0.75 * len(groups) + 1.0)
    fig = _figure(width * ncols, 3.6 * nrows + 0.5)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    rng = np.random.default_rng(0)  # jitter only
    for ax, (task, title, metric) in zip(axes, panels, strict=False):
        for i, g in enumerate(groups):
            est = g.average if task == "__average__" else g.tasks.get(task)
            if est is None:
                continue
            color = objective_color(g.objective)
            _, marker = backbone_style(g.backbone)
            values = 100 * np.asarray(est.values)
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, color=color, alpha=0.55,
                       marker=marker, linewidths=0)
            if est.has_interval:
                ax.errorbar(i, 100 * est.point, yerr=[[100 * (est.point - est.low)], [100 * (est.high - est.point)]],
                            fmt="none", ecolor=color, elinewidth=2, capsize=5)
            ax.scatter([i], [100 * est.point], s=70, color=color, marker="_", linewidths=2.5, zorder=3)
        constant = result.constant_average() if task == "__average__" else result.constant.get(task)
        if constant is not None:
            ax.axhline(100 * constant, color="#777777", linestyle="--", linewidth=1, label="constant predictor")
            ax.legend(fontsize=7, loc="best")
        first_baseline = next((i for i, g in enumerate(groups) if g.baseline), None)
        if first_baseline:
            ax.axvline(first_baseline - 0.5, color="#999999", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(groups)), [_group_label(g) for g in groups], fontsize=8, rotation=0)
        for tick, g in zip(ax.get_xticklabels(), groups, strict=True):
            tick.set_color(objective_color(g.objective))
        ax.set_title(title)
        ax.set_ylabel(f"score x100 ({metric})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    n_seeds = sorted({len(g.runs) for g in groups})
    levels = sorted({g.average.label for g in groups if g.average is not None and g.average.has_interval})
    fig.suptitle(f"Downstream scores ({result.suite.upper()} dev sets): dots = pretraining seeds, "
                 f"bar = {result.statistic}, whisker = {' / '.join(levels) or 'no'} interval over "
                 f"{'/'.join(map(str, n_seeds))} seed(s)", fontsize=10)
    return fig


def phenomena_figure(result: ComparisonResult) -> Figure | None:
    """Minimal pairs: accuracy per phenomenon (mean over its paradigms) and the macro average over
    paradigms, one bar per (objective, backbone) group at its seeds' median; dots are the seeds."""
    groups = [g for g in result.groups if g.runs]
    phenomena: dict[str, list[str]] = result.bench.get("groups") or {}
    if not groups or not phenomena:
        return None
    labels = [*phenomena, "macro average"]
    fig = _figure(max(8.0, 0.9 * len(labels) * max(1, len(groups)) / 2), 4.8)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for k, g in enumerate(groups):
        per_seed = np.array([[np.mean([r.scores[p] for p in ps]) for ps in phenomena.values()]
                             + [r.average(result.tasks) or np.nan] for r in g.runs])  # (seeds, labels)
        x = np.arange(len(labels)) + (k - (len(groups) - 1) / 2) * width
        color = objective_color(g.objective)
        ax.bar(x, 100 * np.median(per_seed, axis=0), width, color=color, alpha=0.75, label=_group_label(g).replace("\n", " "))
        if per_seed.shape[0] > 1:
            for row in per_seed:
                ax.scatter(x, 100 * row, s=8, color="black", alpha=0.5, zorder=3)
    ax.axhline(50, color="#999999", linestyle=":", linewidth=1)  # chance: a coin flip per pair
    ax.set_xticks(range(len(labels)), [lb.replace("_", " ") for lb in labels], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("accuracy x100")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(4, len(groups)))
    ax.set_title(f"{result.suite.upper()} minimal pairs by phenomenon (zero-shot; dotted line: chance)", fontsize=10)
    return fig


def pairs_figure(result: ComparisonResult) -> Figure | None:
    """Differences of average score between objectives on the same backbone, with intervals."""
    pairs = result.pairs
    if not pairs:
        return None
    fig = _figure(8.5, 0.42 * len(pairs) + 1.7)
    ax = fig.subplots()
    ys = np.arange(len(pairs))[::-1]
    for y, p in zip(ys, pairs, strict=True):
        color = objective_color(p.a)
        ax.plot([100 * p.diff.point], [y], marker="o", color=color, markersize=6)
        if p.diff.has_interval:
            ax.plot([100 * p.diff.low, 100 * p.diff.high], [y, y], color=color, linewidth=2)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set_yticks(ys, [f"{p.backbone}: {p.a}  -  {p.b}" for p in pairs], fontsize=8)
    ax.set_xlabel("A - B: difference in average score (points, score x100)")
    ax.grid(axis="x", alpha=0.3)
    kinds = {p.paired for p in pairs}
    how = "paired by seed" if kinds == {True} else ("unpaired" if kinds == {False} else "paired where seeds match")
    fig.suptitle(f"A - B of the average score on the same backbone ({how})\n"
                 f"dot: mean of the per-seed differences, line: its {format_level(result.confidence)} t interval; "
                 "right of 0: A is better", fontsize=10)
    return fig


def compute_figure(result: ComparisonResult) -> Figure | None:
    """Training FLOPs, tokens seen and training time of every run: equal FLOPs is not equal tokens."""
    runs = [r for r in result.runs if r.status == "done"]
    if not runs:
        return None
    labels = list(dict.fromkeys(r.label for r in runs))
    fig = _figure(3 * (0.6 * len(labels) + 1.1), 3.8)
    axes = fig.subplots(1, 3)
    rng = np.random.default_rng(0)
    for ax, attr, ylabel in ((axes[0], "flops", "training FLOPs"), (axes[1], "tokens", "tokens seen"),
                             (axes[2], "train_time_s", "training time (s)")):
        for i, label in enumerate(labels):
            members = [r for r in runs if r.label == label]
            values = np.asarray([getattr(r, attr) for r in members], dtype=float)
            color = objective_color(members[0].objective)
            ax.bar(i, np.median(values), color=color, alpha=0.35, width=0.7)
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=12, color=color)
        ax.set_xticks(range(len(labels)), [lb.replace(" ", "\n", 1) for lb in labels], fontsize=7)
        ax.set_ylabel(ylabel)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Compute used per run (bar: median over seeds, dots: seeds)", fontsize=10)
    return fig


def scaling_figure(result: ComparisonResult) -> Figure | None:
    """Minimal-pair accuracy vs training FLOPs (log axis), the macro average and then one panel per
    phenomenon: per arm the mean over seeds with a band from the lowest to the highest seed and the fitted
    line, the count-model baselines as horizontal lines; only when an arm was trained at several budgets."""
    from zoo.benchmarks.ngram import LENGTH

    study = result.curves()
    if study is None or not study.curves:
        return None
    counts = {n: acc for n, acc in (result.bench.get("baselines") or {}).items()
              if not n.startswith(LENGTH) and all(p in acc for p in result.tasks)}
    panels = [("macro average over paradigms", study.curves, list(result.tasks))]
    groups = result.bench.get("groups") or {}
    panels += [(name.replace("_", " "), study.phenomena[name], groups.get(name, [])) for name in study.phenomena]
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = _figure(5.2 * ncols if len(panels) > 1 else 7.5, 3.8 * nrows + 0.7)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (title, curves, paradigms) in zip(axes, panels, strict=False):
        _scaling_panel(ax, curves, {n: float(np.mean([acc[p] for p in paradigms])) for n, acc in counts.items()
                                    if paradigms})
        ax.set_title(title, fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{result.suite.upper()} accuracy vs training compute: dots = mean over seeds, band = lowest to "
                 "highest seed, line = fitted (logit-linear in log FLOPs; none where the curve is not monotone), "
                 "grey = count models, dotted = chance", fontsize=9)
    return fig


def _scaling_panel(ax: Any, curves: list[Any], counts: dict[str, float]) -> None:
    from zoo.compare.curves import band, fitted_curve

    for c in curves:
        color = objective_color(c.objective)
        style, marker = backbone_style(c.backbone)
        x, mean, low, high = band(c)
        ax.fill_between(x, 100 * low, 100 * high, color=color, alpha=0.18, linewidth=0)
        ax.plot(x, 100 * mean, linestyle="none", marker=marker, color=color, markersize=5,
                label=f"{c.label} ({len(c.seeds)} seed{'s' if len(c.seeds) > 1 else ''})")
        if c.monotone and len(x) > 1:
            xs = np.geomspace(x[0], x[-1], 50)
            fit = fitted_curve(c, xs)
            if fit is not None:
                ax.plot(xs, 100 * fit, linestyle=style, color=color, linewidth=1.4)
        else:
            ax.plot(x, 100 * mean, linestyle=":", color=color, linewidth=1)
    for i, (name, value) in enumerate(counts.items()):
        ax.axhline(100 * value, color="#555555", linestyle=[":", "--", "-."][i % 3], linewidth=1)
        ax.annotate(name, (0.01, 100 * value), xycoords=("axes fraction", "data"), fontsize=7, color="#555555",
                    va="bottom")
    ax.axhline(50, color="#999999", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("accuracy x100")
    ax.grid(alpha=0.3, which="both")
