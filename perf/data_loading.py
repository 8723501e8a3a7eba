"""Is data loading ever the bottleneck? Trainer steps fed by the real pipeline vs in-memory batches,
and how much of the corpus is padding.

    python perf/data_loading.py --model bert
    python perf/data_loading.py --model gpt

``pipeline``: the trainer's own prefetching iterator over the corpus (sampler, row/segment source,
``objective.prepare`` in a background thread), one fresh batch per step, exactly as ``zoo train``
runs. ``in-memory``: the same trainer stepping on batches prepared beforehand. Rounds alternate;
the overhead is the ratio of median step times. Also reports the time to prepare one batch in the
foreground, and the padding fraction of packed rows (``RowSource.padding_fraction``, encoder and
decoder rows) and of the sentence-pair rows NSP builds.
Writes perf/results/data_loading-<model>.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def padding_report(setup: common.Setup, scratch: Path) -> dict[str, float]:
    """Padding of packed rows for both families at this sequence length, on the corpus (each family
    with its standard vocabulary: 30522 WordPiece for encoders, 50257 BPE for decoders)."""
    from zoo.data import DataConfig, TokenizerConfig, build_datasets

    corpus = common.corpus_path(setup, scratch)
    out = {}
    for family in ("encoder", "decoder"):
        vocab = common.DEFAULT_VOCAB["bert" if family == "encoder" else "gpt"]
        data = build_datasets(DataConfig(source=str(corpus), on_decode_error="replace"),
                              TokenizerConfig(vocab_size=vocab), family, None)
        rows = data.source("rows", setup.seq_len)
        out[f"{family}_rows"] = len(rows)
        out[f"{family}_padding_fraction"] = rows.padding_fraction
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_setup_args(p)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    setup = common.setup_from_args(args)
    scratch = common.Scratch()
    try:
        side = common.ZooSide(setup, args.precision, scratch.path, num_batches=8)
        trainer = side.trainer
        live = trainer._prefetched()

        def pipeline_step() -> None:
            trainer._train_step(next(live)[1])

        # foreground cost of one step's batch: sampler + source + objective.prepare
        batches = trainer._step_batches()
        prep = []
        for _ in range(10):
            t0 = time.perf_counter()
            next(batches)
            prep.append(time.perf_counter() - t0)
        batches.close()
        print(f"{setup.label()} ({args.precision}): preparing one batch takes {statistics.median(prep) * 1000:.1f} ms "
              f"in the foreground", flush=True)
        times = common.interleaved({"in-memory": side.step, "pipeline": pipeline_step}, args.rounds, args.steps,
                                   args.warmup)
        live.close()
        summary = common.summarize(times, setup.tokens_per_step)
        overhead = summary["pipeline"]["step_s"] / summary["in-memory"]["step_s"] - 1.0
        pads = padding_report(setup, scratch.path)
    finally:
        scratch.cleanup()
    pair_pad = side.padding_fraction() if setup.model == "bert" else None
    rows = [[k, v["tokens_per_s"], v["step_s"] * 1000, v["min_step_s"] * 1000, v["max_step_s"] * 1000]
            for k, v in summary.items()]
    table = common.markdown_table(["batches", "tokens/s (median)", "step ms", "min ms", "max ms"], rows)
    pad_line = (f"padding at seq {setup.seq_len}: encoder rows {pads['encoder_padding_fraction']:.3%} "
                f"({pads['encoder_rows']} rows), decoder rows {pads['decoder_padding_fraction']:.3%} "
                f"({pads['decoder_rows']} rows)")
    if pair_pad is not None:
        pad_line += f"; NSP sentence-pair rows in the measured batches {pair_pad:.1%}"
    md = (f"**{setup.label()}, {args.precision}**: real-data pipeline step time vs in-memory batches: "
          f"**{overhead:+.1%}** (foreground batch preparation {statistics.median(prep) * 1000:.1f} ms per step)"
          f"\n\n{table}\n\n{pad_line}")
    print("\n" + md)
    payload = {"setup": common.setup_dict(setup), "precision": args.precision, "machine": common.machine(),
               "times_s": times, "summary": summary, "overhead": overhead, "prepare_ms": [t * 1000 for t in prep],
               "padding": pads, "pair_padding_fraction": pair_pad}
    path = common.write_results(f"data_loading-{setup.model}", payload, md, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
