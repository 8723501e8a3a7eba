"""Shared pieces of the perf scripts: one config, identical batches for objective-zoo and for
Hugging Face transformers, the two training steps, interleaved timing, peak memory, result files.

The zoo side is the real trainer: a ``Trainer`` set up on the corpus, its own data pipeline
(sampler, ``objective.prepare``) and its own ``_train_step`` (autocast, backward, gradient
clipping, fused AdamW, metrics). The reference side is a plain PyTorch loop around
``BertForPreTraining`` / ``GPT2LMHeadModel`` (forward with labels, backward, ``torch.optim.AdamW``
step, ``zero_grad``) fed the very same token ids: for BERT the same masked input and the same
masked positions (dense labels, -100 elsewhere) and NSP labels; for GPT the same next-token
targets (-100 where a document ends). Both start from the same weights.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# Both implementations run in one process, so they share the CPU runtime settings: by default the
# ones the zoo CLI sets (passive OpenMP waits, huge pages for large tensors); ``--runtime plain``
# keeps the library defaults. Read before torch loads.
PLAIN_RUNTIME = "--runtime=plain" in sys.argv or " ".join(sys.argv).find("--runtime plain") >= 0
if not PLAIN_RUNTIME:
    from zoo.cli import RUNTIME_ENV  # torch-free import

    for _key, _value in RUNTIME_ENV.items():
        os.environ.setdefault(_key, _value)

import logging  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

logging.getLogger("zoo").setLevel(logging.ERROR)  # the corpus reader's per-file notes are not results

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus" / "en"
RESULTS = REPO / "perf" / "results"

OBJECTIVE = {"bert": "mlm+nsp", "gpt": "clm"}
DEFAULT_VOCAB = {"bert": 30522, "gpt": 50257}
# name -> (layers, hidden); heads = hidden / 64, FFN = 4 x hidden (zoo.models.base.SIZES)
SIZES = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}
HF_VARIANTS = ("hf-eager-fp32", "hf-sdpa-fp32", "hf-eager-bf16", "hf-sdpa-bf16")
ZOO_VARIANTS = ("zoo-fp32", "zoo-bf16")


@dataclass
class Setup:
    """One benchmark configuration (both implementations use exactly this)."""

    model: str = "bert"  # bert | gpt
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 1024
    seq_len: int = 128
    batch_size: int = 32
    vocab: int = 0  # tokenizer size to train; 0 = 30522 (bert) / 50257 (gpt)
    dropout: float = 0.1
    data: str = "corpus"  # corpus (../shared/data/corpus/en) | synthetic (generated text)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in OBJECTIVE:
            raise SystemExit(f"--model must be bert or gpt, got {self.model!r}")
        self.vocab = self.vocab or DEFAULT_VOCAB[self.model]

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.batch_size

    def label(self) -> str:
        return (f"{self.model} {OBJECTIVE[self.model]} h{self.hidden} L{self.layers} H{self.heads} "
                f"F{self.ffn} T{self.seq_len} B{self.batch_size}")

    @classmethod
    def sized(cls, model: str, size: str, **kw: Any) -> Setup:
        layers, hidden = SIZES[size]
        return cls(model=model, hidden=hidden, layers=layers, heads=max(1, hidden // 64), ffn=4 * hidden, **kw)


def add_setup_args(parser: Any, model: bool = True) -> None:
    if model:
        parser.add_argument("--model", choices=["bert", "gpt"], default="bert")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=0, help="tokenizer size (default 30522 bert / 50257 gpt)")
    parser.add_argument("--data", choices=["corpus", "synthetic"], default="corpus" if CORPUS.is_dir() else "synthetic")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--runtime", choices=["zoo", "plain"], default="zoo",
                        help="CPU runtime env for both sides: the zoo CLI's (OMP_WAIT_POLICY=PASSIVE, "
                             "THP_MEM_ALLOC_ENABLE=1) or the library defaults")


def setup_from_args(args: Any, model: str | None = None) -> Setup:
    return Setup(model=model or args.model, hidden=args.hidden, layers=args.layers, heads=args.heads, ffn=args.ffn,
                 seq_len=args.seq_len, batch_size=args.batch_size, vocab=args.vocab, data=args.data)


def set_threads(n: int) -> None:
    if n > 0:
        torch.set_num_threads(n)


# --- data ------------------------------------------------------------------------------------------
def synthetic_corpus(directory: Path, documents: int = 400, seed: int = 0) -> Path:
    """Generated English-like text (documents of sentences of words) for machines without the corpus."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "to", "ri", "men", "sa", "lo", "ne", "vi", "da", "pur", "an", "the", "ol", "is", "gra"]
    words = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(5000)})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "synthetic.txt"
    docs = []
    for _ in range(documents):
        sentences = []
        for _ in range(int(rng.integers(5, 60))):
            sent = " ".join(rng.choice(words, size=int(rng.integers(4, 25))))
            sentences.append(sent.capitalize() + ".")
        docs.append(" ".join(sentences))
    path.write_text("\n\n".join(docs) + "\n")
    return path


def run_config(setup: Setup, out: Path, precision: str, corpus: Path, **train: Any) -> Any:
    """The ``RunConfig`` of a zoo run at this setup."""
    from zoo.train.resolve import resolve

    model = {"hidden_size": setup.hidden, "num_layers": setup.layers, "num_heads": setup.heads,
             "intermediate_size": setup.ffn, "dropout": setup.dropout, "attention_dropout": setup.dropout,
             "max_positions": max(512 if setup.model == "bert" else 1024, setup.seq_len)}
    data = {"source": str(corpus), "on_decode_error": "replace"}
    train_cfg = {"budget": "1000000steps", "seq_len": setup.seq_len, "batch_size": setup.batch_size,
                 "precision": precision, "eval_every": 0, "log_every": 1000000, "seed": setup.seed,
                 "device": "cpu", **train}
    return resolve({"objective": OBJECTIVE[setup.model], "backbone": setup.model, "out": str(out), "model": model,
                    "data": data, "tokenizer": {"vocab_size": setup.vocab}, "train": train_cfg})


def corpus_path(setup: Setup, scratch: Path) -> Path:
    if setup.data == "corpus":
        if not CORPUS.is_dir():
            raise SystemExit(f"the corpus {CORPUS} is missing; run with --data synthetic")
        return CORPUS
    return synthetic_corpus(scratch / "corpus", seed=setup.seed)


def hf_inputs(setup: Setup, batch: Any) -> dict[str, torch.Tensor]:
    """The reference model's keyword arguments for a prepared zoo batch (CPU tensors)."""
    from zoo.objectives.common import IGNORE

    ids = batch.input_ids
    if setup.model == "bert":
        mlm = batch.targets["mlm"]
        labels = torch.full_like(ids, IGNORE)
        keep = mlm["labels"] != IGNORE
        rows = torch.arange(ids.shape[0])[:, None].expand_as(mlm["positions"])
        labels[rows[keep], mlm["positions"][keep]] = mlm["labels"][keep]
        return {"input_ids": ids, "attention_mask": (batch.doc_ids >= 0).long(),
                "token_type_ids": batch.token_type_ids, "labels": labels,
                "next_sentence_label": batch.targets["nsp"]["labels"]}
    # GPT2LMHeadModel predicts labels[t + 1] at t: shift zoo's labels (target of t stored at t) right.
    zoo_labels = batch.targets["clm"]["labels"]
    labels = torch.cat([torch.full_like(zoo_labels[:, :1], IGNORE), zoo_labels[:, :-1]], dim=1)
    return {"input_ids": ids, "labels": labels}


# --- the two implementations ------------------------------------------------------------------------
def autocast(dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()


class ZooSide:
    """A real ``Trainer`` (set up on the corpus) and prepared step batches from its own pipeline."""

    def __init__(self, setup: Setup, precision: str, scratch: Path, num_batches: int, **train: Any) -> None:
        from zoo.train.trainer import Trainer

        self.setup = setup
        self.precision = precision
        cfg = run_config(setup, scratch / f"run-{precision}", precision, corpus_path(setup, scratch), **train)
        self.trainer = Trainer(cfg)
        self.trainer.setup()
        batches = self.trainer._step_batches()
        self.micro = [next(batches)[1] for _ in range(num_batches)]
        batches.close()
        self.vocab = self.trainer.tokens.vocab_size
        self.i = 0

    def step(self) -> None:
        self.trainer._train_step(self.micro[self.i % len(self.micro)])
        self.i += 1

    def cpu_batches(self) -> list[Any]:
        return [m[0][1].to("cpu") for m in self.micro]

    def padding_fraction(self) -> float:
        return float(np.mean([(np.asarray(m[0][1].doc_ids) < 0).mean() for m in self.micro]))


def hf_model(setup: Setup, zoo_model: Any, attn: str) -> torch.nn.Module:
    """The transformers reference at the same config, holding the zoo model's initial weights."""
    import transformers

    backbone = zoo_model.backbone
    config = backbone.hf_config()
    config._attn_implementation = attn
    if setup.model == "bert":
        model = transformers.BertForPreTraining(config)
        model.bert.load_state_dict(backbone.hf_state_dict(), strict=False)
        heads = {**zoo_model.heads["mlm"].hf_state_dict(), **zoo_model.heads["nsp"].hf_state_dict()}
        model.load_state_dict(heads, strict=False)
    else:
        model = transformers.GPT2LMHeadModel(config)
        model.transformer.load_state_dict(backbone.hf_state_dict(), strict=False)
    return model.train()


class HFSide:
    """``transformers`` model + ``torch.optim.AdamW`` in a plain loop."""

    def __init__(self, setup: Setup, zoo_model: Any, attn: str, precision: str, batches: list[Any],
                 lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
        self.model = hf_model(setup, zoo_model, attn)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=betas, eps=eps,
                                           weight_decay=weight_decay)
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        self.inputs = [hf_inputs(setup, b) for b in batches]
        self.i = 0

    def step(self) -> None:
        kw = self.inputs[self.i % len(self.inputs)]
        self.i += 1
        with autocast(self.dtype):
            loss = self.model(**kw).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()


def build_variants(setup: Setup, names: list[str], scratch: Path, num_batches: int = 4,
                   **train: Any) -> tuple[dict[str, Callable[[], None]], dict[str, Any]]:
    """Step functions by variant name (``zoo-fp32``, ``zoo-bf16``, ``hf-<eager|sdpa>-<fp32|bf16>``)."""
    steps: dict[str, Callable[[], None]] = {}
    info: dict[str, Any] = {}
    zoo: dict[str, ZooSide] = {}
    for name in names:
        if name.startswith("zoo-"):
            zoo[name] = ZooSide(setup, name.split("-")[1], scratch, num_batches, **train)
            steps[name] = zoo[name].step
    first = next(iter(zoo.values()), None) or ZooSide(setup, "fp32", scratch, num_batches, **train)
    batches = first.cpu_batches()
    optim = first.trainer.cfg.optim
    info.update(vocab=first.vocab, padding_fraction=first.padding_fraction(),
                params=sum(p.numel() for p in first.trainer.model.parameters()),
                zoo_optimizer=("fused" if first.trainer.optimizer.defaults.get("fused") else
                               "foreach" if first.trainer.optimizer.defaults.get("foreach") else "for-loop"))
    for name in names:
        if name.startswith("hf-"):
            _, attn, precision = name.split("-")
            steps[name] = HFSide(setup, first.trainer.model, attn, precision, batches, optim.lr,
                                 tuple(optim.betas), optim.eps, optim.weight_decay).step
    return steps, info


# --- timing -------------------------------------------------------------------------------------------
def clock_fn(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, steps_per_round: int, warmup: int,
                clock: str = "wall", log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Seconds per step of each variant: ``rounds`` rounds, every variant timed once per round
    (order rotated each round, so slow phases of a shared machine hit all variants alike)."""
    now = clock_fn(clock)
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            gc.collect()
            t0 = now()
            for _ in range(steps_per_round):
                steps[name]()
            times[name].append((now() - t0) / steps_per_round)
        log(f"  round {r + 1}/{rounds}: " + "  ".join(f"{n} {times[n][-1]:.3f}s" for n in names))
    return times


def summarize(times: dict[str, list[float]], tokens_per_step: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"step_s": med, "tokens_per_s": tokens_per_step / med,
                     "min_step_s": min(ts), "max_step_s": max(ts), "rounds": len(ts)}
    return out


# --- memory -------------------------------------------------------------------------------------------
def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    kb = _status_kb("VmHWM") if Path("/proc/self/status").exists() else 0
    if not kb:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_probe(steps: Callable[[], None], n: int) -> dict[str, float]:
    """Peak RSS growth over ``n`` training steps, from the state after everything is built.

    The first step creates the optimiser state (AdamW moments) on both sides, so it is counted.
    """
    gc.collect()
    base = rss_mb()
    reset = reset_peak_rss()
    for _ in range(n):
        steps()
    peak = peak_rss_mb()
    return {"baseline_rss_mb": base, "peak_rss_mb": peak, "peak_growth_mb": peak - base, "hwm_reset": reset}


def run_probe(script: Path, args: list[str], timeout: int = 1800) -> dict[str, Any]:
    """Run ``script args`` in a fresh Python process; its last stdout line is a JSON object."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]}
    return json.loads(lines[-1])


# --- results ----------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import transformers

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # lowered by ATEN_CPU_CAPABILITY
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "runtime_env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE",
                                                            "OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY",
                                                            "ONEDNN_MAX_CPU_ISA")},
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any], markdown: str, out_dir: Path | None = None) -> Path:
    out = out_dir or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=1, default=str))
    (out / f"{name}.md").write_text(markdown + "\n")
    return out / f"{name}.json"


def best(summary: dict[str, dict[str, float]], prefix: str) -> tuple[str, float]:
    """The fastest variant whose name starts with ``prefix`` and its tokens/s."""
    cands = {k: v["tokens_per_s"] for k, v in summary.items() if k.startswith(prefix)}
    if not cands:
        return "", math.nan
    k = max(cands, key=cands.__getitem__)
    return k, cands[k]


@dataclass
class Scratch:
    """A temporary directory for run directories and generated corpora."""

    path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="zoo-perf-")))

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


def setup_dict(setup: Setup) -> dict[str, Any]:
    return asdict(setup)
