"""``zoo compare`` end to end: a tiny study (2 objectives x 1 backbone x 2 seeds) at one FLOPs budget,
fine-tuned on real SST-2 examples, then the same runs compared as existing runs (all cached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli
from zoo.compare.study import BASELINE

BUDGET = 7e7  # FLOPs: about 4 steps of the tiny model below
TINY = ["--size", "tiny", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400",
        "--set", "data.doc_boundary=blank-line", "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
        "--set", "model.intermediate_size=64", "--set", "tokenizer.num_sentinels=20", "--set", "train.eval_batches=2",
        "--set", "optim.lr=0.001"]


def bench_args(glue: Path) -> list[str]:
    return ["--tasks", "sst2", "--data-dir", str(glue), "--max-train-examples", "64", "--max-eval-examples", "64",
            "--bench-set", "epochs=1", "--bench-set", "batch_size=16", "--bench-set", "max_length=32",
            "--device", "cpu"]



def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def cache_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("bench-cache/*.json")}


@pytest.mark.slow
def test_study_end_to_end_then_existing_runs(corpus: Path, shared_data: Path, tmp_path: Path) -> None:
    glue = shared_data / "glue"
    out = tmp_path / "study"
    code, output = invoke("compare", "--objectives", "mlm,span", "--backbones", "bert", "--budget", f"{BUDGET:g}flops",
                          "--seeds", "2", "--data", str(corpus), "--evals", "2", *TINY, *bench_args(glue),
                          "--out", str(out))
    assert code == 0, output
    assert "Downstream scores" in output and "from scratch" in output

    for name in ("report.md", "results.json", "study.json", "curves.png", "scores.png", "pairs.png", "compute.png"):
        assert (out / name).is_file(), name
    study = json.loads((out / "study.json").read_text())
    assert {k: v["status"] for k, v in study["runs"].items()} == {
        f"bert-{o}-seed{s}": "done" for o in ("mlm", "span") for s in (0, 1)}
    assert study["settings"]["budget"] == f"{BUDGET:g}flops"
    assert list(study["tokenizers"]) == ["encoder"]
    results = json.loads((out / "results.json").read_text())
    per_step = study["plans"]["bert-mlm"]["flops_per_step"]
    for run in results["runs"]:
        assert BUDGET <= run["flops"] < BUDGET + 2 * per_step  # stopped at the budget, at most a step past it
        assert run["evals"] and run["evals"][-1]["flops"] == run["flops"]
        assert 0.0 <= run["scores"]["sst2"] <= 1.0
        cfg = json.loads((Path(run["path"]) / "config.json").read_text())
        assert cfg["tokenizer"]["path"] == str(out / "tokenizers" / "encoder" / "tokenizer.json")
    groups = {(g["backbone"], g["objective"]): g for g in results["groups"]}
    assert set(groups) == {("bert", "mlm"), ("bert", "span"), ("bert", BASELINE)}
    assert all(g["seeds"] == [0, 1] for g in groups.values())
    assert [(p["a"], p["b"]) for p in results["pairs"]] == [("mlm", "span"), ("mlm", BASELINE), ("span", BASELINE)]
    # 2 seeds: the exact sign-flip test cannot go below 2/2^2; every pair is also tested over the 64 dev items
    assert all(p["seeds"]["test"] == "sign-flip" and p["seeds"]["p"] >= 0.5 for p in results["pairs"])
    assert all(p["items"]["sst2"]["items"] == 64 and p["items"]["sst2"]["seeds"] == 2 for p in results["pairs"])
    by_run = {Path(r["path"]).name: r["scores"]["sst2"] for r in results["runs"]}
    per_seed = [by_run[f"bert-mlm-seed{s}"] - by_run[f"bert-span-seed{s}"] for s in (0, 1)]
    # the item-level statistic recomputed from the stored predictions is the official task score
    assert results["pairs"][0]["items"]["sst2"]["difference"]["point"] == pytest.approx(sum(per_seed) / 2, abs=1e-12)
    constant = results["constant"]["scores"]["sst2"]  # the majority class of the 64 training examples
    assert 0.3 < constant < 0.7 and results["constant"]["metrics"]["sst2"] == {"accuracy": constant}
    report = (out / "report.md").read_text()
    assert "| bert | mlm |" in report and "![Validation loss vs training FLOPs](curves.png)" in report
    assert f"| - | constant predictor | {100 * constant:.1f} |" in report and "over evaluation items" in report

    # The same runs as existing runs: nothing trained, every fine-tune comes from the cache.
    before = cache_files(out)
    runs = [str(out / "runs" / f"bert-{o}-seed{s}") for o in ("mlm", "span") for s in (0, 1)]
    code, output = invoke("compare", *runs, *bench_args(glue), "--out", str(tmp_path / "again"))
    assert code == 0, output
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert cache_files(out) == before  # pretrained runs: nothing recomputed
    assert {r["name"]: r["scores"] for r in again["runs"]} == {
        Path(r["path"]).name: r["scores"] for r in results["runs"]}
    assert [b["scores"] for b in again["baselines"]] == [b["scores"] for b in results["baselines"]]
    assert again["pairs"][0]["items"] == results["pairs"][0]["items"]  # predictions come back from the cache
    code, output = invoke("compare", str(out), *bench_args(glue))
    assert code == 2 and "is a study directory, not a run" in output


def test_clear_errors(tmp_path: Path, shared_data: Path) -> None:
    code, output = invoke("compare")
    assert code == 2 and "pass --objectives and --budget" in output
    code, output = invoke("compare", "--objectives", "mlm", "--budget", "1e9flops", "--set", "train.seed=4",
                          "--out", str(tmp_path / "x"))
    assert code == 2 and "train.seed" in output
    code, output = invoke("compare", "--objectives", "mlm", "--budget", "a while", "--out", str(tmp_path / "x"))
    assert code == 2 and "--budget" in output
    code, output = invoke("compare", str(tmp_path), "--budget", "1e9flops")
    assert code == 2 and "--budget: training options do not apply to existing runs" in output
    code, output = invoke("compare", "--objectives", "mlm", "--budget", "1e9flops", "--seeds", "0",
                          "--out", str(tmp_path / "x"))
    assert code == 2 and "--seeds must be at least 1, got 0" in output  # a given 0 is not "not given"
    code, output = invoke("compare", "--objectives", "mlm", "--budget", "1e9flops", "--max-pairs", "0",
                          "--out", str(tmp_path / "x"))
    assert code == 2 and "--max-pairs must be at least 1, got 0" in output
    code, output = invoke("compare", str(tmp_path), "--seeds", "3", "--size", "tiny")
    assert code == 2 and "--seeds, --size: training options do not apply to existing runs" in output
    code, output = invoke("compare", str(tmp_path))
    assert code == 2 and "not a zoo run directory" in output
    code, output = invoke("compare", "--objectives", "nsp", "--backbones", "gpt", "--budget", "1e9flops",
                          "--tasks", "sst2", "--out", str(tmp_path / "y"))
    assert code == 2 and "nsp x gpt" in output
    code, output = invoke("compare", "--objectives", "mlm", "--backbones", "bert", "--budget", "1e9flops",
                          "--tasks", "sst3", "--out", str(tmp_path / "z"))
    assert code == 2 and "unknown task 'sst3'" in output
    assert not (tmp_path / "z" / "runs").exists()  # a typo fails before any training


def test_a_study_that_trained_nothing_can_be_rerun_with_other_settings(corpus: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative --data that does not resolve fails before anything trains; the corrected command then
    runs in the same --out (nothing trained, nothing to protect)."""
    from ..unit.test_minimal_pairs_data import write_blimp

    blimp = tmp_path / "blimp"
    blimp.mkdir()
    write_blimp(blimp / "toy.jsonl", "toy", [("The cats sleep.", "The cats sleeps."), ("Dogs bark.", "Dogs barks.")])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "docs.txt").write_text(corpus.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    common = ["compare", "--objectives", "clm", "--backbones", "gpt", "--budget", "2steps", "--seeds", "1", *TINY,
              "--suite", "blimp", "--data-dir", str(blimp), "--device", "cpu", "--no-baseline", "--out", "study"]
    code, output = invoke(*common, "--data", "dta/docs.txt")
    assert code != 0 and "dta" in output, output
    assert not any((tmp_path / "study" / "runs").glob("*/step-*"))
    code, output = invoke(*common, "--data", "data/docs.txt")
    assert code == 0, output
    assert (tmp_path / "study" / "report.md").is_file()
    assert json.loads((tmp_path / "study" / "study.json").read_text())["runs"]["gpt-clm-seed0"]["status"] == "done"


@pytest.mark.slow
def test_invalid_utf8_in_the_corpus_is_summarised_once_per_study(corpus: Path, tmp_path: Path) -> None:
    """A corpus with a stray cp1252 byte: its tokenizer and each run read it, and the study says so once."""
    from ..unit.test_minimal_pairs_data import write_blimp

    blimp = tmp_path / "blimp"
    blimp.mkdir()
    write_blimp(blimp / "toy.jsonl", "toy", [("The cats sleep.", "The cats sleeps."), ("Dogs bark.", "Dogs barks.")])
    data = tmp_path / "data"
    data.mkdir()
    (data / "docs.txt").write_bytes(corpus.read_bytes() + b"\n\nA caf\xe9 on the corner.\n")
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--budget", "2steps", "--seeds", "2",
                          *TINY, "--data", str(data), "--suite", "blimp", "--data-dir", str(blimp), "--device", "cpu",
                          "--no-baseline", "--out", str(tmp_path / "study"))
    assert code == 0, output
    flat = " ".join(output.split())
    assert flat.count("1 invalid UTF-8 sequence(s) decoded as U+FFFD") == 1, output
    assert {r["status"] for r in json.loads((tmp_path / "study" / "study.json").read_text())["runs"].values()} == {"done"}
