"""``zoo compare --preset``: a preset's values, explicit options over them, and a tiny study scored on two
suites at once (BLiMP zero-shot and SST-2 fine-tuning) with per-seed baselines and item-level tests."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.compare.presets import PRESETS, StudyPreset
from zoo.compare.study import BASELINE
from zoo.train.config import Budget

from ..unit.test_minimal_pairs_data import write_blimp
from .test_minimal_pairs import PAIRS

TINY = ["--size", "tiny", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400", "--budget", "7e7flops",
        "--set", "data.doc_boundary=blank-line", "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
        "--set", "model.intermediate_size=64", "--set", "tokenizer.num_sentinels=20", "--set", "train.eval_batches=2"]
BENCH = ["--max-train-examples", "32", "--max-eval-examples", "32", "--max-pairs", "2", "--bench-set", "epochs=1",
         "--bench-set", "batch_size=16", "--bench-set", "max_length=32", "--device", "cpu"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_unknown_preset_is_a_one_line_error() -> None:
    code, out = invoke("compare", "--preset", "cpu-day")
    assert code == 2 and out.strip() == f"error: --preset: unknown preset 'cpu-day'; known presets: {', '.join(PRESETS)}"


def test_preset_with_run_directories_is_refused(tmp_path: Path) -> None:
    code, out = invoke("compare", str(tmp_path), "--preset", "cpu-hour")
    assert code == 2 and "--preset trains a study" in out


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_preset_is_consistent(preset: StudyPreset) -> None:
    """Every objective trains the preset's backbones (one architecture, nothing skipped), the training
    overrides resolve, and the help lists every value."""
    from zoo.compare.study import StudySettings, base_config, expand_grid
    from zoo.train.resolve import resolve

    settings = preset.settings
    grid = expand_grid(settings.objectives, settings.backbones)
    assert not grid.skipped and len(grid.cells) == len(settings.objectives) * len(settings.backbones)
    for cell in grid.cells:  # every override applies to every run (no objective-specific keys)
        cfg = resolve({**base_config(settings, cell.backbone), "objective": cell.objective})
        assert cfg.train.seq_len == settings.seq_len and cfg.size == settings.size
    # study.json's settings read back as the same typed value
    assert StudySettings.from_dict(settings.to_dict()) == settings
    code, out = invoke("compare", "--help")
    assert code == 0 and all(line in out for line in preset.describe())
    assert not any(line.endswith(" ") or line.endswith("None") for line in preset.describe())  # no empty values


def test_explicit_options_replace_preset_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import zoo.compare.runner as runner
    from zoo.compare.results import ComparisonResult

    seen = {}

    def fake_run_study(settings, out, **kw):  # noqa: ANN001, ANN003, ANN202
        seen["settings"] = settings
        return ComparisonResult(out=str(out), mode="study", suite="glue", tasks=[], task_titles={}, task_metrics={},
                                runs=[], baselines=[])

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    code, out = invoke("compare", "--preset", "cpu-hour", "--seeds", "1", "--budget", "1e12flops",
                       "--set", "optim.lr=3e-3", "--max-pairs", "7", "--out", str(tmp_path / "s"))
    assert code == 0, out
    s, p = seen["settings"], PRESETS["cpu-hour"].settings
    assert s.seeds == [0] and s.budget == Budget.parse("1e12flops") and s.bench.max_pairs == 7  # given: replaced
    assert s.hours is None and p.hours == 1.0  # --budget replaces the preset's --hours
    assert s.objectives == p.objectives and s.backbones == p.backbones and s.size == p.size
    assert s.train_overrides == [*p.train_overrides, "optim.lr=3e-3"]  # --set adds after the preset's (later wins)
    assert s.bench == replace(p.bench, max_pairs=7)
    assert p.seeds == list(range(7)) and p.budget is None  # the preset itself is unchanged


def test_the_curve_preset_plans_relative_budgets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """compute-curve: hours and relative budgets; an explicit --budget replaces both, explicit absolute
    --budgets replace its hours."""
    import zoo.compare.runner as runner
    from zoo.compare.presets import CURVE_RECIPE
    from zoo.compare.results import ComparisonResult

    seen = []

    def fake_run_study(settings, out, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(settings)
        return ComparisonResult(out=str(out), mode="study", suite="blimp", tasks=[], task_titles={}, task_metrics={},
                                runs=[], baselines=[])

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    p = PRESETS["compute-curve"]
    assert "--budgets 1,2,4,8" in p.describe() and "--cooldown 0.2" in p.describe()
    for extra in ([], ["--budget", "1e12flops"], ["--budgets", "1e12,4e12flops"], ["--cooldown", "0.1"]):
        code, out = invoke("compare", "--preset", "compute-curve", *extra, "--out", str(tmp_path / "s"))
        assert code == 0, out
    plain, single, absolute, cooler = seen
    assert (plain.hours, plain.budget, plain.budgets, plain.cooldown) == (1.5, None, ["1", "2", "4", "8"], 0.2)
    assert plain.seeds == list(range(6)) and plain.train_overrides == list(CURVE_RECIPE)
    assert not any(o.startswith(("optim.schedule", "optim.warmup")) for o in CURVE_RECIPE)
    assert (single.hours, single.budget, single.budgets) == (None, Budget.parse("1e12flops"), [])
    assert (absolute.hours, absolute.budget, absolute.budgets) == (None, Budget.parse("4e12flops"),
                                                                   ["1e12flops", "4e12flops"])
    assert cooler.cooldown == 0.1 and cooler.budgets == plain.budgets
    code, out = invoke("compare", "--preset", "cpu-hour", "--out", str(tmp_path / "s"))
    assert code == 0 and seen[-1].budgets == [] and seen[-1].cooldown == 0.2
    code, out = invoke("compare", "--preset", "cpu-hour", "--evals", "0", "--out", str(tmp_path / "s"))
    assert code == 0 and seen[-1].evals == 0 and PRESETS["cpu-hour"].settings.evals == 4  # 0 (auto) given: it wins


@pytest.mark.slow
def test_preset_study_on_two_suites(corpus: Path, shared_data: Path, tmp_path: Path) -> None:
    """The preset shrunk to a tiny model: one command scores every run and a per-seed baseline on BLiMP
    (zero-shot, per-pair correctness into the item-level test) and on SST-2 (fine-tuned)."""
    data = tmp_path / "bench"
    (data / "blimp").mkdir(parents=True)
    write_blimp(data / "blimp" / "toy.jsonl", "toy", PAIRS * 2)
    write_blimp(data / "blimp" / "toy_two.jsonl", "toy_two", PAIRS[::-1] * 2, term="binding")
    (data / "glue").symlink_to(shared_data / "glue")
    out = tmp_path / "study"
    code, text = invoke("compare", "--preset", "cpu-hour", "--objectives", "clm", "--seeds", "2",
                        "--data", str(corpus), "--data-dir", str(data), "--suite", "blimp,glue", "--tasks", "sst2",
                        *TINY, *BENCH, "--out", str(out))
    assert code == 0, text
    results = json.loads((out / "results.json").read_text())
    (glue,) = results["others"]
    assert results["suite"] == "blimp" and results["tasks"] == ["toy", "toy_two"]
    assert glue["suite"] == "glue" and glue["tasks"] == ["sst2"] and glue["constant"]["scores"]["sst2"] > 0.4
    for part in (results, glue):  # a from-scratch baseline per seed
        assert sorted((b["name"], b["seed"]) for b in part["baselines"]) == [("gpt-scratch-seed0", 0),
                                                                            ("gpt-scratch-seed1", 1)]
    vs_scratch = [p for p in results["pairs"] if p["b"] == BASELINE]
    assert len(vs_scratch) == 1 and all(p["items"]["all pairs"]["items"] == 4 and p["items"]["all pairs"]["seeds"] == 2
                                        for p in vs_scratch)
    study = json.loads((out / "study.json").read_text())
    assert study["suites"] == {"blimp": ["toy", "toy_two"], "glue": ["sst2"]}
    for entry in [*study["runs"].values(), *study["baselines"].values()]:
        assert set(entry["scores"]) == {"toy", "toy_two", "sst2"}  # per-seed scores of both suites
    assert all(r["cpu_s"] > 0 for r in study["runs"].values()) and set(study["bench_cpu_s"]) == {"blimp", "glue"}
    report = (out / "report.md").read_text()
    assert "## Downstream scores (BLIMP)" in report and "## Downstream scores (GLUE)" in report
    assert "| constant predictor |" in report and "p (seeds and items, t)" in report and "all pairs" in report
    assert "| bag of words |" in report and "| trigram |" in report and "| fewer tokens |" in report
    assert set(study["scorers"]) == {"blimp"} and all("counters" in r for r in study["runs"].values())
    assert "![Downstream scores per task and on average](glue/scores.png)" in report
    assert (out / "glue" / "scores.png").is_file() and (out / "scores.png").is_file()
