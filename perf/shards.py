"""Shard-building speed: objective-zoo's token stores versus ``datasets.map`` with the same tokenizer.

    python perf/shards.py                       # ../shared/data/corpus/en, WordPiece and BPE
    python perf/shards.py --corpus DIR --kinds bpe --num-proc 2

For each tokenizer kind it trains the tokenizer once (timed separately), then measures

* zoo: ``build_store`` (sentence splitting, batch encoding with the fast tokenizer, word starts,
  memory-mapped shards on disk), tokens per second;
* reference: ``datasets.Dataset.map(batched=True, num_proc=N)`` with
  ``transformers.PreTrainedTokenizerFast`` wrapping the very same tokenizer, producing the same
  information (ids and word starts), tokens per second;
* CPU seconds of both (wall-clock numbers are only comparable on an otherwise idle machine);
* the padding fraction of packed rows at ``--seq-len`` (encoder rows for WordPiece, decoder
  rows for BPE) and the time ``build_datasets`` takes when everything is cached (a second run).

Results are printed and written as JSON to ``perf/results/shards.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def datasets_map(docs: list[str], tok, num_proc: int) -> tuple[int, float, float]:  # noqa: ANN001
    """Tokenise with datasets.map; returns (tokens, wall seconds, CPU seconds)."""
    import datasets
    from transformers import PreTrainedTokenizerFast

    datasets.disable_caching()
    datasets.disable_progress_bars()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    ds = datasets.Dataset.from_dict({"text": docs})

    def encode(batch: dict) -> dict:
        enc = fast(batch["text"], add_special_tokens=False)
        starts = []
        for i in range(len(batch["text"])):
            w = enc.word_ids(i)
            starts.append([j == 0 or w[j] != w[j - 1] for j in range(len(w))])
        return {"input_ids": enc["input_ids"], "word_starts": starts}

    t0, c0 = time.perf_counter(), cpu_seconds()
    out = ds.map(encode, batched=True, batch_size=64, num_proc=num_proc, remove_columns=["text"])
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    tokens = int(sum(len(x) for x in out["input_ids"]))
    return tokens, seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(REPO / ".." / "shared" / "data" / "corpus" / "en"))
    ap.add_argument("--kinds", default="wordpiece,bpe")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--max-documents", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "perf" / "results" / "shards.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("zoo.data.corpus").setLevel(logging.ERROR)  # per-file decode notes

    import tokenizers

    from zoo.data import DataConfig, RowSource, TokenizerConfig, build_datasets, build_store, read_corpus
    from zoo.data.pipeline import split_documents
    from zoo.data.sentences import chunk_text
    from zoo.data.tokenizer import special_tokens, train_tokenizer

    corpus_path = Path(args.corpus).resolve()
    if not corpus_path.exists():
        sys.exit(f"corpus not found: {corpus_path}")
    data = DataConfig(source=str(corpus_path), on_decode_error="replace", max_documents=args.max_documents)
    t0 = time.perf_counter()
    docs = read_corpus(data).documents
    read_s = time.perf_counter() - t0
    chars = sum(map(len, docs))
    print(f"corpus {corpus_path}: {len(docs)} documents, {chars / 1e6:.1f} M characters (read in {read_s:.2f}s)")
    results: dict = {"corpus": str(corpus_path), "documents": len(docs), "characters": chars,
                     "cpus": os.cpu_count(), "python": platform.python_version(),
                     "tokenizers": tokenizers.__version__, "num_proc": args.num_proc, "kinds": {}}
    for kind in args.kinds.split(","):
        family = "encoder" if kind == "wordpiece" else "decoder"
        train_idx, _ = split_documents(docs, data.validation_fraction)
        t0 = time.perf_counter()
        tok = train_tokenizer([p for i in train_idx for p in chunk_text(docs[i])], kind, vocab_size=args.vocab_size)
        train_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), cpu_seconds()
            store = build_store(docs, tok, Path(tmp) / "store")
            zoo_s, zoo_cpu = time.perf_counter() - t0, cpu_seconds() - c0
            rows = RowSource(store, args.seq_len, special_tokens(tok), family)
            zoo_tokens = store.num_tokens
            ref_tokens, ref_s, ref_cpu = datasets_map(docs, tok, args.num_proc)
            # the second run of a training job: corpus read + hashed, tokenizer and stores from the cache
            cfg = DataConfig(source=str(corpus_path), on_decode_error="replace", max_documents=args.max_documents,
                             cache_dir=str(Path(tmp) / "cache"))
            run_dir = Path(tmp) / "run"
            tcfg = TokenizerConfig(kind=kind, vocab_size=args.vocab_size)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            build_datasets(cfg, tcfg, family, run_dir)
            first_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = build_datasets(cfg, tcfg, family, run_dir)
            hit_s = time.perf_counter() - t0
            assert again.stats["cache_hit"]
        r = {
            "tokenizer_train_seconds": round(train_s, 2),
            "zoo_tokens": zoo_tokens, "zoo_seconds": round(zoo_s, 2), "zoo_tokens_per_s": round(zoo_tokens / zoo_s),
            "datasets_map_tokens": ref_tokens, "datasets_map_seconds": round(ref_s, 2),
            "datasets_map_tokens_per_s": round(ref_tokens / ref_s),
            "speedup": round((zoo_tokens / zoo_s) / (ref_tokens / ref_s), 2),
            "zoo_cpu_seconds": round(zoo_cpu, 2), "datasets_map_cpu_seconds": round(ref_cpu, 2),
            "cpu_ratio": round((zoo_tokens / zoo_cpu) / (ref_tokens / ref_cpu), 2),
            "padding_fraction": rows.padding_fraction, "rows": len(rows), "row_family": family,
            "build_datasets_first_seconds": round(first_s, 2), "build_datasets_cache_hit_seconds": round(hit_s, 3),
        }
        results["kinds"][kind] = r
        print(f"\n{kind} (vocab {tok.get_vocab_size()}, trained in {train_s:.1f}s)")
        print(f"  zoo build_store        {zoo_tokens:>10,} tokens  {zoo_s:6.2f}s  {r['zoo_tokens_per_s']:>10,} tokens/s")
        print(f"  datasets.map (np={args.num_proc})   {ref_tokens:>10,} tokens  {ref_s:6.2f}s  "
              f"{r['datasets_map_tokens_per_s']:>10,} tokens/s")
        print(f"  ratio zoo / datasets.map: {r['speedup']:.2f}x wall clock; CPU time {zoo_cpu:.1f}s vs "
              f"{ref_cpu:.1f}s ({r['cpu_ratio']:.2f}x tokens per CPU second)")
        print(f"  {family} rows at seq_len {args.seq_len}: {len(rows):,} rows, padding {rows.padding_fraction:.4%}")
        print(f"  build_datasets: first run {first_s:.2f}s, cached second run {hit_s:.3f}s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
