"""A zero-shot suite plugin: English agreement minimal pairs, in a layout of their own.

Layout: one ``<paradigm>.pairs`` file per paradigm, UTF-8. The first non-blank line is
``# phenomenon: <name>``; every other non-blank line that does not start with ``#`` is one pair,
``acceptable sentence | unacceptable sentence``. The suite's own pairs ship in ``pairs/`` and are
read when ``zoo bench`` gets no ``--data-dir``; a folder of ``.pairs`` files replaces them.
"""

from __future__ import annotations

from pathlib import Path

from zoo.benchmarks.minimal_pairs import MinimalPair, PairSuite, Paradigm
from zoo.errors import DataError

BUNDLED = Path(__file__).parent / "pairs"
SEPARATOR = " | "


def read_pairs_file(path: Path) -> Paradigm:
    """One ``.pairs`` file; a ``DataError`` naming the file and line for anything else."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    body = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    if not body or not body[0][1].startswith("# phenomenon:"):
        where = f"{path}:{body[0][0]}" if body else str(path)
        raise DataError(f"{where}: expected the first line '# phenomenon: <name>'")
    phenomenon = body[0][1].removeprefix("# phenomenon:").strip()
    if not phenomenon:
        raise DataError(f"{path}:{body[0][0]}: the phenomenon is empty")
    paradigm = Paradigm(path.stem, phenomenon, str(path))
    for n, line in body[1:]:
        if line.startswith("#"):
            continue
        parts = line.split(SEPARATOR)
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise DataError(f"{path}:{n}: expected 'acceptable sentence | unacceptable sentence', got {line!r}")
        good, bad = (p.strip() for p in parts)
        if good == bad:
            raise DataError(f"{path}:{n}: the two sentences are the same")
        paradigm.pairs.append(MinimalPair(good, bad, str(n)))
    if not paradigm.pairs:
        raise DataError(f"{path}: no pairs in this file")
    return paradigm


def bundled() -> list[Paradigm]:
    return [read_pairs_file(f) for f in sorted(BUNDLED.glob("*.pairs"))]


AGREEMENT = PairSuite("agreement", "en", "*.pairs", read_pairs_file, bundled,
                      "English agreement pairs: subject-verb (with and without an attractor), determiner-noun")
