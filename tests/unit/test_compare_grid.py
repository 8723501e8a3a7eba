"""Study settings, grid expansion, run configs and study.json checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zoo.compare.study import (
    BenchOptions,
    Cell,
    Grid,
    StudyFile,
    StudySettings,
    expand_grid,
    grid_checked,
    reuse_diffs,
    run_config,
    run_name,
    split_list,
)
from zoo.errors import ConfigError, PluginError
from zoo.typed_config import to_dict


def test_grid_keeps_compatible_pairs_and_lists_the_rest_with_reasons() -> None:
    grid = expand_grid(["mlm", "mlm+nsp", "span", "clm", "nsp"], ["bert", "gpt"])
    assert [(c.objective, c.backbone) for c in grid.cells] == [
        ("mlm", "bert"), ("mlm", "gpt"), ("mlm+nsp", "bert"), ("span", "bert"), ("span", "gpt"), ("clm", "bert"),
        ("clm", "gpt"), ("nsp", "bert")]
    skipped = {(s.objective, s.backbone): s.reason for s in grid.skipped}
    assert set(skipped) == {("mlm+nsp", "gpt"), ("nsp", "gpt")}
    assert "segment embeddings" in skipped[("nsp", "gpt")]
    assert "try" not in skipped[("nsp", "gpt")]  # the hint is for the train command, not for a report
    assert grid.families() == {"bert": "encoder", "gpt": "decoder"}


def test_unknown_names_are_errors_not_skips() -> None:
    with pytest.raises(PluginError, match="mlmm"):
        expand_grid(["mlmm"], ["bert"])
    with pytest.raises(PluginError, match="robert"):
        expand_grid(["mlm"], ["robert"])


def test_a_grid_with_nothing_compatible_is_an_error() -> None:
    with pytest.raises(ConfigError, match="nsp x gpt"):
        expand_grid(["nsp", "sop"], ["gpt"])


def test_run_names_and_collisions() -> None:
    assert run_name(Cell("mlm+nsp", "bert"), 2) == "bert-mlm+nsp-seed2"
    assert run_name(Cell("mlm:1.0+nsp:0.5", "bert"), 0) == "bert-mlm_1.0+nsp_0.5-seed0"
    with pytest.raises(ConfigError, match="share the run directory"):
        grid_checked(Grid([Cell("mlm:1+nsp", "bert"), Cell("mlm_1+nsp", "bert")], []))


def test_a_same_architecture_grid_with_a_mixture() -> None:
    """``--objectives "clm,mlm,mntp:15|clm:1" --backbones gpt``: commas split cells, pipes stay in a spec,
    run directories are filesystem-safe."""
    objectives = split_list("clm,mlm,mntp:15|clm:1", "--objectives")
    assert objectives == ["clm", "mlm", "mntp:15|clm:1"]
    grid = expand_grid(objectives, ["gpt"])
    assert [c.objective for c in grid.cells] == objectives and not grid.skipped
    names = [run_name(c, 0) for c in grid.cells]
    assert names == ["gpt-clm-seed0", "gpt-mlm-seed0", "gpt-mntp_15_or_clm_1-seed0"]
    assert all(re.fullmatch(r"[A-Za-z0-9+._-]+", n) for n in names)
    assert run_name(Cell("(mlm+sop):3|clm", "bert"), 1) == "bert-_mlm+sop__3_or_clm-seed1"
    skipped = expand_grid(["mntp|sop", "clm"], ["gpt"]).skipped
    assert [(s.objective, s.reason.split(": ", 1)[0]) for s in skipped] == [("mntp|sop", "mixture part 'sop'")]


def test_split_list() -> None:
    assert split_list(" mlm, mlm+nsp ,,clm ", "--objectives") == ["mlm", "mlm+nsp", "clm"]
    assert split_list(None, "--tasks") == []
    with pytest.raises(ConfigError, match="listed twice"):
        split_list("mlm,mlm", "--objectives")


def settings(**kw: object) -> StudySettings:
    base = dict(objectives=["mlm", "clm"], backbones=["bert", "gpt"], budget="3e14flops", seeds=[0, 1, 2],
                data="corpus.txt", size="tiny", seq_len=64, batch_size=8, train_overrides=["optim.lr=0.001"])
    base.update(kw)
    return StudySettings(**base)  # type: ignore[arg-type]


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--budget"):
        settings(budget="lots")
    with pytest.raises(ConfigError, match="repeated seed"):
        settings(seeds=[0, 0])
    with pytest.raises(ConfigError, match="train.seed"):
        settings(train_overrides=["train.seed=3"])
    with pytest.raises(ConfigError, match="tokenizer.path"):
        settings(train_overrides=["tokenizer.path=x.json"])
    with pytest.raises(ConfigError, match="--bench-seeds"):
        BenchOptions(seeds=0)
    with pytest.raises(ConfigError, match="--max-train-examples"):
        BenchOptions(max_train_examples=0)


def test_runs_differ_only_in_objective_backbone_seed_and_tokenizer(tmp_path: Path) -> None:
    s = settings()
    tok = tmp_path / "tok.json"
    a = to_dict(run_config(s, Cell("mlm", "bert"), 0, tmp_path / "a", tok))
    b = to_dict(run_config(s, Cell("mlm", "bert"), 1, tmp_path / "b", tok))
    c = to_dict(run_config(s, Cell("clm", "gpt"), 0, tmp_path / "c", tok, eval_every=7))
    assert a["train"]["budget"] == c["train"]["budget"] == "3e14flops"
    assert a["optim"]["lr"] == c["optim"]["lr"] == 0.001
    assert (a["train"]["seed"], b["train"]["seed"]) == (0, 1)
    assert a["tokenizer"]["path"] == str(tok)
    assert (c["train"]["eval_every"], c["train"]["checkpoint_every"]) == (7, 7)
    assert a["size"] == c["size"] == "tiny" and a["train"]["seq_len"] == c["train"]["seq_len"] == 64
    # A finished run may differ in how often it logged; not in what it trained.
    assert reuse_diffs(c, run_config(s, Cell("clm", "gpt"), 0, tmp_path / "elsewhere", tok)) == []
    assert reuse_diffs(a, run_config(settings(budget="1e14flops"), Cell("mlm", "bert"), 0, tmp_path / "a", tok)) \
        == ["train.budget"]


def test_study_file_refuses_other_training_settings_but_not_other_tasks(tmp_path: Path) -> None:
    grid = expand_grid(["mlm"], ["bert"])
    StudyFile(tmp_path).load_or_start(settings(), grid, "zoo compare ...")
    again = StudyFile(tmp_path)
    again.load_or_start(settings(bench=BenchOptions(tasks=["cola"]), seeds=[0, 1, 2, 3]), grid, None)
    assert again.data["settings"]["bench"]["tasks"] == ["cola"]
    assert again.data["command"] == "zoo compare ..."
    # nothing trained yet: other settings start the study over
    StudyFile(tmp_path).load_or_start(settings(budget="2e14flops"), grid, None)
    assert StudyFile(tmp_path).path.read_text().count('"2e14flops"') == 1
    (tmp_path / "runs" / "bert-mlm-seed0" / "step-000004").mkdir(parents=True)  # once a run has a checkpoint
    with pytest.raises(ConfigError, match="budget: '2e14flops' -> '1e14flops'"):
        StudyFile(tmp_path).load_or_start(settings(budget="1e14flops"), grid, None)
    # --set overrides are compared by the values they set: the same learning rate written another way resumes
    StudyFile(tmp_path).load_or_start(settings(budget="2e14flops", train_overrides=["optim.lr=1e-3"]), grid, None)
    with pytest.raises(ConfigError, match="train_overrides"):
        StudyFile(tmp_path).load_or_start(settings(budget="2e14flops", train_overrides=["optim.lr=2e-3"]), grid, None)
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable study file"):
        StudyFile(tmp_path).load_or_start(settings(), grid, None)


@pytest.mark.parametrize("objective", ["mntp:15|clm:1", "mlm:1.0+nsp:0.5", "(mlm+sop):3|clm", "mlm+nsp"])
def test_train_and_compare_name_runs_alike_and_portably(objective: str) -> None:
    """``zoo train``'s default run directory is the study's run name without its seed suffix, with no ':'."""
    from zoo.train.config import RunConfig

    default = RunConfig(objective=objective, backbone="gpt").run_dir
    assert f"{default}-seed0" == f"runs/{run_name(Cell(objective, 'gpt'), 0)}"
    assert re.fullmatch(r"runs/[A-Za-z0-9+._-]+", default)


def test_default_evaluations_scale_with_the_steps() -> None:
    from zoo.compare.study import auto_evals

    assert [auto_evals(n) for n in (10, 400, 1000, 5000, 10**6)] == [4, 8, 20, 50, 50]
    assert settings().evals == 0  # auto unless --evals is given


def test_named_pairs_train_exactly_those_pairs() -> None:
    """``--objectives clm@gpt,mlm@bert,span-lm@t5``: one cell per item, across families, none crossed."""
    from zoo.compare.study import pair_backbones

    objectives = split_list("clm@gpt, mlm@bert ,span-lm@t5", "--objectives")
    assert pair_backbones(objectives) == ["gpt", "bert", "t5"]
    grid = expand_grid(objectives, ["gpt", "bert", "t5"])
    assert [(c.objective, c.backbone) for c in grid.cells] == [("clm", "gpt"), ("mlm", "bert"), ("span-lm", "t5")]
    assert not grid.skipped
    assert [run_name(c, 0) for c in grid.cells] == ["gpt-clm-seed0", "bert-mlm-seed0", "t5-span-lm-seed0"]
    assert grid.families() == {"gpt": "decoder", "bert": "encoder", "t5": "encoder-decoder"}
    # a plain item still pairs with every --backbones entry; a pair reaches a backbone not listed there
    mixed = expand_grid(["mlm", "clm@gpt"], ["bert"])
    assert [(c.objective, c.backbone) for c in mixed.cells] == [("mlm", "bert"), ("clm", "gpt")]
    assert pair_backbones(["mlm", "clm@gpt"]) is None


def test_named_pairs_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="nsp@gpt cannot train"):
        expand_grid(["nsp@gpt"], ["gpt"])  # asked for by name: an error, not a skip
    with pytest.raises(ConfigError, match="OBJECTIVE@BACKBONE"):
        expand_grid(["clm@"], ["gpt"])
    with pytest.raises(ConfigError, match="OBJECTIVE@BACKBONE"):
        expand_grid(["clm@gpt@bert"], ["gpt"])
    with pytest.raises(ConfigError, match="listed twice"):
        expand_grid(["clm", "clm@gpt"], ["gpt"])
    with pytest.raises(PluginError, match="robert"):
        expand_grid(["mlm@robert"], ["bert"])


def test_cli_named_pairs_refuse_backbones(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    result = CliRunner().invoke(cli, ["compare", "--objectives", "clm@gpt,mlm@bert", "--backbones", "gpt",
                                      "--budget", "1steps", "--out", str(tmp_path / "s")])
    assert result.exit_code != 0
    assert "leave --backbones out" in result.output
    assert not (tmp_path / "s").exists()
