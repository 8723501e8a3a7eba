"""Read a task's examples: the official distribution layouts (``--data-dir``) or the Hugging Face hub.

TSV files are split on tabs with quoting off (GLUE fields contain unbalanced ``"``), decoded as
UTF-8 with an optional BOM (MRPC has one). Rows with the wrong number of fields, an unknown label,
bad JSON or missing keys are skipped and reported as ``file:line`` (a warning with the first few,
and counts in the returned ``Split``); rows whose label marks them unlabelled (``-`` in CMNLI and
OCNLI) are dropped and counted. A split without a single usable row is an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.benchmarks.tasks import Columns, Key, TaskSpec
from zoo.errors import DataError

log = logging.getLogger(__name__)

SHOW_ISSUES = 5  # malformed rows listed in the warning; the rest are counted


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: str | None = None
    label: int | float | None = None  # class id (position in the label list), a float, or None


@dataclass
class Split:
    """The usable examples of one split, where they came from, and what was skipped."""

    name: str
    examples: list[Example]
    source: str  # file path or hub dataset/config:split
    malformed: int = 0  # rows skipped as malformed (reported as file:line)
    dropped: int = 0  # rows without a usable label (e.g. "-" in NLI sets), dropped on purpose
    issues: list[str] = field(default_factory=list)  # the first few "file:line: reason"

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class TaskData:
    """A task's training split, the splits it is scored on, and (when read) its unlabelled test split."""

    spec: TaskSpec
    labels: tuple[str, ...] | None  # the label list in use (from labels.json when present)
    train: Split
    evals: dict[str, Split]
    test: Split | None = None

    def fingerprint(self) -> str:
        """sha256 of the label list and every training and evaluation example, in order."""
        h = hashlib.sha256()
        h.update(json.dumps([self.spec.name, self.labels]).encode())
        for split in (self.train, *self.evals.values()):
            h.update(f"\n#{split.name}\n".encode())
            for ex in split.examples:
                h.update(json.dumps([ex.text_a, ex.text_b, ex.label], ensure_ascii=False).encode())
                h.update(b"\n")
        return h.hexdigest()

    def limited(self, max_train: int | None = None, max_eval: int | None = None) -> TaskData:
        """A copy with at most ``max_train`` / ``max_eval`` examples per split.

        The subset is a fixed random sample (seeded by the task name, not the fine-tuning seed), in
        file order, so every model and seed sees the same examples and label mix.
        """
        def cut(split: Split, n: int | None) -> Split:
            if n is None or n >= len(split.examples):
                return split
            if n <= 0:
                raise DataError(f"{self.spec.name}: the example limit must be positive, got {n}")
            seed = int.from_bytes(hashlib.sha256(f"{self.spec.name}/{split.name}".encode()).digest()[:8], "little")
            keep = np.sort(np.random.default_rng(seed).permutation(len(split.examples))[:n])
            return replace(split, examples=[split.examples[i] for i in keep])

        return replace(self, train=cut(self.train, max_train),
                       evals={k: cut(v, max_eval) for k, v in self.evals.items()})

    def summary(self) -> str:
        parts = [f"{s.name} {len(s)}" for s in (self.train, *self.evals.values())]
        return f"{self.spec.name}: " + ", ".join(parts) + " examples"


# --- entry point ------------------------------------------------------------------------------------

def load_task_data(spec: TaskSpec, data_dir: str | Path | None = None, include_test: bool = False) -> TaskData:
    """Read ``spec``'s train and evaluation splits (and the test split if asked) from the official
    layout under ``data_dir``, or from the Hugging Face hub when ``data_dir`` is None."""
    if data_dir is None:
        return _load_hub(spec, include_test)
    folder = task_folder(spec, data_dir)
    labels = _label_list(spec, folder)
    splits = ["train", *spec.eval_splits] + (["test"] if include_test and "test" in spec.files else [])
    read: dict[str, Split] = {}
    for name in splits:
        path = folder / spec.files[name]
        if not path.is_file():
            if name == "test":
                log.info("%s: no test file %s (not needed for scoring)", spec.name, path)
                continue
            raise DataError(f"{spec.title}: missing {path} (the official layout has "
                            f"{', '.join(spec.files.values())} in {folder})")
        read[name] = _read_file(spec, labels, name, path)
    data = TaskData(spec, labels, read["train"], {s: read[s] for s in spec.eval_splits}, read.get("test"))
    _check_usable(data)
    return data


def task_folder(spec: TaskSpec, data_dir: str | Path) -> Path:
    """``data_dir/<official folder>`` (aliases and case-insensitive names accepted), or
    ``data_dir`` itself when it is that folder."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: not a directory")
    names = [spec.folder, *spec.folder_aliases, spec.folder.removesuffix("_public"), spec.name]
    for name in names:
        if (root / name).is_dir():
            if name != spec.folder:
                log.info("%s: reading %s (the official folder name is %s)", spec.name, root / name, spec.folder)
            return root / name
    lowered = {n.lower() for n in names}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in lowered:
            return child
    if root.name.lower() in lowered and (root / spec.files["train"]).is_file():
        return root
    raise DataError(f"{spec.title}: no folder {root / spec.folder} (the official {spec.suite.upper()} layout: "
                    f"{spec.folder}/{{{','.join(spec.files.values())}}})")


# --- official files ------------------------------------------------------------------------------------

def _label_list(spec: TaskSpec, folder: Path) -> tuple[str, ...] | None:
    if spec.labels is None or not spec.labels_file:
        return spec.labels
    path = folder / spec.labels_file
    if not path.is_file():
        return spec.labels
    labels: list[str] = []
    for lineno, line in enumerate(_decode(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            labels.append(str(row["label"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{lineno}: expected a JSON object with a 'label' key ({exc})") from exc
    if not labels or len(set(labels)) != len(labels):
        raise DataError(f"{path}: expected distinct labels, one JSON object per line; got {labels}")
    if tuple(labels) != spec.labels:
        log.info("%s: label set from %s (%d labels)", spec.name, path, len(labels))
    return tuple(labels)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte offset {exc.start}: {exc.reason})") from exc


class _Reader:
    """Turns raw fields into ``Example``s, collecting what it has to skip."""

    def __init__(self, spec: TaskSpec, labels: tuple[str, ...] | None, split: str, source: str) -> None:
        self.spec, self.split, self.source = spec, split, source
        self.index = {lab: i for i, lab in enumerate(labels)} if labels is not None else None
        self.labels = labels
        self.examples: list[Example] = []
        self.malformed = self.dropped = 0
        self.issues: list[str] = []

    def bad(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.issues) < SHOW_ISSUES:
            self.issues.append(f"{where}: {reason}")

    def label(self, raw: Any) -> int | float | None:
        """Parsed label; None when the row is marked unlabelled. ValueError for bad labels."""
        if isinstance(raw, str):
            raw = raw.strip()
        if isinstance(raw, str) and raw in self.spec.drop_labels:
            return None
        if self.index is None:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(f"label {raw!r} is not a finite number")
            return value
        key = str(raw)
        if key not in self.index:
            shown = ", ".join(self.labels[:20]) + (" ..." if len(self.labels) > 20 else "")  # type: ignore[index]
            raise ValueError(f"unknown label {key!r}; expected one of {shown}")
        return self.index[key]

    def add(self, where: str, text_a: Any, text_b: Any, label: Any, labelled: bool) -> None:
        try:
            a = _text(text_a, "text")
            b = None if text_b is _ABSENT else _text(text_b, "second text")
            y = self.label(label) if labelled else None
        except (ValueError, TypeError) as exc:
            self.bad(where, str(exc))
            return
        if labelled and y is None:
            self.dropped += 1
            return
        self.examples.append(Example(a, b, y))

    def finish(self) -> Split:
        if self.malformed:
            more = f" (and {self.malformed - len(self.issues)} more)" if self.malformed > len(self.issues) else ""
            log.warning("%s %s: skipped %d malformed row(s) of %s: %s%s", self.spec.name, self.split,
                        self.malformed, self.source, "; ".join(self.issues), more)
        if self.dropped:
            log.info("%s %s: dropped %d row(s) without a gold label (%s) in %s", self.spec.name, self.split,
                     self.dropped, "/".join(self.spec.drop_labels) or "none", self.source)
        return Split(self.split, self.examples, self.source, self.malformed, self.dropped, self.issues)


_ABSENT = object()


def _text(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)  # CSL keywords
    raise TypeError(f"{what} must be a string, got {type(value).__name__}")


def _read_file(spec: TaskSpec, labels: tuple[str, ...] | None, split: str, path: Path) -> Split:
    cols = spec.split_columns(split)
    reader = _Reader(spec, labels, split, str(path))
    lines = _decode(path).split("\n")
    if spec.format == "tsv":
        _read_tsv(reader, cols, lines, path)
    else:
        _read_jsonl(reader, cols, lines, path)
    return reader.finish()


def _read_tsv(reader: _Reader, cols: Columns, lines: list[str], path: Path) -> None:
    expected, start = cols.num_fields, 0
    keys = [k for k in (cols.text_a, cols.text_b, cols.label) if k is not None]
    if any(not isinstance(k, int) for k in keys):
        raise DataError(f"task {reader.spec.name}: TSV columns must be indices, got {keys}")
    if cols.header:
        header = lines[0].rstrip("\r").split("\t")
        expected, start = len(header), 1
        _check_header(reader, cols, header, path)
    for lineno, line in enumerate(lines[start:], start + 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"{path}:{lineno}"
        if expected is not None and len(fields) != expected:
            reader.bad(where, f"{len(fields)} tab-separated fields, expected {expected}")
            continue
        try:
            a = fields[cols.text_a]  # type: ignore[index]
            b = fields[cols.text_b] if cols.text_b is not None else _ABSENT  # type: ignore[index]
            y = fields[cols.label] if cols.label is not None else None  # type: ignore[index]
        except IndexError:
            reader.bad(where, f"{len(fields)} tab-separated fields, too few for columns {keys}")
            continue
        reader.add(where, a, b, y, cols.label is not None)


def _check_header(reader: _Reader, cols: Columns, header: list[str], path: Path) -> None:
    """A first line whose label column holds a valid label is a data row: the header is missing
    (reading it as one would silently drop that row)."""
    if cols.label is None or len(header) < 2:
        return
    try:
        value = header[cols.label]  # type: ignore[index]
        looks_like_data = reader.label(value) is not None
    except (IndexError, ValueError, TypeError):
        return
    if looks_like_data:
        raise DataError(f"{path}:1: expected a header line naming the columns, but line 1 is a data row "
                        f"(label {value.strip()!r}); the official {reader.spec.title} files start with a header: "
                        "restore it")


def _read_jsonl(reader: _Reader, cols: Columns, lines: list[str], path: Path) -> None:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            reader.bad(where, f"invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(row, dict):
            reader.bad(where, f"expected a JSON object, got {type(row).__name__}")
            continue
        _add_row(reader, cols, row, where)


def _add_row(reader: _Reader, cols: Columns, row: dict[str, Any], where: str) -> None:
    if reader.spec.transform is not None:
        try:
            row = reader.spec.transform(row)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            reader.bad(where, f"{type(exc).__name__}: {exc}")
            return
    try:
        a = _get(row, cols.text_a)
        b = _get(row, cols.text_b) if cols.text_b is not None else _ABSENT
        y = _get(row, cols.label) if cols.label is not None else None
    except KeyError as exc:
        reader.bad(where, f"missing key {exc.args[0]!r}")
        return
    reader.add(where, a, b, y, cols.label is not None)


def _get(row: dict[str, Any], key: Key) -> Any:
    if key not in row:
        raise KeyError(key)
    return row[key]  # type: ignore[index]


def _check_usable(data: TaskData) -> None:
    for split in (data.train, *data.evals.values()):
        if not split.examples:
            why = f"; first problems: {'; '.join(split.issues)}" if split.issues else ""
            raise DataError(f"{data.spec.title}: no usable rows in {split.source} ({split.malformed} malformed, "
                            f"{split.dropped} unlabelled){why}")
    log.info("%s", data.summary())


# --- Hugging Face hub ------------------------------------------------------------------------------

def _load_hub(spec: TaskSpec, include_test: bool) -> TaskData:
    if spec.hub is None:
        raise DataError(f"{spec.title}: no hub copy is known for this task; pass --data-dir")
    hub = spec.hub
    import datasets

    ref = f"{hub.dataset} ({hub.config})"
    try:
        ds = datasets.load_dataset(hub.dataset, hub.config)
    except Exception as exc:  # the hub client raises many types: connection, offline mode, not found
        raise DataError(f"{spec.title}: cannot load {ref} from the Hugging Face hub: cannot reach the hub or "
                        f"not in the local cache ({type(exc).__name__}: {exc}); download the official files "
                        f"and use --data-dir") from exc
    splits = ["train", *spec.eval_splits] + (["test"] if include_test and "test" in hub.splits else [])
    read: dict[str, Split] = {}
    for name in splits:
        hub_split = hub.splits.get(name)
        if hub_split is None or hub_split not in ds:
            raise DataError(f"{spec.title}: {ref} has no split {hub_split or name!r}; it has {', '.join(ds)}")
        read[name] = _hub_split(spec, ds[hub_split], name, f"{hub.dataset}/{hub.config}:{hub_split}")
    data = TaskData(spec, spec.labels, read["train"], {s: read[s] for s in spec.eval_splits}, read.get("test"))
    _check_usable(data)
    return data


def _hub_split(spec: TaskSpec, ds: Any, split: str, source: str) -> Split:
    cols = spec.hub.columns  # type: ignore[union-attr]
    labelled = split != "test"
    reader = _Reader(spec, spec.labels, split, source)
    label_names = _hub_label_names(spec, ds.features.get(cols.label) if cols.label else None, source)
    for i, row in enumerate(_rows(ds)):
        if labelled and cols.label is not None and label_names is not None:
            value = row[cols.label]
            if value is None or value < 0:  # -1: no label
                reader.dropped += 1
                continue
            row = {**row, cols.label: label_names[value]}
        label_cols = cols if labelled else Columns(cols.text_a, cols.text_b, None)
        _add_row(reader, label_cols, row, f"{source}[{i}]")
    return reader.finish()


def _rows(ds: Any) -> Iterable[dict[str, Any]]:
    columns = list(ds.column_names)
    data = ds.to_dict()  # column-wise access is much faster than row iteration
    for values in zip(*(data[c] for c in columns), strict=True):
        yield dict(zip(columns, values, strict=True))


def _hub_label_names(spec: TaskSpec, feature: Any, source: str) -> Sequence[str] | None:
    """Names to map the hub's integer class ids onto the spec's label strings."""
    names = getattr(feature, "names", None)
    if spec.labels is None or names is None:
        return None
    if all(n in spec.labels for n in names):
        return list(names)  # e.g. CLUE: "100".."116", "entailment"
    if len(names) == len(spec.labels) and all(str(i) in spec.labels for i in range(len(names))):
        return [str(i) for i in range(len(names))]  # e.g. GLUE: "negative"/"positive" are ids 0/1 in the TSVs
    raise DataError(f"{source}: hub labels {list(names)} do not match the task's labels {list(spec.labels)}")
