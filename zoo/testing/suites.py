"""The conformance check of zero-shot suite plugins: ``check_suite``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from zoo import registry
from zoo.benchmarks.minimal_pairs import PairSuite, Paradigm, phenomena
from zoo.errors import DataError
from zoo.testing.conformance import ConformanceError


def check_suite(suite: str | PairSuite, data_dir: str | Path | None = None) -> list[Paradigm]:
    """Check a minimal-pair suite (a registered name or a ``PairSuite``) on its data: ``data_dir`` (a folder of
    its files) or, without one, what the suite reads by default. Raises ``ConformanceError`` naming the suite;
    returns the paradigms read."""
    spec = registry.load("suite", suite) if isinstance(suite, str) else suite
    where = f"suite {spec.name!r}"
    if not isinstance(spec, PairSuite):
        raise ConformanceError(f"{where}: must be a zoo.benchmarks.minimal_pairs.PairSuite, got {spec!r}")
    if isinstance(suite, str) and spec.name != suite:
        raise ConformanceError(f"{where}: registered as {suite!r} but named {spec.name!r}")
    if not spec.pattern or "*" not in spec.pattern:
        raise ConformanceError(f"{where}: pattern must be a glob of its files such as '*.jsonl', got {spec.pattern!r}")
    try:
        first, again = spec.load(data_dir), spec.load(data_dir)
    except DataError as exc:
        raise ConformanceError(f"{where}: its data could not be read: {exc}") from exc
    if [p.fingerprint() for p in first] != [p.fingerprint() for p in again]:
        raise ConformanceError(f"{where}: two reads of the same files gave different pairs")
    for p in first:
        if not p.name or not p.phenomenon:
            raise ConformanceError(f"{where}: {p.source}: a paradigm needs a name and a phenomenon")
        ids = [pair.pair_id for pair in p.pairs]
        if len(set(ids)) != len(ids):
            raise ConformanceError(f"{where}: {p.source}: pair ids repeat within paradigm {p.name!r}")
        for pair in p.pairs:
            # identical sentences are allowed: the official BLiMP files hold 7 such pairs, scored as wrong
            if not (isinstance(pair.good, str) and isinstance(pair.bad, str) and pair.good.strip()
                    and pair.bad.strip()):
                raise ConformanceError(f"{where}: {p.source}: pair {pair.pair_id} needs two non-empty sentences")
    if not phenomena(first):
        raise ConformanceError(f"{where}: no paradigm read")
    _check_bad_input(spec, where)
    return first


def _check_bad_input(spec: PairSuite, where: str) -> None:
    """A file of the suite's name pattern that holds no pairs must be refused with a DataError naming it."""
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / spec.pattern.replace("*", "broken", 1)
        bad.write_bytes(b"\xff\xfe not a pair \x00\n")
        try:
            spec.read_file(bad)
        except DataError as exc:
            if bad.name not in str(exc):
                raise ConformanceError(f"{where}: the error for a malformed file must name it, got {exc}") from None
            return
        except Exception as exc:  # a bare traceback is what the contract rules out
            raise ConformanceError(f"{where}: a malformed file raised {type(exc).__name__}: {exc}; expected a "
                                   f"zoo.errors.DataError naming the file and line") from exc
        raise ConformanceError(f"{where}: a malformed file ({bad.name}) was read without an error")
