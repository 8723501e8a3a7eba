"""The conformance checks of zero-shot plugins: ``check_suite`` (a minimal-pair suite) and
``check_scorer`` (a reading of a model's token head)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo import registry
from zoo.benchmarks.minimal_pairs import PairSuite, Paradigm, phenomena
from zoo.errors import DataError
from zoo.testing.conformance import ConformanceError
from zoo.testing.fixtures import special_tokens_for_tests, tiny_backbone

# the built-in backbone a reading of each kind is checked on
_KIND_BACKBONE = {"causal": "gpt", "pll": "bert", "seq2seq": "t5"}


def _plugin(kind: str, value: Any, base: type) -> tuple[Any, str]:
    """The registered plugin of ``kind`` named ``value`` (or ``value`` itself), checked to be a ``base``,
    and how errors name it."""
    obj = registry.load(kind, value) if isinstance(value, str) else value
    where = f"{kind} {getattr(obj, 'name', obj)!r}"
    if not isinstance(obj, base):
        raise ConformanceError(f"{where}: must be a {base.__module__}.{base.__qualname__}, got {obj!r}")
    if isinstance(value, str) and obj.name != value:
        raise ConformanceError(f"{where}: registered as {value!r} but named {obj.name!r}")
    return obj, where


def check_suite(suite: str | PairSuite, data_dir: str | Path | None = None) -> list[Paradigm]:
    """Check a minimal-pair suite (a registered name or a ``PairSuite``) on its data: ``data_dir`` (a folder of
    its files) or, without one, what the suite reads by default. Raises ``ConformanceError`` naming the suite;
    returns the paradigms read."""
    spec, where = _plugin("suite", suite, PairSuite)
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


def check_scorer(scorer: str | object, sentences: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """Check a zero-shot reading (a registered name or a ``Reading``) on a tiny random model of its kind
    (gpt for causal, bert for pll, t5 for seq2seq): one finite score and a token count in 0..tokens per
    sentence, the same on a second call, and a sentence's score independent of the sentences batched
    with it. Raises ``ConformanceError`` naming the reading; returns the scores of ``score_sentences``."""
    from zoo.benchmarks.lm_scoring import KINDS, Encoded, Reading, ScoreInputs, VocabProjection
    from zoo.objectives.base import TiedLinear
    from zoo.objectives.clm import decoder_lm_head
    from zoo.objectives.mlm import MaskedLMHead

    reading, where = _plugin("scorer", scorer, Reading)
    if reading.kind not in KINDS:
        raise ConformanceError(f"{where}: kind must be one of {', '.join(KINDS)}, got {reading.kind!r}")
    tokens = special_tokens_for_tests(vocab_size=128)
    backbone = tiny_backbone(_KIND_BACKBONE[reading.kind], tokens.vocab_size, seed=seed).eval()
    if reading.kind == "pll":
        head: torch.nn.Module = MaskedLMHead(backbone.spec, backbone.input_embedding())
    elif reading.kind == "seq2seq":
        head = decoder_lm_head(backbone)
    else:
        head = TiedLinear(backbone.input_embedding(), bias=False)
    rng = np.random.default_rng(seed)
    ordinary = np.arange(6, tokens.vocab_size - 32)  # no special token, no sentinel
    ids = [rng.choice(ordinary, size=int(n)) for n in rng.integers(3, 10, size=sentences)]
    enc = Encoded(ids, [np.arange(len(x)) for x in ids])
    unigram = np.log(np.full(tokens.vocab_size, 1.0 / tokens.vocab_size)) if reading.unigram else None
    scorer_ = reading.scorer("head", context="cls" if reading.kind == "pll" else "none")
    proj = VocabProjection(head.eval())

    def run(e: Encoded) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            sums, counts = reading.compute(ScoreInputs(scorer_, backbone, proj, tokens, e, 4096, None, unigram))
        return np.asarray(sums, dtype=np.float64), np.asarray(counts)

    try:
        sums, counts = run(enc)
        again, _ = run(enc)
        alone, _ = run(Encoded(ids[-1:], enc.words[-1:]))
    except Exception as exc:  # a plugin's failure, reported with its name
        raise ConformanceError(f"{where}: compute failed on a tiny {_KIND_BACKBONE[reading.kind]}: "
                               f"{type(exc).__name__}: {exc}") from exc
    lengths = np.asarray([len(x) for x in ids])
    if sums.shape != (sentences,) or counts.shape != (sentences,):
        raise ConformanceError(f"{where}: expected one score and one token count per sentence ({sentences}), got "
                               f"shapes {sums.shape} and {counts.shape}")
    if not np.isfinite(sums).all():
        raise ConformanceError(f"{where}: scores must be finite, got {sums.tolist()}")
    if (counts < 0).any() or (counts > lengths).any():
        raise ConformanceError(f"{where}: token counts must lie in 0..tokens of the sentence, got {counts.tolist()} "
                               f"for lengths {lengths.tolist()}")
    if not np.array_equal(sums, again):
        raise ConformanceError(f"{where}: two calls on the same sentences gave different scores")
    if not np.allclose(alone, sums[-1:], rtol=1e-4, atol=1e-4):
        raise ConformanceError(f"{where}: a sentence's score depends on the sentences batched with it "
                               f"({float(alone[0])} alone, {float(sums[-1])} in a batch)")
    return {scorer_.name: sums}
