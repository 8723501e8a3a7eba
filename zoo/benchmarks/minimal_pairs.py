"""Minimal-pair suites (zero-shot): BLiMP (English) and CLiMP (Chinese), read from their official layouts.

A suite is a ``PairSuite`` registered in the ``zoo.suites`` entry-point group, like a task: the reader of
its own file layout, where its pairs are without ``--data-dir``, and its language. BLiMP and CLiMP are
declared in objective-zoo's ``pyproject.toml`` exactly as a third-party suite would be.

A pair is a grammatical and an ungrammatical sentence that differ minimally; a model gets it right
when it scores the grammatical one higher. Pairs are grouped into paradigms (one file each), and
paradigms into phenomena.

BLiMP (Warstadt et al., 2020): ``<UID>.jsonl``, one pair per line with ``sentence_good``,
``sentence_bad``, ``field``, ``linguistics_term``, ``UID``, ``pairID``. Phenomena are the paper's
12 groups; its data files mark two argument-structure paradigms (``animate_subject_passive``,
``animate_subject_trans``) as ``s-selection``, which the paper counts under argument structure.

CLiMP (Xiang et al., 2021): ``<paradigm>_1000.csv`` in one of two layouts, told apart by the
file's first line (not its name). Most files: header ``,0,1,2,3``, columns row index, phenomenon,
paradigm, sentence, label (1 acceptable, 0 not); the two sentences of a pair are consecutive rows.
One file of the official archive has no header and holds bare sentences, two lines per pair, the
acceptable one first; its paradigm is the file name less ``_1000.csv``, its phenomenon the CLiMP
phenomenon that name starts with. UTF-8 with or without a BOM.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import registry
from zoo.errors import DataError, PluginError

log = logging.getLogger(__name__)

BLIMP_HUB = "nyu-mll/blimp"
BLIMP_FIELDS = ("sentence_good", "sentence_bad", "UID", "linguistics_term")
# the data files' term -> the paper's phenomenon (Warstadt et al. 2020, Table 1)
BLIMP_TERM_GROUP = {"s-selection": "argument_structure"}
BLIMP_PARADIGMS = (
    "adjunct_island", "anaphor_gender_agreement", "anaphor_number_agreement", "animate_subject_passive",
    "animate_subject_trans", "causative", "complex_NP_island", "coordinate_structure_constraint_complex_left_branch",
    "coordinate_structure_constraint_object_extraction", "determiner_noun_agreement_1",
    "determiner_noun_agreement_2", "determiner_noun_agreement_irregular_1", "determiner_noun_agreement_irregular_2",
    "determiner_noun_agreement_with_adj_2", "determiner_noun_agreement_with_adj_irregular_1",
    "determiner_noun_agreement_with_adj_irregular_2", "determiner_noun_agreement_with_adjective_1",
    "distractor_agreement_relational_noun", "distractor_agreement_relative_clause", "drop_argument",
    "ellipsis_n_bar_1", "ellipsis_n_bar_2", "existential_there_object_raising", "existential_there_quantifiers_1",
    "existential_there_quantifiers_2", "existential_there_subject_raising", "expletive_it_object_raising",
    "inchoative", "intransitive", "irregular_past_participle_adjectives", "irregular_past_participle_verbs",
    "irregular_plural_subject_verb_agreement_1", "irregular_plural_subject_verb_agreement_2",
    "left_branch_island_echo_question", "left_branch_island_simple_question", "matrix_question_npi_licensor_present",
    "npi_present_1", "npi_present_2", "only_npi_licensor_present", "only_npi_scope", "passive_1", "passive_2",
    "principle_A_c_command", "principle_A_case_1", "principle_A_case_2", "principle_A_domain_1",
    "principle_A_domain_2", "principle_A_domain_3", "principle_A_reconstruction",
    "regular_plural_subject_verb_agreement_1", "regular_plural_subject_verb_agreement_2",
    "sentential_negation_npi_licensor_present", "sentential_negation_npi_scope", "sentential_subject_island",
    "superlative_quantifiers_1", "superlative_quantifiers_2", "tough_vs_raising_1", "tough_vs_raising_2",
    "transitive", "wh_island", "wh_questions_object_gap", "wh_questions_subject_gap",
    "wh_questions_subject_gap_long_distance", "wh_vs_that_no_gap", "wh_vs_that_no_gap_long_distance",
    "wh_vs_that_with_gap", "wh_vs_that_with_gap_long_distance",
)
CLIMP_HEADER = ["", "0", "1", "2", "3"]
# the paper's nine phenomena (Xiang et al. 2021, Table 1), for files that do not name theirs
CLIMP_PHENOMENA = ("anaphor_agreement", "ba_construction", "binding", "classifier", "coverb", "filler_gap",
                   "head_final", "passive", "verb_complement")


@dataclass(frozen=True)
class MinimalPair:
    good: str
    bad: str
    pair_id: str  # BLiMP pairID; CLiMP: the pair's position in its file


@dataclass
class Paradigm:
    name: str
    phenomenon: str  # the group it is reported under
    source: str  # file (or hub dataset) it was read from
    pairs: list[MinimalPair] = field(default_factory=list)

    def fingerprint(self) -> str:
        """sha256 of the pairs in order: two results are paired item by item only if these agree."""
        h = hashlib.sha256()
        for p in self.pairs:
            h.update(json.dumps([p.pair_id, p.good, p.bad], ensure_ascii=False).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class PairSuite:
    """A zero-shot suite of minimal pairs, registered in the ``zoo.suites`` entry-point group."""

    name: str
    language: str  # of its sentences ("en", "zh", ...)
    pattern: str  # glob of its paradigm files in a ``--data-dir`` folder, one paradigm per file
    read_file: Callable[[Path], Paradigm]  # one file -> its paradigm; bad input: DataError naming file and line
    default: Callable[[], list[Paradigm]] | None = None  # its pairs without --data-dir (hub, bundled files)
    description: str = ""

    def load(self, data_dir: str | Path | None = None) -> list[Paradigm]:
        """Every paradigm, from ``data_dir`` (its files matching ``pattern``) or, without one, ``default``."""
        if data_dir is None:
            if self.default is None:
                raise DataError(f"{self.name.upper()}: no copy on the Hugging Face hub or bundled with the suite is "
                                f"known; pass --data-dir with its {self.pattern} files")
            paradigms = self.default()
        else:
            root = Path(data_dir)
            if not root.is_dir():
                raise DataError(f"{root}: not a directory")
            files = sorted(root.glob(self.pattern))
            if not files:
                raise DataError(f"{root}: no {self.name.upper()} files ({self.pattern}) in this directory")
            paradigms = [self.read_file(f) for f in files]
        seen: dict[str, str] = {}
        for p in paradigms:
            if not isinstance(p, Paradigm) or not p.pairs:
                raise DataError(f"{self.name}: {getattr(p, 'source', p)!s}: a reader must return a Paradigm with "
                                f"at least one pair")
            if p.name in seen:
                raise DataError(f"{self.name}: paradigm {p.name!r} is read from both {seen[p.name]} and {p.source}")
            seen[p.name] = p.source
        return paradigms


def pair_suites() -> list[str]:
    """Names of the registered zero-shot suites (metadata only: nothing is imported)."""
    return registry.names("suite")


def is_pair_suite(name: str | None) -> bool:
    return name is not None and name in registry.find("suite")


def get_suite(name: str) -> PairSuite:
    """The registered suite ``name``; a ``DataError`` naming the known ones otherwise."""
    try:
        return registry.load("suite", name)
    except PluginError as exc:
        raise DataError(f"minimal-pair suite: {exc}") from None


def load_suite(suite: str, data_dir: str | Path | None = None, max_pairs: int | None = None) -> list[Paradigm]:
    """Every paradigm of ``suite`` (sorted by name), each cut to its first ``max_pairs`` pairs in file order."""
    if max_pairs is not None and max_pairs < 1:
        raise DataError(f"--max-eval-examples must be at least 1, got {max_pairs}")
    paradigms = get_suite(suite).load(data_dir)
    for p in paradigms:
        if max_pairs is not None:
            p.pairs = p.pairs[:max_pairs]
    return sorted(paradigms, key=lambda p: p.name)


def phenomena(paradigms: list[Paradigm]) -> dict[str, list[str]]:
    """Phenomenon -> its paradigm names, both sorted."""
    out: dict[str, list[str]] = {}
    for p in paradigms:
        out.setdefault(p.phenomenon, []).append(p.name)
    return {k: sorted(v) for k, v in sorted(out.items())}


# --- official layouts ---------------------------------------------------------------------------

def _read_text(path: Path) -> str:
    """A paradigm file's text (UTF-8, a byte-order mark dropped); a ``DataError`` naming it otherwise."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def read_blimp_file(path: Path) -> Paradigm:
    """One BLiMP paradigm file; every line must be a complete pair."""
    paradigm: Paradigm | None = None
    for lineno, line in enumerate(_read_text(path).split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in BLIMP_FIELDS if not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)} (a BLiMP line needs "
                            f"{', '.join(BLIMP_FIELDS)})")
        term = row["linguistics_term"]
        if paradigm is None:
            paradigm = Paradigm(row["UID"], BLIMP_TERM_GROUP.get(term, term), str(path))
        elif row["UID"] != paradigm.name:
            raise DataError(f"{path}:{lineno}: UID {row['UID']!r} differs from the file's first line "
                            f"({paradigm.name!r}); one paradigm per file")
        pair_id = str(row.get("pairID", len(paradigm.pairs)))
        paradigm.pairs.append(MinimalPair(row["sentence_good"], row["sentence_bad"], pair_id))
    if paradigm is None:
        raise DataError(f"{path}: no pairs in this file")
    return paradigm


def read_climp_file(path: Path) -> Paradigm:
    """One CLiMP paradigm CSV: consecutive rows form a pair, one labelled 1 and one labelled 0."""
    rows = list(csv.reader(io.StringIO(_read_text(path), newline="")))
    if rows and [c.strip() for c in rows[0]] != CLIMP_HEADER and _bare_sentences(rows):
        return _read_climp_bare(path, rows)
    if not rows or [c.strip() for c in rows[0]] != CLIMP_HEADER:
        raise DataError(f"{path}:1: expected the CLiMP header ',0,1,2,3', got {','.join(rows[0]) if rows else 'nothing'!r}")
    body = [(i, r) for i, r in enumerate(rows[1:], 2) if any(c.strip() for c in r)]
    if not body:
        raise DataError(f"{path}: no pairs in this file")
    for lineno, r in body:
        if len(r) != 5:
            raise DataError(f"{path}:{lineno}: expected 5 fields (index, phenomenon, paradigm, sentence, label), "
                            f"got {len(r)}")
        if r[4].strip() not in ("0", "1"):
            raise DataError(f"{path}:{lineno}: label must be 1 (acceptable) or 0 (unacceptable), got {r[4]!r}")
    if len(body) % 2:
        raise DataError(f"{path}:{body[-1][0]}: odd number of sentence rows ({len(body)}); pairs are consecutive "
                        f"rows")
    paradigm = Paradigm(body[0][1][2].strip(), body[0][1][1].strip(), str(path))
    for k in range(0, len(body), 2):
        (la, a), (lb, b) = body[k], body[k + 1]
        labels = (a[4].strip(), b[4].strip())
        if sorted(labels) != ["0", "1"]:
            raise DataError(f"{path}:{la}-{lb}: a pair needs one acceptable (1) and one unacceptable (0) "
                            f"sentence, got labels {labels[0]} and {labels[1]}")
        for lineno, r in ((la, a), (lb, b)):
            if r[2].strip() != paradigm.name:
                raise DataError(f"{path}:{lineno}: paradigm {r[2].strip()!r} differs from the file's first row "
                                f"({paradigm.name!r})")
        good, bad = (a[3], b[3]) if labels[0] == "1" else (b[3], a[3])
        paradigm.pairs.append(MinimalPair(good.strip(), bad.strip(), str(k // 2)))
    return paradigm


def _bare_sentences(rows: list[list[str]]) -> bool:
    """Whether a headerless CLiMP file is the bare-sentence layout: every line one field holding a
    sentence (a CSV row that lost its header has several fields and is refused as such)."""
    lines = [r for r in rows if any(c.strip() for c in r)]
    return bool(lines) and all(len(r) == 1 for r in lines)


def _read_climp_bare(path: Path, rows: list[list[str]]) -> Paradigm:
    """The headerless CLiMP layout: one sentence a line, two lines a pair, the acceptable one first."""
    body = [(i, r[0].strip()) for i, r in enumerate(rows, 1) if r and r[0].strip()]
    if len(body) % 2:
        raise DataError(f"{path}:{body[-1][0]}: odd number of sentence lines ({len(body)}) in a file without the "
                        f"',0,1,2,3' header; that layout holds pairs as two lines, the acceptable sentence first")
    name = path.stem.removesuffix("_1000")
    phenomenon = next((p for p in CLIMP_PHENOMENA if name == p or name.startswith(p + "_")), name)
    paradigm = Paradigm(name, phenomenon, str(path))
    for k in range(0, len(body), 2):
        (_, good), (_, bad) = body[k], body[k + 1]
        paradigm.pairs.append(MinimalPair(good, bad, str(k // 2)))
    return paradigm


# --- Hugging Face hub ----------------------------------------------------------------------------

def _blimp_hub() -> list[Paradigm]:
    import datasets

    out = []
    for uid in BLIMP_PARADIGMS:
        try:
            ds = datasets.load_dataset(BLIMP_HUB, uid, split="train")
        except Exception as exc:  # the hub client raises many types: connection, offline mode, not found
            raise DataError(f"BLiMP: cannot load {BLIMP_HUB} ({uid}) from the Hugging Face hub: cannot reach the hub "
                            f"or not in the local cache ({type(exc).__name__}); use --data-dir with the official "
                            f"<UID>.jsonl files") from exc
        out.append(_hub_paradigm(uid, ds, f"{BLIMP_HUB}/{uid}"))
    return out


def _hub_paradigm(uid: str, rows: Any, source: str) -> Paradigm:
    paradigm: Paradigm | None = None
    for i, row in enumerate(rows):
        missing = [k for k in BLIMP_FIELDS if not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{source}: row {i}: missing field(s) {', '.join(missing)}")
        if paradigm is None:
            term = row["linguistics_term"]
            paradigm = Paradigm(uid, BLIMP_TERM_GROUP.get(term, term), source)
        paradigm.pairs.append(MinimalPair(row["sentence_good"], row["sentence_bad"], str(row.get("pairID", i))))
    if paradigm is None:
        raise DataError(f"{source}: no pairs")
    return paradigm


BLIMP = PairSuite("blimp", "en", "*.jsonl", read_blimp_file, _blimp_hub,
                  "BLiMP (Warstadt et al. 2020): 67 English paradigms of 1,000 pairs, <UID>.jsonl")
CLIMP = PairSuite("climp", "zh", "*.csv", read_climp_file, None,
                  "CLiMP (Xiang et al. 2021): 16 Chinese paradigms of 1,000 pairs, <paradigm>_1000.csv")
