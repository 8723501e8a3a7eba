"""Every malformed input meets a precise error (exit code 2, ``error:`` naming the file / line / byte
offset / key, no traceback) or an exact, reported skip count, through the commands users run:
``zoo train`` (corpus and configuration, via ``--dry-run`` where nothing has to be trained) and
``zoo bench`` (GLUE / CLUE files). The README of this folder lists every case and where it is tested;
the library-level behaviour of several cases is tested in tests/unit/test_data_corpus.py and
tests/unit/test_bench_data.py."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import TINY, assert_user_error, flat, invoke, train_args, train_in_process

# --- corpus -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prose() -> str:
    """A few real paragraphs: enough text for a valid tiny run around the bad parts."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip().replace("\n\n", "\n") for k in sorted(topics)[:12])


def dry_run(tmp_path: Path, data: Path, *extra: str) -> tuple[int, str]:
    """``zoo train --dry-run``: reads the corpus, trains the tokenizer, builds the plan; writes no run."""
    out = tmp_path / "never-written"
    code, text = invoke(["train", "--objective", "mlm", "--backbone", "bert", "--data", str(data),
                         "--out", str(out), "--dry-run", *TINY, *extra])
    assert not out.exists()
    return code, text


def skipped(text: str) -> dict[str, int]:
    """The skip counts the data pipeline reports in its summary line."""
    match = re.search(r"stores (?:cached|built); (\{[^}]*\})", flat(text))
    return json.loads(match.group(1).replace("'", '"')) if match else {}


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _empty(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "empty.txt", b"")
    return p, [f"no documents in {p}", "empty_files: 1", "files: 1"]


def _whitespace(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "blank.txt", " \n\t\r\n  \n")
    return p, [f"no documents in {p}", "empty_files: 1"]


def _invalid_utf8(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    head = prose[:500].encode()
    p = write(tmp / "latin1.txt", head + b" caf\xe9 au lait\n" + prose[500:].encode())
    offset, line = len(head) + len(" caf"), head.count(b"\n") + 1
    return p, [f"{p}: invalid UTF-8 (invalid continuation byte) at byte offset {offset} (line {line})",
               "on_decode_error"]


def _nul_byte(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    head = prose[:300].encode()
    p = write(tmp / "nul.txt", head + b"\x00" + prose[300:].encode())
    line = head.count(b"\n") + 1
    return p, [f"{p}: NUL byte", f"at byte offset {len(head)} (line {line})"]


def _utf16(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "utf16.txt", prose[:200].encode("utf-16-le"))  # no byte-order mark (with one it is read)
    return p, [f"{p}: NUL byte (binary data or a UTF-16 file?) at byte offset 1 (line 1)"]


def _no_matching_files(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    write(tmp / "corpus" / "notes.md", prose)
    write(tmp / "corpus" / "data.csv", "a,b\n")
    d = tmp / "corpus"
    return d, [f"no files matching *.txt, *.jsonl, *.json under {d}; it has 2 other file(s), e.g. data.csv, notes.md",
               "data.include"]


def _missing_path(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    return tmp / "nowhere.txt", [f"corpus path not found: {tmp / 'nowhere.txt'}"]


def _broken_symlink(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    write(tmp / "corpus" / "a.txt", prose)
    (tmp / "corpus" / "b.txt").symlink_to(tmp / "moved-away.txt")
    return tmp / "corpus", [f"cannot read {tmp / 'corpus' / 'b.txt'}: broken symbolic link to {tmp / 'moved-away.txt'}"]


def _fifo_in_directory(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    write(tmp / "corpus" / "a.txt", prose)
    os.mkfifo(tmp / "corpus" / "pipe.txt")
    return tmp / "corpus", [f"cannot read {tmp / 'corpus' / 'pipe.txt'}: a FIFO (named pipe), not a regular file"]


def _fifo_as_source(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    os.mkfifo(tmp / "pipe.txt")
    return tmp / "pipe.txt", [f"cannot read {tmp / 'pipe.txt'}: a FIFO (named pipe), not a regular file"]


def _jsonl_missing_field(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "docs.jsonl", json.dumps({"text": prose}) + "\n" + json.dumps({"body": "x", "id": 2}) + "\n")
    return p, [f"{p}:2: no field 'text' (fields: body, id)", "--text-field"]


def _jsonl_non_string(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "docs.jsonl", json.dumps({"text": prose}) + "\n\n" + json.dumps({"text": ["a", "list"]}) + "\n")
    return p, [f"{p}:3: field 'text' is list ([\"a\", \"list\"]), expected a string"]


def _jsonl_invalid(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "docs.jsonl", json.dumps({"text": prose}) + '\n{"text": "unterminated\n')
    return p, [f"{p}:2: invalid JSON at column 10", "each line must be one JSON object"]


def _jsonl_wrong_field_everywhere(tmp: Path, prose: str) -> tuple[Path, list[str]]:
    p = write(tmp / "docs.jsonl", "".join(json.dumps({"content": para}) + "\n" for para in prose.split("\n\n")))
    return p, [f"{p}:1: no field 'text' (fields: content)"]


CORPUS_ERRORS: dict[str, Callable[[Path, str], tuple[Path, list[str]]]] = {
    "empty-file": _empty, "whitespace-only": _whitespace, "invalid-utf8": _invalid_utf8, "nul-byte": _nul_byte,
    "utf16-file": _utf16, "no-matching-files": _no_matching_files, "missing-path": _missing_path,
    "broken-symlink": _broken_symlink, "fifo-in-directory": _fifo_in_directory, "fifo-as-source": _fifo_as_source,
    "jsonl-missing-field": _jsonl_missing_field, "jsonl-non-string": _jsonl_non_string,
    "jsonl-invalid-json": _jsonl_invalid, "jsonl-wrong-text-field": _jsonl_wrong_field_everywhere,
}


@pytest.fixture
def deadline() -> Iterator[None]:
    """Reading a FIFO would block forever: turn a hang into a failure."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("the command hung (reading a FIFO?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", CORPUS_ERRORS)
def test_corpus_errors(tmp_path: Path, prose: str, deadline: None, case: str) -> None:
    data, needles = CORPUS_ERRORS[case](tmp_path, prose)
    # invalid UTF-8 alone is decoded as U+FFFD by default (test_invalid_utf8_is_replaced_and_summarised_once)
    strict = ("--on-decode-error", "error") if case == "invalid-utf8" else ()
    code, out = dry_run(tmp_path, data, *strict)
    assert_user_error(code, out, *needles)


def test_unreadable_file(tmp_path: Path, prose: str) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which reads a chmod 000 file; unreadable entries are covered by the "
                    "broken-symlink and FIFO cases here and by tests/unit/test_data_corpus.py::test_unreadable_file")
    p = write(tmp_path / "corpus" / "secret.txt", prose)
    write(tmp_path / "corpus" / "other.txt", prose)
    p.chmod(0)
    try:
        code, out = dry_run(tmp_path, tmp_path / "corpus")
    finally:
        p.chmod(0o644)
    assert_user_error(code, out, f"cannot read {p}: permission denied")


def test_decode_policies_report_exact_counts(tmp_path: Path, prose: str) -> None:
    """``skip`` drops each line holding bad bytes and ``replace`` repairs them; both are counted."""
    paras = prose.split("\n\n")
    body = "\n\n".join(paras[:6]).encode() + b"\n\nbad \xff line\nline with \x00 NUL\n\n" + \
        "\n\n".join(paras[6:]).encode() + b"\n\nand \xc3\x28 another\n"
    p = write(tmp_path / "mixed.txt", body)
    code, out = dry_run(tmp_path, p)  # the default refuses a NUL byte (binary data, UTF-16 without a BOM)
    assert_user_error(code, out, f"{p}: NUL byte")
    code, out = dry_run(tmp_path, p, "--on-decode-error", "error")
    assert_user_error(code, out, f"{p}: invalid UTF-8")
    code, out = dry_run(tmp_path, p, "--set", "data.on_decode_error=skip")
    assert code == 0, out
    assert skipped(out) == {"skipped_lines_decode_error": 3}
    code, out = dry_run(tmp_path, p, "--set", "data.on_decode_error=replace")
    assert code == 0, out
    assert skipped(out) == {"replaced_invalid_utf8": 2, "removed_nul_bytes": 1}


def test_bad_json_records_are_skipped_and_counted_in_the_run(tmp_path: Path, prose: str) -> None:
    """With ``skip`` every kind of bad record is dropped, counted, and the counts are kept in run.json."""
    good = [json.dumps({"text": para}) for para in prose.split("\n\n")]
    bad = ['{"text": "unterminated', json.dumps({"body": "x"}), json.dumps({"text": 3}), json.dumps(["x"]),
           json.dumps({"text": "   "})]
    p = write(tmp_path / "docs.jsonl", "\n".join(good[:5] + bad[:3] + good[5:] + bad[3:5]) + "\n")
    with open(p, "ab") as f:
        f.write(b'{"text": "caf\xe9"}\n')
    run = tmp_path / "run"
    code, out = invoke(train_args(run, p, "mlm", "bert", 1, 0, "--set", "data.on_decode_error=skip"))
    assert code == 0, out
    counts = {"skipped_invalid_json": 1, "skipped_missing_field": 1, "skipped_non_string": 1,
              "skipped_not_an_object": 1, "empty_documents": 1, "skipped_lines_decode_error": 1}
    stats = json.loads((run / "run.json").read_text())["data"]
    assert {k: stats.get(k) for k in counts} == counts
    assert stats["documents"] == len(good)
    reported = skipped(out)
    assert {k: reported.get(k) for k in counts if k.startswith(("skipped", "empty"))} == counts


def test_directory_reports_what_it_left_out(tmp_path: Path, prose: str) -> None:
    paras = prose.split("\n\n")
    write(tmp_path / "c" / "a.txt", "\n\n".join(paras[:6]))
    write(tmp_path / "c" / "sub" / "b.txt", "\n\n".join(paras[6:]))
    write(tmp_path / "c" / "empty.txt", "\n \n")
    write(tmp_path / "c" / "README.md", "not corpus")
    write(tmp_path / "c" / ".hidden" / "x.txt", "hidden")
    run = tmp_path / "run"
    code, out = invoke(train_args(run, tmp_path / "c", "mlm", "bert", 1, 0))
    assert code == 0, out
    stats = json.loads((run / "run.json").read_text())["data"]
    assert (stats["files"], stats["empty_files"], stats["files_not_matching_include"],
            stats["hidden_files_ignored"]) == (3, 1, 1, 1)
    assert skipped(out) == {"empty_files": 1}


# --- configuration --------------------------------------------------------------------------------------------

def config_file(tmp: Path, text: str) -> list[str]:
    path = write(tmp / "run.toml", text)
    return ["--config", str(path)]


CONFIG_ERRORS: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "toml-unknown-key": (lambda t: config_file(t, "[train]\nbugdet = '3steps'\n"),
                         ["unknown config key 'train.bugdet' in [train]; allowed keys: budget"]),
    "toml-unknown-section": (lambda t: config_file(t, "[trainer]\nseed = 1\n"),
                             ["unknown config key 'trainer' at the top level"]),
    "toml-wrong-type": (lambda t: config_file(t, "[train]\nseed = 'zero'\n"),
                        ["train.seed must be an integer, got 'zero'"]),
    "toml-syntax": (lambda t: config_file(t, "[train]\nseed = = 3\n"),
                    ["run.toml: invalid TOML", "(at line 2, column 8)"]),
    "missing-config-file": (lambda t: ["--config", str(t / "absent.toml")],
                            ["cannot read config file", "absent.toml: No such file"]),
    "negative-seq-len": (lambda t: ["--seq-len", "-1"], ["seq_len must be >= 1, got -1"]),
    "negative-lr": (lambda t: ["--set", "optim.lr=-1e-3"], ["optim.lr must be > 0, got -0.001"]),
    # Values that cannot mean anything are refused when the configuration is resolved, naming the option
    # and its range; before, nan traced back after data preparation, or turned gradient clipping off.
    "nan-lr": (lambda t: ["--set", "optim.lr=nan"], ["optim.lr must be a finite number > 0, got nan"]),
    "nan-beta": (lambda t: ["--set", "optim.betas=[0.9, nan]"],
                 ["optim.betas[1] must be a finite number in [0, 1), got nan"]),
    "beta-one": (lambda t: ["--set", "optim.betas=[1.0, 0.98]"], ["optim.betas[0] must be in [0, 1), got 1.0"]),
    "inf-eps": (lambda t: ["--set", "optim.eps=inf"], ["optim.eps must be a finite number > 0, got inf"]),
    "nan-grad-clip": (lambda t: ["--set", "optim.grad_clip=nan"],
                      ["optim.grad_clip must be a finite number >= 0, got nan"]),
    "nan-weight-decay": (lambda t: ["--set", "optim.weight_decay=nan"],
                         ["optim.weight_decay must be a finite number >= 0, got nan"]),
    "nan-model-init": (lambda t: ["--set", "model.initializer_range=nan"],
                       ["model.initializer_range must be a finite number, got nan"]),
    "nan-objective-rate": (lambda t: ["--set", "objectives.mlm.rate=nan"],
                           ["objectives.mlm.rate must be a finite number, got nan"]),
    "huge-integer-lr": (lambda t: ["--set", f"optim.lr={10 ** 400}"], ["optim.lr must be a finite number > 0"]),
    "negative-seed": (lambda t: ["--seed", "-1"], ["train.seed must be in [0, 9223372036854775807], got -1"]),
    "toml-nan-min-lr": (lambda t: config_file(t, "[optim]\nmin_lr_ratio = nan\n"),
                        ["optim.min_lr_ratio must be a finite number in [0, 1], got nan"]),
    "negative-budget-tokens": (lambda t: ["--budget", "-1e6tokens"], ["budget '-1e6tokens' not understood"]),
    "fractional-steps": (lambda t: ["--budget", "1.5steps"], ["a step budget must be a whole number"]),
    "budget-without-unit": (lambda t: ["--budget", "100"], ["budget '100' not understood; expected e.g. 10m"]),
    "set-without-value": (lambda t: ["--set", "train.seed"], ["--set 'train.seed': expected key.path=value"]),
    "set-into-a-value": (lambda t: ["--set", "train.log_every.x=1"], ["'log_every' is a value, not a table"]),
    "tuple-length": (lambda t: ["--set", "optim.betas=[0.9]"], ["optim.betas must be a list of 2 values, got [0.9]"]),
    "unknown-objective-key": (lambda t: ["--set", "objectives.mlm.probability=0.2"],
                              ["unknown config key 'objectives.mlm.probability' in [objectives.mlm]"]),
    "objective-not-in-run": (lambda t: ["--set", "objectives.nsp.seed=1"],
                             ["[objectives.nsp] configures an objective that is not part of 'mlm'"]),
    "bad-composition-weight": (lambda t: ["--objective", "mlm:abc+nsp"], ["weight 'abc' of 'mlm' is not a number"]),
    "repeated-objective": (lambda t: ["--objective", "mlm+mlm"], ["objective 'mlm' appears twice in 'mlm+mlm'"]),
    "mixture-empty-part": (lambda t: ["--objective", "mlm+sop|"], ["objective spec 'mlm+sop|' has an empty part "
                                                                   "around '|'"]),
    "mixture-bad-share": (lambda t: ["--objective", "mlm:0|clm"],
                          ["share of 'mlm' must be a positive finite number, got 0"]),
    "mixture-repeated-part": (lambda t: ["--objective", "mlm|mlm+sop"], ["objective 'mlm' appears twice in 'mlm|mlm+sop'"]),
    "mixture-incompatible-part": (lambda t: ["--objective", "clm|mlm+nsp", "--backbone", "gpt"],
                                  ["cannot train backbone 'gpt': mixture part 'mlm+nsp': nsp needs"]),
    "vocab-too-small": (lambda t: ["--vocab-size", "10"], ["tokenizer.vocab_size must be >= 32, got 10"]),
    "validation-fraction": (lambda t: ["--set", "data.validation_fraction=1"],
                            ["data.validation_fraction must be in [0, 1), got 1.0"]),
    "cuda-missing": (lambda t: ["--set", "train.device=cuda:3"], ["train.device = 'cuda:3' but CUDA is not available"]),
}


@pytest.mark.parametrize("case", CONFIG_ERRORS)
def test_config_errors(tmp_path: Path, corpus: Path, case: str) -> None:
    make, needles = CONFIG_ERRORS[case]
    extra = make(tmp_path)
    args = ["train", "--objective", "mlm", "--backbone", "bert", "--data", str(corpus), "--out", str(tmp_path / "r"),
            "--dry-run", *TINY, *extra]
    if "--objective" in extra:
        del args[1:3]
    if case == "cuda-missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    code, out = invoke(args)
    assert_user_error(code, out, *needles)
    assert not (tmp_path / "r").exists()


# --- GLUE / CLUE files through zoo bench ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Path:
    """A tiny trained run to benchmark (2 steps: the weights only have to exist)."""
    return train_in_process(tmp_path_factory.mktemp("bench-model") / "run", corpus, cache_dir, "mlm", "bert", 2, 0)


SST2_ROWS = [f"{w} film\t{i % 2}" for i, w in enumerate(["a fine", "a dull", "a lovely", "a bleak", "a warm",
                                                         "a cold", "a bright", "a grim"])]
COLA_ROWS = [f"gj04\t{i % 2}\t{'' if i % 2 else '*'}\tThe cat number {i} sat." for i in range(8)]


def glue_dir(root: Path, sst2_train: list[str] | None = None, sst2_dev: list[str] | None = None,
             cola_train: list[str] | None = None) -> Path:
    header = ["sentence\tlabel"]
    write(root / "SST-2" / "train.tsv", "\n".join(header + SST2_ROWS if sst2_train is None else sst2_train) + "\n")
    write(root / "SST-2" / "dev.tsv", "\n".join(header + SST2_ROWS if sst2_dev is None else sst2_dev) + "\n")
    write(root / "CoLA" / "train.tsv", "\n".join(COLA_ROWS if cola_train is None else cola_train) + "\n")
    write(root / "CoLA" / "dev.tsv", "\n".join(COLA_ROWS) + "\n")
    return root


def bench(model: Path, data_dir: Path, tasks: str = "sst2") -> tuple[int, str]:
    return invoke(["bench", str(model), "--tasks", tasks, "--data-dir", str(data_dir), "--max-train-examples", "16",
                   "--max-eval-examples", "8", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-cache"])


def test_malformed_rows_are_skipped_with_exact_counts(model: Path, tmp_path: Path) -> None:
    """One bench run over files with every kind of bad row: each is reported as file:line, counted,
    and the examples actually used are exactly the good rows."""
    sst2 = ["sentence\tlabel", *SST2_ROWS[:3],
            'he said "yes\t1',  # a stray quote: a normal row (quoting is off), nothing swallowed
            "an extra\ttab\t1",  # line 6
            "no label column",  # line 7
            "wonderful\tpositive",  # line 8: unknown label
            "unsure\t-",  # line 9: "-" is not a label of SST-2
            *SST2_ROWS[3:]]
    cola = ["sentence_source\tlabel\tlabel_notes\tsentence", *COLA_ROWS]  # a header CoLA does not have
    root = glue_dir(tmp_path / "glue", sst2_train=sst2, cola_train=cola)
    code, out = bench(model, root, "sst2,cola")
    assert code == 0, out
    text = flat(out)
    sst2_train = root / "SST-2" / "train.tsv"
    assert f"sst2 train: skipped 4 malformed row(s) of {sst2_train}" in text
    for line, reason in ((6, "3 tab-separated fields, expected 2"), (7, "1 tab-separated fields, expected 2"),
                         (8, "unknown label 'positive'; expected one of 0, 1"), (9, "unknown label '-'")):
        assert f"{sst2_train}:{line}: {reason}" in text
    cola_train = root / "CoLA" / "train.tsv"
    assert f"cola train: skipped 1 malformed row(s) of {cola_train}: {cola_train}:1: unknown label 'label'" in text
    tasks = json.loads((model / "bench.json").read_text())["suites"]["glue"]["models"][0]["tasks"]
    assert tasks["sst2"]["seeds"][0]["train_examples"] == 9  # 8 good rows and the one with a quote
    assert tasks["cola"]["seeds"][0]["train_examples"] == 8


def _sst2_dev(rows: list[str]) -> Callable[[Path], tuple[Path, list[str]]]:
    def make(root: Path) -> tuple[Path, list[str]]:
        glue_dir(root, sst2_dev=rows)
        return root, []

    return make


def _header_missing(root: Path) -> tuple[Path, list[str]]:
    glue_dir(root, sst2_train=SST2_ROWS)
    return root, [f"{root / 'SST-2' / 'train.tsv'}:1: expected a header line naming the columns, but line 1 is a "
                  "data row (label '0')"]


def _missing_file(root: Path) -> tuple[Path, list[str]]:
    glue_dir(root)
    (root / "SST-2" / "dev.tsv").unlink()
    return root, [f"SST-2: missing {root / 'SST-2' / 'dev.tsv'}"]


def _missing_folder(root: Path) -> tuple[Path, list[str]]:
    write(root / "CoLA" / "train.tsv", "x")
    return root, [f"SST-2: no folder {root / 'SST-2'}"]


def _not_utf8(root: Path) -> tuple[Path, list[str]]:
    glue_dir(root)
    write(root / "SST-2" / "dev.tsv", b"sentence\tlabel\ncaf\xe9\t1\n")
    return root, [f"{root / 'SST-2' / 'dev.tsv'}: not UTF-8 text (byte offset 18"]


GLUE_ERRORS: dict[str, tuple[Callable[[Path], tuple[Path, list[str]]], list[str]]] = {
    "empty-split": (_sst2_dev(["sentence\tlabel"]), ["SST-2: no usable rows in", "dev.tsv (0 malformed, 0 unlabelled)"]),
    "empty-file": (_sst2_dev([""]), ["SST-2: no usable rows in", "dev.tsv (0 malformed, 0 unlabelled)"]),
    "only-bad-rows": (_sst2_dev(["sentence\tlabel", "good\tpositive", "bad\tnegative"]),
                      ["dev.tsv (2 malformed, 0 unlabelled); first problems:", "dev.tsv:2: unknown label 'positive'"]),
    "header-missing": (_header_missing, []),
    "missing-file": (_missing_file, []),
    "missing-folder": (_missing_folder, []),
    "not-utf8": (_not_utf8, []),
}


@pytest.mark.parametrize("case", GLUE_ERRORS)
def test_glue_file_errors(model: Path, tmp_path: Path, case: str) -> None:
    make, needles = GLUE_ERRORS[case]
    root, more = make(tmp_path / "glue")
    code, out = bench(model, root)
    assert_user_error(code, out, *needles, *more)


def test_clue_json_errors(model: Path, tmp_path: Path) -> None:
    root = tmp_path / "clue"
    good = [{"sentence1": "花呗怎么还", "sentence2": "花呗如何还款", "label": "1"}] * 4
    write(root / "afqmc_public" / "train.json", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in good))
    dev = root / "afqmc_public" / "dev.json"
    write(dev, '{"sentence1": "a", "sentence2": "b", "label": "1"\n["a list"]\n'
               '{"sentence1": "a", "label": "0"}\n{"sentence1": "a", "sentence2": "b", "label": 7}\n')
    code, out = bench(model, root, "afqmc")
    assert_user_error(code, out, f"AFQMC: no usable rows in {dev} (4 malformed, 0 unlabelled)",
                      f"{dev}:1: invalid JSON", f"{dev}:2: expected a JSON object, got list",
                      f"{dev}:3: missing key 'sentence2'", f"{dev}:4: unknown label '7'")


def test_invalid_utf8_is_replaced_and_summarised_once(tmp_path: Path, prose: str) -> None:
    """Stray invalid bytes in several files: the default decodes them as U+FFFD and says so in one warning
    per corpus (not one per file, nor again on the next load in the same process), naming the option."""
    paras = prose.split("\n\n")
    for i in range(3):
        write(tmp_path / "corpus" / f"f{i}.txt", "\n\n".join(paras[i::3]).encode() + b"\n\ncaf\xe9 \xff\n")
    code, out = dry_run(tmp_path, tmp_path / "corpus")
    assert code == 0, out
    assert skipped(out) == {"replaced_invalid_utf8": 6}
    assert flat(out).count("invalid UTF-8 sequence(s) decoded as U+FFFD in 3 file(s)") == 1
    assert "--on-decode-error error refuses" in flat(out)
    code, out = dry_run(tmp_path, tmp_path / "corpus")
    assert code == 0 and "decoded as U+FFFD" not in flat(out)
