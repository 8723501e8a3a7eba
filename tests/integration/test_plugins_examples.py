"""The backbone, task, suite and scorer plugin examples of docs/plugins.md, registered from their own
``pyproject.toml`` metadata (a dist-info written from it, the package imported from its folder),
exactly as ``pip install ./examples/...`` would register them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from zoo import registry
from zoo.cli import cli
from zoo.errors import DataError
from zoo.listing import listing
from zoo.models.attention import AttentionLayout
from zoo.testing import check_objective, special_tokens_for_tests, tiny_backbone

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PACKAGES = {"zoo-plugin-backbone": "zoo_bert_rope", "zoo-plugin-task": "zoo_polarity",
            "zoo-plugin-suite": "zoo_agreement", "zoo-plugin-scorer": "zoo_slor"}


def fake_install(example: Path, site: Path) -> None:
    """Write ``<name>-<version>.dist-info`` (METADATA, entry_points.txt) from the example's pyproject."""
    project = tomllib.loads((example / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory):
    site = tmp_path_factory.mktemp("site-packages")
    with pytest.MonkeyPatch.context() as mp:
        for name in PACKAGES:
            fake_install(EXAMPLES / name, site)
            mp.syspath_prepend(str(EXAMPLES / name))
        mp.syspath_prepend(str(site))
        mp.delenv(registry.DISABLE_ENV, raising=False)
        registry.clear_cache()
        yield site
    registry.clear_cache()
    for mod in [m for m in sys.modules if m.split(".")[0] in PACKAGES.values()]:
        del sys.modules[mod]


@pytest.fixture(scope="module")
def rope_run(plugins: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``zoo train --objective mlm --backbone bert-rope``, 2 steps on a small English corpus."""
    from pydoc_data.topics import topics

    root = tmp_path_factory.mktemp("rope")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k].strip().replace("\n\n", "\n") for k in sorted(topics)[:40]))
    args = ["train", "--objective", "mlm", "--backbone", "bert-rope", "--size", "tiny", "--budget", "2steps",
            "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400", "--data", str(corpus),
            "--out", str(root / "run"), "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
            "--set", "data.doc_boundary=blank-line", "--set", "train.eval_batches=1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return root / "run"


# --- backbone plugin ---------------------------------------------------------------------------------
def test_zoo_list_shows_the_examples_and_their_compatibility(plugins: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["list"], terminal_width=250).output
    assert "bert-rope" in out and "zoo-plugin-backbone 0.1.0" in out
    assert "polarity" in out and "zoo-plugin-task 0.1.0" in out
    assert "| reviews | fine-tuning: polarity |" in out  # the plugin's suite in the Suites table
    # ... and in the --suite error, with a did-you-mean
    result = CliRunner().invoke(cli, ["bench", str(tmp_path), "--suite", "review"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "known suites: clue, glue, reviews, agreement, blimp, climp" in flat and "Did you mean 'reviews'?" in flat, flat
    matrix = listing().matrix
    assert matrix["mlm"]["bert-rope"] == "yes" and matrix["clm"]["bert-rope"] == "yes"
    assert matrix["nsp"]["gpt"].startswith("no: nsp needs segment embeddings")
    assert all(matrix[obj]["bert-rope"] == matrix[obj]["bert"] for obj in matrix)  # same capabilities


def test_builtin_objectives_conform_on_the_plugin_backbone(plugins: Path) -> None:
    (report,) = check_objective("mlm", "bert-rope", seq_len=32, batch_size=4)
    assert report.composed_with == "nsp" and report.losses[-1] < report.losses[0]


def test_rotary_matches_the_transformers_reference(plugins: Path) -> None:
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    from zoo_bert_rope import apply_rotary, rotary_tables

    head_dim, base = 16, 10000.0
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3, 4, 5], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]])
    cos, sin = rotary_tables(positions, head_dim, base)  # (B, T, 1, D)
    ref = LlamaRotaryEmbedding(LlamaConfig(hidden_size=32, num_attention_heads=2, head_dim=head_dim))
    ref_cos, ref_sin = ref(torch.zeros(2, 10, head_dim), positions)  # (B, T, D)
    torch.testing.assert_close(cos[:, :, 0], ref_cos, rtol=0, atol=1e-6)
    q, k = torch.randn(2, 10, 2, head_dim), torch.randn(2, 10, 2, head_dim)  # (B, T, H, D)
    ref_q, ref_k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), ref_cos, ref_sin)
    torch.testing.assert_close(apply_rotary(q, cos, sin), ref_q.transpose(1, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(apply_rotary(k, cos, sin), ref_k.transpose(1, 2), rtol=0, atol=1e-6)


def test_rotary_attention_sees_only_relative_positions(plugins: Path) -> None:
    tokens = special_tokens_for_tests()
    ids = torch.randint(10, 400, (2, 24))
    layout = AttentionLayout(doc_ids=torch.zeros(2, 24, dtype=torch.int32))
    pos = torch.arange(24)[None].expand(2, -1)
    outputs = {}
    for name in ("bert-rope", "bert"):
        backbone = tiny_backbone(name, tokens.vocab_size).eval()
        with torch.no_grad():
            outputs[name] = [backbone(ids, layout, position_ids=pos + shift) for shift in (0, 9)]
    rope, bert = outputs["bert-rope"], outputs["bert"]
    torch.testing.assert_close(rope[0], rope[1], rtol=0, atol=2e-5)  # shifted positions: same function
    assert (bert[0] - bert[1]).abs().max() > 1e-2  # learned absolute positions: a different one
    assert not hasattr(registry.load("backbone", "bert-rope")(registry.load("backbone", "bert-rope").Config(
        vocab_size=64, hidden_size=32, num_heads=2)), "pos_emb")


def test_the_plugin_backbone_exports_to_roformer_and_benches_from_it(rope_run: Path, tmp_path: Path) -> None:
    """The transformers hook of docs/plugins.md: ``zoo export`` writes RoFormerForMaskedLM, which
    transformers' own class loads and runs as the run's model; ``zoo bench`` reads it back."""
    import json

    from transformers import RoFormerForMaskedLM
    from zoo_polarity.make_tsv import make_tsv

    from zoo.benchmarks.source import open_source
    from zoo.runs import open_run

    out = tmp_path / "hf"
    result = CliRunner().invoke(cli, ["export", str(rope_run), "--to", "hf", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["architectures"] == ["RoFormerForMaskedLM"]
    model = open_run(rope_run).load_model().eval()
    ids = torch.randint(10, model.backbone.spec.vocab_size, (2, 20))
    layout = AttentionLayout(doc_ids=torch.zeros(2, 20, dtype=torch.int32))
    hf = RoFormerForMaskedLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        ours = model.backbone(ids, layout)  # (B, T, h)
        torch.testing.assert_close(model.heads["mlm"](ours), hf(input_ids=ids).logits, rtol=0, atol=1e-4)
        source = open_source(out)  # read back into the plugin backbone through the same hook
        assert source.backbone_name == "bert-rope"
        torch.testing.assert_close(source.loader(0).eval()(ids, layout), ours, rtol=0, atol=0)
    make_tsv(_reviews(tmp_path / "src", per_class=16), tmp_path / "data")
    result = CliRunner().invoke(cli, ["bench", str(out), "--tasks", "polarity", "--data-dir", str(tmp_path / "data"),
                                      "--epochs", "1", "--batch-size", "8", "--max-length", "48", "--device", "cpu"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Polarity" in result.output


def test_the_plugin_backbones_export_reimports_with_init_and_scores_zero_shot(rope_run: Path, tmp_path: Path) -> None:
    """The whole transformers round trip of a plugin backbone through its adapter, nothing in zoo/ naming
    RoFormer: export, ``zoo train --init`` from the export, zero-shot scoring of the export's masked-LM head
    equal to the run's own."""
    import json

    from zoo.interop import open_hf
    from zoo.runs import open_run

    out = tmp_path / "hf"
    assert CliRunner().invoke(cli, ["export", str(rope_run), "--to", "hf", str(out)]).exit_code == 0
    hf = open_hf(out)
    assert (hf.backbone, hf.architecture, hf.token_objective()) == ("bert-rope", "RoFormerForMaskedLM", "mlm")
    again = tmp_path / "again"
    result = CliRunner().invoke(cli, ["train", "--init", str(out), "--objective", "mlm", "--budget", "1steps",
                                      "--seq-len", "32", "--batch-size", "4", "--data", str(rope_run.parent / "corpus.txt"),
                                      "--out", str(again), "--set", "data.doc_boundary=blank-line",
                                      "--set", "train.eval_batches=1"], terminal_width=200)
    assert result.exit_code == 0, result.output
    run = open_run(again)
    assert run.backbone_name == "bert-rope" and run.info["init"]["heads"]["mlm"] == "cls.predictions"
    scores = {}
    for model in (rope_run, out):
        result = CliRunner().invoke(cli, ["bench", str(model), "--suite", "agreement", "--device", "cpu"],
                                    terminal_width=200)
        assert result.exit_code == 0, result.output
        entry = json.loads((model / "bench.json").read_text())["suites"]["agreement"]
        scores[model] = (entry["models"][0]["scorer"], entry["models"][0]["correct"])
    assert scores[rope_run] == scores[out]


# --- task plugin -------------------------------------------------------------------------------------
def _reviews(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    words = {"pos": ["wonderful", "moving", "superb", "funny"], "neg": ["dull", "boring", "awful", "tedious"]}
    for label in ("pos", "neg"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            name = f"cv{(900 if i % 4 == 0 else 0) + i:03d}_{i}.txt"
            body = " ".join(rng.choice(words[label] + ["the", "film", "plot", "actors"], size=30))
            (root / label / name).write_text(f"{body}\n\tsecond line .\n")
    (root / "neg" / "cv001_empty.txt").write_text("\n")
    return root


def test_make_tsv_writes_the_layout_the_spec_reads(plugins: Path, tmp_path: Path) -> None:
    from zoo_polarity.make_tsv import make_tsv

    from zoo.benchmarks.data import load_task_data
    from zoo.benchmarks.tasks import get_task

    written = make_tsv(_reviews(tmp_path / "src"), tmp_path / "data")
    assert written.counts == {"train": {"neg": 9, "pos": 9}, "dev": {"neg": 3, "pos": 3}}
    assert len(written.skipped) == 1 and "cv001_empty.txt: empty" in written.skipped[0]
    spec = get_task("polarity")
    assert registry.info("task", "polarity").origin == "zoo-plugin-task 0.1.0"
    data = load_task_data(spec, tmp_path / "data")
    assert (len(data.train), len(data.evals["dev"])) == (18, 6)
    assert {ex.label for ex in data.train.examples} == {0, 1} and "\t" not in data.train.examples[0].text_a
    # a malformed row is skipped and reported by file and line
    dev = tmp_path / "data" / "polarity" / "dev.tsv"
    dev.write_text(dev.read_text() + "a review without a label\nanother review\tmaybe\n")
    data = load_task_data(spec, tmp_path / "data")
    assert data.evals["dev"].malformed == 2 and f"{dev}:8" in data.evals["dev"].issues[0]
    with pytest.raises(DataError, match="expected folders neg, pos"):
        make_tsv(tmp_path / "data", tmp_path / "out")


def test_make_tsv_on_the_real_polarity_dataset(plugins: Path, shared_data: Path, tmp_path: Path) -> None:
    from zoo_polarity.make_tsv import make_tsv

    written = make_tsv(shared_data / "corpus" / "en" / "movie_reviews", tmp_path)
    assert written.counts == {"train": {"neg": 900, "pos": 900}, "dev": {"neg": 100, "pos": 100}}
    assert not written.skipped


def test_zoo_bench_fine_tunes_the_plugin_backbone_on_the_plugin_task(rope_run: Path, tmp_path: Path) -> None:
    from zoo_polarity.make_tsv import make_tsv

    make_tsv(_reviews(tmp_path / "src", per_class=16), tmp_path / "data")
    result = CliRunner().invoke(cli, ["bench", str(rope_run), "--tasks", "polarity", "--data-dir",
                                      str(tmp_path / "data"), "--epochs", "1", "--batch-size", "8",
                                      "--max-length", "48", "--device", "cpu"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "REVIEWS" in result.output and "Polarity" in result.output
    import json

    bench = json.loads((rope_run / "bench.json").read_text())
    assert "polarity" in json.dumps(bench)


# --- suite plugin ------------------------------------------------------------------------------------
def test_the_suite_plugin_is_listed_conforms_and_names_bad_lines(plugins: Path, tmp_path: Path) -> None:
    from zoo.benchmarks.minimal_pairs import load_suite
    from zoo.testing import check_suite

    out = CliRunner().invoke(cli, ["list"], terminal_width=250).output
    assert "agreement" in out and "zoo-plugin-suite 0.1.0" in out
    paradigms = check_suite("agreement")  # its bundled pairs
    assert [p.name for p in paradigms] == ["determiner_noun", "subject_verb_attractor", "subject_verb_simple"]
    assert sum(len(p.pairs) for p in paradigms) == 24
    # a folder of its files replaces the bundled pairs; a malformed line is named by file and line
    mine = tmp_path / "mine.pairs"
    mine.write_text("# phenomenon: agreement\nThe cat sleeps. | The cat sleep.\n")
    (only,) = load_suite("agreement", tmp_path)
    assert (only.name, only.phenomenon, only.pairs[0].bad) == ("mine", "agreement", "The cat sleep.")
    mine.write_text("# phenomenon: agreement\nThe cat sleeps. | The cat sleep.\nno separator here\n")
    with pytest.raises(DataError, match=r"mine\.pairs:3: expected 'acceptable sentence \| unacceptable sentence'"):
        load_suite("agreement", tmp_path)


def test_zoo_bench_and_compare_score_the_plugin_suite(rope_run: Path, tmp_path: Path) -> None:
    """``zoo bench --suite`` and ``zoo compare --suite`` take the plugin's suite as they take BLiMP."""
    import json

    result = CliRunner().invoke(cli, ["bench", str(rope_run), "--suite", "agreement", "--device", "cpu"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    entry = json.loads((rope_run / "bench.json").read_text())["suites"]["agreement"]
    assert entry["kind"] == "minimal-pairs" and sorted(entry["groups"]) == ["determiner_noun_agreement",
                                                                             "subject_verb_agreement"]
    study = tmp_path / "study"
    result = CliRunner().invoke(cli, ["compare", str(rope_run), "--suite", "agreement", "--out", str(study)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    report = (study / "report.md").read_text()
    assert "subject_verb_agreement" in report and "pll-word-l2r" in report


# --- scorer plugin -----------------------------------------------------------------------------------
def test_the_scorer_plugin_scores_a_causal_run_as_slor(plugins: Path, rope_run: Path, tmp_path: Path) -> None:
    """``zoo bench --scorer slor`` (the plugin's reading) on a ``clm`` run, on the plugin suite: SLOR is the
    causal-unigram log-probability less the unigram log-probability of the sentence's tokens."""
    import json

    from zoo.benchmarks.lm_scoring import get_reading, score_sentences, scorers_for
    from zoo.benchmarks.minimal_pairs import load_suite
    from zoo.benchmarks.source import open_source
    from zoo.benchmarks.zeroshot import open_scoring_model

    out = CliRunner().invoke(cli, ["list"], terminal_width=250).output
    assert "slor" in out and "zoo-plugin-scorer 0.1.0" in out
    run = tmp_path / "clm"
    args = ["train", "--objective", "clm", "--backbone", "gpt", "--size", "tiny", "--budget", "2steps",
            "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400", "--data", str(rope_run.parent / "corpus.txt"),
            "--out", str(run), "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
            "--set", "data.doc_boundary=blank-line", "--set", "train.eval_batches=1"]
    assert (result := CliRunner().invoke(cli, args)).exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["bench", str(run), "--suite", "agreement", "--scorer", "slor", "--device", "cpu"],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    entry = json.loads((run / "bench.json").read_text())["suites"]["agreement"]["models"][0]
    assert sorted(entry["scorers"]) == ["slor", "slor-mean"] and entry["scorer"] == "slor"
    sm = open_scoring_model(open_source(run))
    (scorer,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, causal="slor")
    (base,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, causal="causal-unigram")
    sentences = [p.good for p in load_suite("agreement")[0].pairs]
    args = (sm.backbone, sm.heads, open_source(run).tokenizer, sm.source.special, sentences)
    ours = score_sentences(scorer, *args, unigram=sm.unigram())
    lm = score_sentences(base, *args, unigram=sm.unigram())["causal-unigram"]
    ids = [open_source(run).tokenizer.encode(s, add_special_tokens=False).ids for s in sentences]
    np.testing.assert_allclose(ours["slor"], lm - np.asarray([sm.unigram()[i].sum() for i in ids]), rtol=1e-6)
    np.testing.assert_allclose(ours["slor-mean"], ours["slor"] / np.asarray([len(i) for i in ids]), rtol=1e-6)
    assert get_reading("slor").unigram
    from zoo.testing import check_scorer

    check_scorer("slor")  # the conformance kit, on a tiny random gpt
