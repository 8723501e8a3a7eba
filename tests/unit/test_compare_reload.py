"""``zoo compare --report-only``: the committed cpu-hour study's report rebuilt from its study.json alone,
with the statistics that hold at the level of the seed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.compare.reload import report_from_study
from zoo.compare.report import markdown, pair_table

STUDY = Path(__file__).resolve().parents[2] / "docs" / "studies" / "six-objectives-4e12"


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """The study record without its benchmark data (no constant, bag-of-words or count-model rows: fast)."""
    return _record_only(STUDY, tmp_path)


def _record_only(source: Path, tmp_path: Path) -> Path:
    """A copy of the study record of ``source`` whose benchmark data and corpus paths point nowhere."""
    out = tmp_path / source.name
    out.mkdir()
    data = json.loads((source / "study.json").read_text(encoding="utf-8"))
    data["settings"]["bench"]["data_dir"] = str(tmp_path / "absent")
    data["settings"]["data"] = str(tmp_path / "absent-corpus")
    (out / "study.json").write_text(json.dumps(data), encoding="utf-8")
    return out


def test_sst2_clm_over_mlm_is_not_a_win_at_five_seeds(study: Path) -> None:
    """Per-seed SST-2 differences clm - mlm of about [21.0, 2.8, 17.5, 2.9, 19.8]: all five positive, so the
    sign-flip p is its floor 1/16 and Holm over 21 pairs takes it to 1; no winner is named."""
    result = report_from_study(study, count_models=False)
    glue = result.others[0]
    assert glue.suite == "glue" and glue.tasks == ["sst2"]
    pair = next(p for p in glue.pairs if (p.a, p.b) == ("clm", "mlm"))
    per_seed = [100 * (r.scores["sst2"] - m.scores["sst2"])
                for r, m in zip(glue.groups[0].runs, glue.groups[1].runs, strict=True)]
    assert per_seed == pytest.approx([21.0, 2.8, 17.5, 2.9, 19.8], abs=0.05)
    assert pair.seeds.p == pytest.approx(0.0625) and pair.seeds.p_holm == pytest.approx(1.0)
    assert pair.seeds.wins == 5 and not pair.items  # no per-item results in the record
    # Holm over 21 pairs asks 0.05/21: the sign-flip test reaches it from 10 seeds, so no pair needs fewer
    assert all(p.seeds.seeds_needed is None or p.seeds.seeds_needed >= 10 for p in glue.pairs)
    readings = [row[-1] for part in (result, glue) for row in pair_table(part)[1]]
    assert not any(r.endswith("better") for r in readings)
    text = markdown(result, {})
    assert "0.05/21 = 0.00238" in text and "from 10 seeds: with 5 no pair can be significant after Holm" in text
    assert "item-level tests (which need each run's per-item results) are left out" in text
    compute = text[text.index("## Compute used"):]
    assert "| gpt-clm-seed0 | done | 218 | 4.014e+12 | - | 446,464 |" in compute  # counters from the record (no head FLOPs then)


def test_report_only_cli(study: Path) -> None:
    code = CliRunner().invoke(cli, ["compare", "--report-only", "--out", str(study)])
    assert code.exit_code == 0, code.output
    assert (study / "report.md").is_file() and (study / "results.json").is_file()
    bad = CliRunner().invoke(cli, ["compare", "--report-only", "--out", str(study), "--seeds", "3"])
    assert bad.exit_code != 0 and "--seeds do not apply" in bad.output
    missing = CliRunner().invoke(cli, ["compare", "--report-only", "--out", str(study.parent / "none")])
    assert missing.exit_code != 0 and "no study.json" in missing.output
    shutil.rmtree(study)


def test_a_rewritten_report_knows_each_arms_tokenizer() -> None:
    """The three-families study trains one tokenizer per family: gpt and t5 share the BPE one, bert has a
    WordPiece one; a rewritten report maps every run and baseline to its family's recorded hash, so each arm
    meets the count models of its own tokens only."""
    from zoo.compare.reload import _run_tokenizers
    from zoo.compare.results import RunInfo
    from zoo.compare.study import StudySettings

    data = json.loads((STUDY.parent / "three-families" / "study.json").read_text(encoding="utf-8"))
    runs = [RunInfo(name, rec["backbone"], rec.get("objective", "from scratch"), int(rec.get("seed", 0)), "")
            for section in ("runs", "baselines") for name, rec in data[section].items()]
    tokens = _run_tokenizers(StudySettings(**data["settings"]), data, runs)
    hashes = {f: t["tokenizer_hash"] for f, t in data["tokenizers"].items()}
    assert set(tokens) == {r.name for r in runs}
    assert {tokens[r.name] for r in runs if r.backbone in ("gpt", "t5")} == {hashes["decoder"]}
    assert {tokens[r.name] for r in runs if r.backbone == "bert"} == {hashes["encoder"]} != {hashes["decoder"]}


def test_the_committed_cpu_hour_study_gives_the_numbers_docs_quote(tmp_path: Path) -> None:
    """docs/compare.md reads docs/studies/cpu-hour: clm - mlm +2.6 [+1.9, +3.2] on all 7 seeds, sign-flip p
    2/2^7 and Holm 0.047 over 3 pairs (clm ahead); medians 55.3 and 52.4; the plan against the measured hour."""
    source = STUDY.parent / "cpu-hour"
    out = _record_only(source, tmp_path)
    data = json.loads((out / "study.json").read_text(encoding="utf-8"))
    result = report_from_study(out, count_models=False)
    pairs = {(p.a, p.b): p for p in result.pairs}
    primary = pairs[("clm", "mlm")].seeds
    diff = tuple(100 * v for v in (primary.diff.point, primary.diff.low, primary.diff.high))
    assert diff == pytest.approx((2.6, 1.9, 3.2), abs=0.05)
    assert primary.wins == 7 and primary.p == pytest.approx(2 / 2**7) and primary.p_holm == pytest.approx(3 * 2 / 2**7)
    medians = {g.objective: 100 * g.average.point for g in result.groups if not g.baseline}
    assert medians["clm"] == pytest.approx(55.3, abs=0.05) and medians["mlm"] == pytest.approx(52.4, abs=0.05)
    plan = data["plan"]
    assert plan["plan"]["budget"] == "3.8e13flops" and plan["plan"]["max_pairs"] == 125
    planned, actual = sum(plan["plan"]["phases"].values()), sum(plan["actual"].values())
    assert planned / 60 == pytest.approx(57.0, abs=0.05) and actual / 60 == pytest.approx(59.0, abs=0.05)
    assert "| gpt | clm | mlm | +2.6 [+1.9, +3.2] | 0.016 | 0.047 | 7/7 seeds |" in (source / "report.md").read_text()


def test_the_committed_compute_curve_gives_the_numbers_docs_quote(tmp_path: Path) -> None:
    """docs/compare.md reads docs/studies/compute-curve: clm - mlm from -1.5 [-2.1, -0.8] at 1.1e13 to +4.1
    [+2.9, +5.3] at 9.3e13 FLOPs (6/6 seeds each way, p 2/2^6, Holm 0.38 over 12 pairs); clm's slope
    +0.226 [+0.191, +0.261] per 10x FLOPs; the multiplier not applicable (mlm does not improve); the plan."""
    source = STUDY.parent / "compute-curve"
    out = _record_only(source, tmp_path)
    result = report_from_study(out, count_models=False)
    rows = [row for row in pair_table(result)[1] if row[1:3] == ["clm", "mlm"]]
    assert [row[3] for row in rows] == ["-1.5 [-2.1, -0.8]", "-0.2 [-0.7, +0.3]", "+1.3 [+0.3, +2.2]",
                                        "+4.1 [+2.9, +5.3]"]
    assert [row[4] for row in rows] == ["0.031", "0.34", "0.062", "0.031"] and rows[-1][6] == "6/6 seeds"
    assert {row[5] for row in rows} == {"0.38", "1", "0.44"}
    text = markdown(result, {})
    assert "| gpt | clm | 4 | 6 | +0.226 [+0.191, +0.261] | yes | yes |" in text
    assert "| gpt clm | gpt mlm | not applicable: gpt mlm: does not improve with compute (slope not positive) |" in text
    plan = json.loads((source / "study.json").read_text(encoding="utf-8"))["plan"]
    assert plan["plan"]["budgets"] == ["1.1e13flops", "2.3e13flops", "4.6e13flops", "9.3e13flops"]
    assert plan["plan"]["max_pairs"] == 62
    planned = sum(plan["plan"]["phases"].values())
    actual = sum(v for k, v in plan["actual"].items() if k != "report")  # the report's table, written before its own phase
    assert planned / 60 == pytest.approx(86.2, abs=0.05) and actual / 60 == pytest.approx(95.7, abs=0.05)


def test_the_compute_curve_readings_script_prints_what_docs_quote() -> None:
    """docs/compare.md quotes docs/studies/compute-curve/readings.py: mlm's paradigm medians equal the unigram
    model's on 29 to 36 of 67, clm's on 17 at 1.1e13 and 7 at 9.3e13; losses, tokens and head shares."""
    import subprocess
    import sys

    source = STUDY.parent / "compute-curve"
    out = subprocess.run([sys.executable, str(source / "readings.py"), str(source)], capture_output=True, text=True,
                         check=True).stdout
    equal = {line.split(":")[0].strip(): int(line.split(":")[1]) for line in out.splitlines()
             if line.startswith("  ") and line.strip().endswith(tuple("0123456789")) and "@" in line}
    assert [equal[f"mlm @ {b}flops"] for b in ("1.1e13", "2.3e13", "4.6e13", "9.3e13")] == [35, 36, 33, 29]
    assert equal["clm @ 1.1e13flops"] == 17 and equal["clm @ 9.3e13flops"] == 7
    assert "clm @ 9.3e13flops: 3.84-4.09; 13.2M tokens, 11 per parameter; head 22% of the FLOPs" in out
    assert "mlm @ 1.1e13flops: 6.46-6.53;" in out and "mlm @ 9.3e13flops: 6.31-6.37; 16.2M tokens, 13 per" in out
    assert "clm @ 1.1e13flops: 5.10-5.33;" in out and "head 4% of the FLOPs" in out
    assert "ellipsis: clm +10.1 (to 28.2); mlm -2.8 (to 36.3); from scratch 35.5;" in out
    assert "determiner_noun_agreement: clm +9.3 (to 59.1);" in out and "quantifiers: clm +9.1 (to 63.1);" in out
