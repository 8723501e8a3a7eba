"""``zoo bench`` end to end: exported Hugging Face directories and ``zoo train`` runs, on the real
GLUE / CLUE files under ../shared/data."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from zoo import registry
from zoo.benchmarks.data import load_task_data
from zoo.benchmarks.tasks import get_task
from zoo.cli import cli
from zoo.errors import ConfigError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _texts(shared: Path, n: int = 300) -> list[str]:
    out = []
    for task, sub in (("sst2", "glue"), ("cola", "glue"), ("mrpc", "glue"), ("tnews", "clue")):
        for ex in load_task_data(get_task(task), shared / sub).limited(n, 1).train.examples:
            out += [ex.text_a] + ([ex.text_b] if ex.text_b else [])
    return out


def _wordpiece(texts: list[str], size: int = 3000) -> Tokenizer:
    """Whole words (and CJK characters, which BERT normalisation splits) plus single characters."""
    norm, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    words = [w for w, _ in counts.most_common(size)]
    chars = sorted({c for w in words for c in w})
    vocab = list(dict.fromkeys([*SPECIALS, *words, *chars, *(f"##{c}" for c in chars)]))
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = norm, pre
    tok.add_special_tokens(SPECIALS)
    return tok


def _bpe(texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<|endoftext|>", "<|pad|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def export_hf(out: Path, name: str, tok: Tokenizer, vocab: int | None = None) -> Path:
    """What an exported checkpoint looks like: config.json, model.safetensors, tokenizer.json."""
    cls = registry.load("backbone", name)
    bb = cls(cls.Config(vocab_size=vocab or tok.get_vocab_size(), hidden_size=32, num_layers=2, num_heads=2,
                        intermediate_size=64, max_positions=128))
    out.mkdir(parents=True)
    config = bb.hf_config()
    if name == "gpt":
        config.bos_token_id = config.eos_token_id = None  # GPT-2's 50256 is not in this vocabulary
    config.to_json_file(str(out / "config.json"))
    save_file(bb.hf_state_dict(), str(out / "model.safetensors"))
    tok.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture(scope="module")
def hf_dirs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    texts = _texts(shared_data)
    root = tmp_path_factory.mktemp("hf")
    return {"bert": export_hf(root / "bert", "bert", _wordpiece(texts)),
            "gpt": export_hf(root / "gpt", "gpt", _bpe(texts))}


def _bench(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bench", *args])
    return result.exit_code, result.output


def _json(path: Path, suite: str = "glue") -> dict:
    return json.loads((path / "bench.json").read_text())["suites"][suite]


QUICK = ["--max-train-examples", "32", "--max-eval-examples", "32", "--epochs", "1", "--batch-size", "8",
         "--device", "cpu"]


def test_glue_on_bert_and_gpt_side_by_side(hf_dirs: dict[str, Path], shared_data: Path) -> None:
    bert, gpt = hf_dirs["bert"], hf_dirs["gpt"]
    code, out = _bench(str(bert), str(gpt), "--suite", "glue", "--tasks", "sst2,cola,mrpc",
                       "--data-dir", str(shared_data / "glue"), "--seeds", "2", *QUICK)
    assert code == 0, out
    assert re.search(r"task\s*\|\s*metric\s*\|\s*bert\s*\|\s*gpt", out)  # Markdown: not a terminal
    for row in ("SST-2", "matthews_corr", "MRPC", "average (3"):  # an 80-column terminal wraps long cells
        assert row in out
    assert re.search(r"gpt\s*\|\s*constant", out)  # the constant predictor beside the models
    # the results went into the exported directories, and the command says where
    assert (f"results written: {bert / 'bench.json'}, {bert / 'bench.md'}, {gpt / 'bench.json'}, {gpt / 'bench.md'} "
            "(and the result cache bench-cache/ beside them)") in out
    for d in (bert, gpt):
        saved = _json(d)
        model = saved["models"][0]
        assert saved["tasks"] == ["sst2", "cola", "mrpc"] and saved["seeds"] == [0, 1]
        assert set(model["tasks"]["mrpc"]["summary"]) == {"accuracy", "f1"}
        assert [s["seed"] for s in model["tasks"]["cola"]["seeds"]] == [0, 1]
        assert all(s["train_examples"] == 32 and s["eval_examples"] == {"dev": 32}
                   for t in model["tasks"].values() for s in t["seeds"])
        assert "| SST-2 | accuracy |" in (d / "bench.md").read_text()
    assert _json(gpt)["models"][0]["backbone"] == "gpt"

    # a rerun reads every result from the cache
    code, out = _bench(str(bert), "--tasks", "sst2,cola,mrpc", "--data-dir", str(shared_data / "glue"),
                       "--seeds", "2", *QUICK)
    assert code == 0, out
    seeds = [s for t in _json(bert)["models"][0]["tasks"].values() for s in t["seeds"]]
    assert len(seeds) == 6 and all(s["cached"] for s in seeds)


def test_one_model_that_fails_keeps_the_others_results(hf_dirs: dict[str, Path], shared_data: Path,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GLUE on two models, one of which cannot be fine-tuned: its column is marked [failed], the other's
    results are printed and saved, and the command exits 1 naming the failure."""
    from zoo.benchmarks import bench

    dirs = {}
    for name in ("bert", "gpt"):  # fresh copies: no results of the other tests
        (tmp_path / name).mkdir()
        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            shutil.copy(hf_dirs[name] / f, tmp_path / name / f)
        dirs[name] = tmp_path / name
    real = bench._bench_task

    def fail_gpt(src, *args, **kwargs):  # type: ignore[no-untyped-def]
        if src.name == "gpt":
            raise ConfigError("cannot fine-tune this one")
        return real(src, *args, **kwargs)

    monkeypatch.setattr(bench, "_bench_task", fail_gpt)
    code, out = _bench(str(dirs["bert"]), str(dirs["gpt"]), "--tasks", "sst2", "--data-dir",
                       str(shared_data / "glue"), *QUICK)
    flat = " ".join(out.split())
    assert code == 1, out
    assert re.search(r"\|\s*bert\s*\|\s*gpt \[failed\]\s*\|", out), out
    assert "1 model(s) could not be benchmarked" in flat and "gpt: cannot fine-tune this one" in flat
    assert re.search(r"\| SST-2 \| accuracy \| [0-9.]+ \| - \|", out), out  # bert scored, gpt's cell empty
    saved = _json(dirs["bert"])["models"]
    assert [m["name"] for m in saved] == ["bert"] and set(saved[0]["tasks"]) == {"sst2"}
    assert "| SST-2 | accuracy |" in (dirs["bert"] / "bench.md").read_text()
    assert not (dirs["gpt"] / "bench.json").exists() and not (dirs["gpt"] / "bench.md").exists()
    assert f"results written: {dirs['bert'] / 'bench.json'}, {dirs['bert'] / 'bench.md'} (and" in out


def test_clue_tnews(hf_dirs: dict[str, Path], shared_data: Path) -> None:
    code, out = _bench(str(hf_dirs["bert"]), "--suite", "clue", "--tasks", "tnews",
                       "--data-dir", str(shared_data / "clue"), "--from-scratch", *QUICK)
    assert code == 0, out
    assert "TNEWS" in out and "scratch" in out  # the baseline column (its title may wrap)
    saved = _json(hf_dirs["bert"], "clue")
    assert [m["from_scratch"] for m in saved["models"]] == [False, True]
    assert 0.0 <= saved["models"][0]["tasks"]["tnews"]["summary"]["accuracy"]["median"] <= 1.0


def test_tokenizer_mismatch_is_refused_before_fine_tuning(shared_data: Path, tmp_path: Path) -> None:
    tok = _wordpiece(_texts(shared_data, 50), size=200)
    n = tok.get_vocab_size()
    bad = export_hf(tmp_path / "bad", "bert", tok, vocab=n + 5)
    code, out = _bench(str(bad), "--tasks", "sst2", "--data-dir", str(shared_data / "glue"), *QUICK)
    assert code == 2
    flat = " ".join(out.split())
    assert f"tokenizer.json has {n} tokens" in flat and f"config.json (vocab_size) has a vocabulary of {n + 5}" in flat
    assert not (bad / "bench-cache").exists()


def test_clear_errors_for_bad_arguments(hf_dirs: dict[str, Path], tmp_path: Path) -> None:
    code, out = _bench(str(hf_dirs["bert"]), "--tasks", "rte", "--data-dir", str(tmp_path), *QUICK)
    assert code == 2 and "RTE: no folder" in " ".join(out.split())
    code, out = _bench(str(hf_dirs["bert"]), "--tasks", "sst-2")
    assert code == 2 and "unknown task 'sst-2'" in out
    code, out = _bench(str(tmp_path), "--tasks", "sst2", "--data-dir", str(tmp_path))
    assert code == 2 and "is not a zoo run directory" in " ".join(out.split())
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (damaged / name).write_bytes((hf_dirs["bert"] / name).read_bytes())
    (damaged / "model.safetensors").write_bytes((hf_dirs["bert"] / "model.safetensors").read_bytes()[:1000])
    code, out = _bench(str(damaged), "--tasks", "sst2", "--data-dir", str(tmp_path))
    assert code == 2 and "model.safetensors: cannot read the weights" in " ".join(out.split())


def _train_tiny_run(objective: str, backbone: str, shared_data: Path, tmp_path: Path, documents: int,
                    vocab_size: int, steps: int, layers: int) -> tuple[Path, list[str]]:
    """A tiny run trained by ``zoo train`` on ``documents`` documents of 100 SST-2 sentences; (run, sentences)."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sentences = [ex.text_a for ex in load_task_data(get_task("sst2"), shared_data / "glue")
                 .limited(100 * documents, 1).train.examples]
    for i in range(documents):  # small documents of real sentences
        (corpus / f"doc{i}.txt").write_text(" .\n".join(sentences[i * 100:(i + 1) * 100]) + "\n")
    run = tmp_path / "run"
    train = CliRunner().invoke(cli, [
        "train", "--objective", objective, "--backbone", backbone, "--size", "tiny", "--data", str(corpus),
        "--vocab-size", str(vocab_size), "--budget", f"{steps}steps", "--seq-len", "32", "--batch-size", "4",
        "--out", str(run), "--set", "model.hidden_size=32", "--set", "model.num_heads=2",
        "--set", f"model.num_layers={layers}"])
    assert train.exit_code == 0, train.output
    return run, sentences


@pytest.mark.slow
@pytest.mark.parametrize("backbone,objective", [("bert", "mlm"), ("gpt", "clm")])
def test_bench_a_run_trained_by_zoo_train(backbone: str, objective: str, shared_data: Path, tmp_path: Path) -> None:
    run, sentences = _train_tiny_run(objective, backbone, shared_data, tmp_path, documents=6, vocab_size=600,
                                     steps=3, layers=2)
    code, out = _bench(str(run), "--tasks", "sst2,mrpc", "--data-dir", str(shared_data / "glue"), *QUICK)
    assert code == 0, out
    saved = _json(run)["models"][0]
    assert saved["backbone"] == backbone and saved["objective"] == objective
    assert len(saved["checkpoint_id"]) == 64 and set(saved["tasks"]) == {"sst2", "mrpc"}

    code, out = _bench(str(run), "--suite", "clue", "--tasks", "tnews", "--data-dir", str(shared_data / "clue"),
                       *QUICK)
    assert code == 0, out
    assert set(json.loads((run / "bench.json").read_text())["suites"]) == {"glue", "clue"}
    from zoo.benchmarks import run_bench
    from zoo.runs import open_run

    again = run_bench([open_run(run)], tasks="sst2,mrpc", data_dir=shared_data / "glue", max_train_examples=32,
                      max_eval_examples=32, overrides=["epochs=1", "batch_size=8"], device="cpu")
    assert all(s.cached for t in again.models[0].tasks.values() for s in t.seeds)  # the same results, from the cache

    # a tokenizer that is not the one the checkpoint was trained with is refused, naming both
    (run / "tokenizer.json").write_text(_bpe(sentences[:50]).to_str())
    code, out = _bench(str(run), "--tasks", "sst2", "--data-dir", str(shared_data / "glue"), "--no-cache", *QUICK)
    flat = " ".join(out.split())
    assert code == 2 and "was trained with tokenizer" in flat and "tokenizer.json" in flat, out


def test_bench_fine_tunes_a_t5_run_text_to_text_or_through_its_encoder(shared_data: Path, tmp_path: Path) -> None:
    """GLUE on an encoder-decoder run: text-to-text by default (T5's method), a classification head on the
    mean of the encoder's states with ``--set method=head``; bench.json and bench.md say which."""
    run, _ = _train_tiny_run("span-lm", "t5", shared_data, tmp_path, documents=2, vocab_size=400, steps=2,
                             layers=1)
    code, out = _bench(str(run), "--tasks", "sst2", "--data-dir", str(shared_data / "glue"), *QUICK)
    assert code == 0, out
    saved = _json(run)["models"][0]
    assert saved["backbone"] == "t5" and saved["objective"] == "span-lm" and set(saved["tasks"]) == {"sst2"}
    assert saved["tasks"]["sst2"]["method"] == "text-to-text"
    assert saved["tasks"]["sst2"]["recipe"]["method"] == "text-to-text"
    code, out = _bench(str(run), "--tasks", "sst2", "--data-dir", str(shared_data / "glue"), *QUICK,
                       "--set", "method=head")
    assert code == 0, out
    saved = _json(run)["models"][0]
    assert saved["tasks"]["sst2"]["method"] == "head"
    assert [t["method"] for t in saved["other_recipes"]] == ["text-to-text"]
    md = (run / "bench.md").read_text()
    assert "method=head" in md and "method=text-to-text" in md
