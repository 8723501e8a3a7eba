"""``run_bench``: several models and seeds, the result cache, reports, the from-scratch baseline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from zoo import registry
from zoo.benchmarks import bench
from zoo.benchmarks.bench import run_bench
from zoo.benchmarks.finetune_results import bench_result_from_dict
from zoo.benchmarks.recipe import Recipe
from zoo.benchmarks.source import from_backbone
from zoo.errors import ConfigError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "the a film plot was good great bad awful dull p h x y".split()


def wordpiece() -> Tokenizer:
    vocab = list(dict.fromkeys([*SPECIALS, *WORDS]))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(SPECIALS)
    return tok


def source(name: str, path: Path, backbone_name: str = "bert"):
    tok = wordpiece()
    cls = registry.load("backbone", backbone_name)
    torch.manual_seed(1234)  # "pretrained" weights other than any seed's random init
    bb = cls(cls.Config(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=2, num_heads=2,
                        intermediate_size=64, max_positions=64))
    path.mkdir(parents=True, exist_ok=True)
    return from_backbone(bb, tok, name=name, path=path)


def write_data(root: Path) -> Path:
    rng = random.Random(0)
    sst = [["sentence", "label"]]
    for _ in range(40):
        y = rng.randrange(2)
        sst.append([f"the film was {rng.choice(['good', 'great'] if y else ['bad', 'awful'])}", str(y)])
    for split, rows in (("train", sst), ("dev", sst[:17])):
        (root / "SST-2").mkdir(parents=True, exist_ok=True)
        (root / "SST-2" / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    head = ["index", "promptID", "pairID", "genre", "b1", "b2", "p1", "p2", "sentence1", "sentence2", "label1",
            "gold_label"]
    labels = ["contradiction", "entailment", "neutral"]
    rows = [[str(i), "0", "0", "g", "", "", "", "", "p x", "h y", labels[i % 3], labels[i % 3]] for i in range(12)]
    (root / "MNLI").mkdir()
    (root / "MNLI" / "train.tsv").write_text("".join("\t".join(r) + "\n" for r in [head, *rows]))
    dev_head = head[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
    dev = [r[:-1] + [r[-1]] * 4 + [r[-1]] for r in rows]
    (root / "MNLI" / "dev_matched.tsv").write_text("".join("\t".join(r) + "\n" for r in [dev_head, *dev[:6]]))
    (root / "MNLI" / "dev_mismatched.tsv").write_text("".join("\t".join(r) + "\n" for r in [dev_head, *dev[6:]]))
    return root


class Recorder:
    def __init__(self) -> None:
        self.bars: list[tuple[str, int, int]] = []

    def start(self, description: str, total: int) -> None:
        self.bars.append((description, total, 0))

    def advance(self, n: int = 1) -> None:
        d, t, k = self.bars[-1]
        self.bars[-1] = (d, t, k + n)

    def finish(self) -> None:
        pass


RECIPE = Recipe(epochs=1, batch_size=8, lr=1e-3)


def test_run_bench_seeds_cache_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_data(tmp_path / "glue")
    a, b = source("a", tmp_path / "a"), source("b", tmp_path / "b", "gpt")
    progress = Recorder()
    result = run_bench([a, b], suite="glue", tasks="sst2,mnli", data_dir=data, seeds=3, recipe=RECIPE,
                       max_eval_examples=5, device="cpu", progress=progress)
    assert [m.name for m in result.models] == ["a", "b"] and result.seeds == [0, 1, 2]
    sst2 = result.models[0].tasks["sst2"]
    assert [s.seed for s in sst2.seeds] == [0, 1, 2] and not any(s.cached for s in sst2.seeds)
    assert sst2.seeds[0].eval_examples == {"dev": 5} and sst2.seeds[0].train_examples == 40
    summary = sst2.summary()["accuracy"]
    values = sorted(sst2.values("accuracy"))
    assert summary["median"] == values[1] and (summary["min"], summary["max"]) == (values[0], values[2])
    mnli = result.models[1].tasks["mnli"]
    assert mnli.metrics == ["m/accuracy", "mm/accuracy"]
    m = mnli.summary()
    assert mnli.score() == pytest.approx((m["m/accuracy"]["median"] + m["mm/accuracy"]["median"]) / 2)
    assert result.models[1].average() == pytest.approx((result.models[1].tasks["sst2"].score() + mnli.score()) / 2)
    assert len(progress.bars) == 2 * 2 * 3 and progress.bars[0] == ("a: sst2 seed 0", 5, 5)

    # reports in each model's directory
    saved = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]["glue"]
    assert saved["models"][0]["tasks"]["sst2"]["seeds"][2]["scores"] == sst2.seeds[2].scores
    assert saved["average_definition"].startswith("GLUE leaderboard")
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "| MNLI | m/accuracy |" in md and "| average (2 tasks) |" in md
    assert bench_result_from_dict(saved).to_dict()["models"] == saved["models"]
    columns, rows = result.table()
    assert columns == ["task", "metric", "a", "b", "constant", "bag of words"] and [r[:2] for r in rows] == [
        ["SST-2", "accuracy"], ["MNLI", "m/accuracy"], ["MNLI", "mm/accuracy"], ["average (2 tasks)", ""]]
    assert rows[0][-2] == f"{100 * result.constant['sst2']['accuracy']:.1f}"
    assert rows[0][-1] == f"{100 * result.bag_of_words['sst2']['accuracy']:.1f}"
    assert bench_result_from_dict(saved).constant == result.constant == saved["constant"]
    assert bench_result_from_dict(saved).bag_of_words == result.bag_of_words == saved["bag_of_words"]
    assert "| constant |" in md and "Constant: the constant predictor" in md
    assert [len(s.predictions["dev"]) for s in sst2.seeds] == [5, 5, 5]  # per-item, for paired tests
    assert len(result.references["sst2"]["dev"]) == 5 and set(result.references["sst2"]["dev"]) <= {0, 1}
    accuracy = [sum(p == y for p, y in zip(s.predictions["dev"], result.references["sst2"]["dev"], strict=True)) / 5
                for s in sst2.seeds]
    assert accuracy == pytest.approx(sst2.values("accuracy"))  # the predictions are the scored ones

    # a rerun computes nothing
    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached result")

    monkeypatch.setattr(bench, "finetune", fail)
    again = run_bench([a, b], suite="glue", tasks="sst2,mnli", data_dir=data, seeds=3, recipe=RECIPE,
                      max_eval_examples=5, device="cpu")
    assert all(s.cached for m in again.models for t in m.tasks.values() for s in t.seeds)
    assert [s.predictions for s in again.models[0].tasks["sst2"].seeds] == [s.predictions for s in sst2.seeds]
    assert again.to_dict()["models"][0]["tasks"]["sst2"]["summary"] == result.to_dict()["models"][0]["tasks"]["sst2"]["summary"]
    # ... but a new recipe, seed or data subset is computed
    for kwargs in ({"overrides": ["lr=5e-4"]}, {"seeds": 4}, {"max_eval_examples": 6}):
        with pytest.raises(AssertionError, match="recomputed"):
            run_bench([a], tasks="sst2", data_dir=data, **{"seeds": 3, "recipe": RECIPE, "max_eval_examples": 5,
                                                           "device": "cpu", **kwargs})
    monkeypatch.undo()
    cached = sorted(p.name for p in (tmp_path / "a" / "bench-cache").iterdir())
    assert len(cached) == 6 and cached[0].startswith("mnli-seed0-")


def test_from_scratch_baseline_is_benchmarked_beside_the_model(tmp_path: Path) -> None:
    data = write_data(tmp_path / "glue")
    a = source("a", tmp_path / "a")
    result = run_bench([a], tasks="sst2", data_dir=data, seeds=2, recipe=RECIPE, device="cpu", from_scratch=True)
    names = [m.name for m in result.models]
    assert names == ["a", "a (from scratch)"] and result.models[1].from_scratch
    assert result.models[1].checkpoint_id.startswith("scratch-") and result.models[1].checkpoint_id != a.checkpoint_id
    scratch = a.scratch()
    w0, w0b, w1 = (scratch.backbone(s).tok_emb.weight for s in (0, 0, 1))
    assert (w0 == w0b).all() and not (w0 == w1).all()  # one random init per seed, reproducible
    assert not (w0 == a.backbone(0).tok_emb.weight).all()
    saved = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]["glue"]
    assert [m["name"] for m in saved["models"]] == names
    assert any(p.name.startswith("sst2-scratch-seed1-") for p in (tmp_path / "a" / "bench-cache").iterdir())


def test_bench_json_keeps_other_suites(tmp_path: Path) -> None:
    data = write_data(tmp_path / "glue")
    a = source("a", tmp_path / "a")
    (tmp_path / "a" / "bench.json").write_text(json.dumps({"suites": {"clue": {"kept": True}}}))
    run_bench([a], tasks="sst2", data_dir=data, recipe=RECIPE, device="cpu", write_reports=True)
    suites = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]
    assert suites["clue"] == {"kept": True} and "glue" in suites
    assert "## GLUE (sst2)" in (tmp_path / "a" / "bench.md").read_text()  # the unreadable entry is skipped


def test_bench_json_accumulates_newest_per_task_and_recipe(tmp_path: Path) -> None:
    """Benchmarking one task keeps the others; a new recipe keeps the earlier one's result beside it."""
    data = write_data(tmp_path / "glue")
    a = source("a", tmp_path / "a")
    run_bench([a], tasks="sst2", data_dir=data, recipe=RECIPE, device="cpu", max_eval_examples=5)
    run_bench([a], tasks="mnli", data_dir=data, recipe=RECIPE, device="cpu", max_eval_examples=5)
    saved = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]["glue"]
    model = saved["models"][0]
    assert saved["tasks"] == ["sst2", "mnli"] and list(model["tasks"]) == ["sst2", "mnli"]
    assert model["average"] == pytest.approx((model["tasks"]["sst2"]["score"] + model["tasks"]["mnli"]["score"]) / 2)
    first = model["tasks"]["sst2"]
    run_bench([a], tasks="sst2", data_dir=data, recipe=RECIPE, overrides=["lr=5e-4"], device="cpu",
              max_eval_examples=5)
    model = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]["glue"]["models"][0]
    assert list(model["tasks"]) == ["sst2", "mnli"] and model["tasks"]["sst2"]["recipe"]["lr"] == 5e-4
    assert [t["recipe_id"] for t in model["other_recipes"]] == [first["recipe_id"]]
    md = (tmp_path / "a" / "bench.md").read_text()
    assert "- a, SST-2: recipe " in md and "lr=0.0005" in md and "- a, MNLI: recipe " in md
    assert "Earlier results with other recipes" in md and f"recipe {first['recipe_id'][:8]} (" in md
    # a rerun of the first recipe makes it the newest again; nothing is duplicated
    run_bench([a], tasks="sst2", data_dir=data, recipe=RECIPE, device="cpu", max_eval_examples=5)
    model = json.loads((tmp_path / "a" / "bench.json").read_text())["suites"]["glue"]["models"][0]
    assert model["tasks"]["sst2"]["recipe_id"] == first["recipe_id"] and len(model["other_recipes"]) == 1


def test_average_definition_names_the_suite() -> None:
    glue, clue = (bench.BenchResult(s, [], [0], [], "hub").to_dict()["average_definition"] for s in ("glue", "clue"))
    assert glue.startswith("GLUE leaderboard")
    assert clue.startswith("CLUE classification tasks") and "GLUE" not in clue and "never a CLUE score" in clue


def test_bad_arguments(tmp_path: Path) -> None:
    a = source("a", tmp_path / "a")
    with pytest.raises(ConfigError, match="--seeds must be at least 1"):
        run_bench([a], tasks="sst2", seeds=0)
    with pytest.raises(ConfigError, match="unknown task 'sst3'.*Did you mean 'sst2'"):
        run_bench([a], tasks="sst2,sst3")
    with pytest.raises(ConfigError, match="--tasks: tnews not in suite 'glue'"):
        run_bench([a], suite="glue", tasks="tnews")
    with pytest.raises(ConfigError, match="--tasks mixes suites"):
        run_bench([a], suite=None, tasks="tnews,sst2")
    with pytest.raises(ConfigError, match="--suite 'superglue': no such suite; known suites: clue, glue, blimp, climp"):
        run_bench([a], suite="superglue")


def test_models_with_the_same_directory_name_get_distinct_columns(tmp_path: Path) -> None:
    data = write_data(tmp_path / "glue")
    a, b = source("final", tmp_path / "x" / "final"), source("final", tmp_path / "y" / "final")
    result = run_bench([a, b], tasks="sst2", data_dir=data, recipe=RECIPE, device="cpu", max_eval_examples=4,
                       write_reports=False)
    assert [m.name for m in result.models] == [str(tmp_path / "x" / "final"), str(tmp_path / "y" / "final")]
    assert not (tmp_path / "x" / "final" / "bench.json").exists()  # write_reports=False
