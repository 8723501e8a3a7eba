"""Build the ``polarity`` TSV layout from the polarity dataset's ``pos/`` and ``neg/`` folders
(one review per ``.txt`` file, as in Pang & Lee's ``txt_sentoken`` and NLTK's ``movie_reviews``).

    zoo-polarity-tsv SRC DIR   ->   DIR/polarity/train.tsv, DIR/polarity/dev.tsv

A review becomes one TSV field: its lines joined by spaces, tabs replaced by spaces. Files named
``cv9NN_*`` form the dev split, all others the training split. Empty or undecodable files are
skipped and counted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from zoo.errors import DataError

log = logging.getLogger(__name__)
LABELS = ("neg", "pos")


@dataclass
class Written:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> rows
    skipped: list[str] = field(default_factory=list)  # "path: reason"


def split_of(name: str) -> str:
    return "dev" if name.startswith("cv9") else "train"


def make_tsv(src: str | Path, out_dir: str | Path) -> Written:
    src, folder = Path(src), Path(out_dir) / "polarity"
    missing = [lab for lab in LABELS if not (src / lab).is_dir()]
    if missing:
        raise DataError(f"{src}: expected folders {', '.join(LABELS)} with one review per .txt file; "
                        f"missing {', '.join(missing)}")
    rows: dict[str, list[str]] = {"train": [], "dev": []}
    written = Written({s: dict.fromkeys(LABELS, 0) for s in rows})
    for label in LABELS:
        for path in sorted((src / label).glob("*.txt")):
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                written.skipped.append(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            text = " ".join(text.replace("\t", " ").split())
            if not text:
                written.skipped.append(f"{path}: empty")
                continue
            split = split_of(path.name)
            rows[split].append(f"{text}\t{label}")
            written.counts[split][label] += 1
    if not rows["train"] or not rows["dev"]:
        raise DataError(f"{src}: no reviews for the {'train' if not rows['train'] else 'dev'} split "
                        f"(dev = files named cv9NN_*)")
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in rows.items():
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(lines) + "\n", encoding="utf-8")
    if written.skipped:
        log.warning("skipped %d file(s): %s", len(written.skipped), "; ".join(written.skipped[:5]))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo-polarity-tsv", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="folder holding pos/ and neg/")
    parser.add_argument("out", help="data directory; the task's files go to OUT/polarity/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = make_tsv(args.src, args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split, counts in written.counts.items():
        print(f"{split}: {sum(counts.values())} reviews ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    if written.skipped:
        print(f"skipped: {len(written.skipped)} file(s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
