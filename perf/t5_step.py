"""The t5 backbone: training and scoring throughput vs transformers, and FLOPs per corpus token per family.

    python perf/t5_step.py --size tiny             # span-lm training + scoring vs T5ForConditionalGeneration
    python perf/t5_step.py --size mini
    python perf/t5_step.py --flops                 # FLOPs per corpus token: gpt clm, bert mlm, t5 span-lm

Throughput: the zoo side is a real ``Trainer`` (fp32, CPU) stepping on span-lm batches from its own
pipeline on the corpus (T5 span corruption: encoder input with sentinels, decoder target); the
reference is ``transformers.T5ForConditionalGeneration`` at the same config holding the zoo model's
initial weights, fed the same batches (``attention_mask`` / ``decoder_attention_mask`` from the
padding, ``labels`` the decoder targets) and stepped by ``torch.optim.AdamW`` with the same
hyper-parameters and the same gradient clipping. Dropout is 0 on both sides, so the first losses
must agree (printed). A training step is forward + backward + optimiser step; a scoring step is a
forward pass computing the loss under ``torch.no_grad`` in eval mode. Rounds are interleaved
(every variant once per round, order rotated) and the median step time is reported, in encoder
(input) tokens per second and corpus tokens per second (the raw tokens a row corrupts).

FLOPs (``--flops``): the FLOPs the trainer charges one training step (forward + backward = 3 x the
forward matmul FLOPs, heads included), divided by the corpus tokens the step consumes (rows x the raw
row length the objective requests). The forward FLOPs of each family at one size are checked against
``torch.utils.flop_counter`` (the eager attention kernel, whose score and weighted-sum matmuls it sees).
Writes perf/results/t5_step-<size>.{json,md} or perf/results/t5_flops.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

FAMILIES = (("gpt", "clm"), ("bert", "mlm"), ("t5", "span-lm"))


def zoo_config(backbone: str, objective: str, size: str, corpus: Path, out: Path, seq_len: int, batch_size: int,
               vocab: int, seed: int = 0, attention: str = "auto") -> Any:
    from zoo.train.resolve import resolve

    return resolve({
        "objective": objective, "backbone": backbone, "size": size, "out": str(out),
        "model": {"dropout": 0.0, "attention_dropout": 0.0, "attention": attention},
        "data": {"source": str(corpus), "on_decode_error": "replace"}, "tokenizer": {"vocab_size": vocab},
        "train": {"budget": "1000000steps", "seq_len": seq_len, "batch_size": batch_size, "precision": "fp32",
                  "eval_every": 0, "log_every": 1000000, "seed": seed, "device": "cpu"}})


def zoo_trainer(cfg: Any, num_batches: int) -> tuple[Any, list[Any]]:
    """A set-up ``Trainer`` and ``num_batches`` prepared step micro-batch lists from its pipeline."""
    from zoo.train.trainer import Trainer

    trainer = Trainer(cfg)
    trainer.setup()
    batches = trainer._step_batches()
    micro = [next(batches)[1] for _ in range(num_batches)]
    batches.close()
    return trainer, micro


def hf_t5(trainer: Any) -> torch.nn.Module:
    """T5ForConditionalGeneration at the zoo model's config, holding its current weights."""
    import transformers

    backbone = trainer.model.backbone
    config = backbone.hf_config()
    config._attn_implementation = "eager"
    model = transformers.T5ForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(backbone.hf_state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise SystemExit(f"weights do not map onto T5ForConditionalGeneration: missing {missing}, "
                         f"unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model


def hf_inputs(batch: Any) -> dict[str, torch.Tensor]:
    """T5ForConditionalGeneration's arguments for a prepared span-lm batch (decoder inputs shifted already)."""
    (target,) = batch.targets.values()
    return {"input_ids": batch.input_ids, "attention_mask": (batch.doc_ids >= 0).long(),
            "decoder_input_ids": batch.decoder_input_ids,
            "decoder_attention_mask": (batch.decoder_doc_ids >= 0).long(), "labels": target["labels"]}


class Steps:
    """Training and scoring steps of both implementations over the same batches."""

    def __init__(self, trainer: Any, micro: list[Any]) -> None:
        self.trainer, self.micro = trainer, micro
        self.cpu = [m[0][1] for m in micro]
        self.inputs = [hf_inputs(b) for b in self.cpu]
        optim = trainer.cfg.optim
        self.clip = optim.grad_clip
        self.hf = hf_t5(trainer).train()
        self.hf_opt = torch.optim.AdamW(self.hf.parameters(), lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                                        weight_decay=optim.weight_decay)
        self.i = {"zoo": 0, "hf": 0}

    def first_losses(self) -> tuple[float, float]:
        with torch.no_grad():
            self.trainer.model.eval()
            self.hf.eval()
            zoo = float(self.trainer.forward(self.cpu[0]).loss)
            hf = float(self.hf(**self.inputs[0]).loss)
        self.trainer.model.train()
        self.hf.train()
        return zoo, hf

    def _next(self, side: str) -> int:
        self.i[side] += 1
        return (self.i[side] - 1) % len(self.cpu)

    def zoo_train(self) -> None:
        self.trainer._train_step(self.micro[self._next("zoo")])

    def hf_train(self) -> None:
        loss = self.hf(**self.inputs[self._next("hf")]).loss
        loss.backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.hf.parameters(), self.clip)
        self.hf_opt.step()
        self.hf_opt.zero_grad(set_to_none=True)

    def zoo_score(self) -> None:
        self.trainer.model.eval()
        with torch.no_grad():
            self.trainer.forward(self.cpu[self._next("zoo")]).loss.item()
        self.trainer.model.train()

    def hf_score(self) -> None:
        self.hf.eval()
        with torch.no_grad():
            self.hf(**self.inputs[self._next("hf")]).loss.item()
        self.hf.train()


def throughput(args: argparse.Namespace, scratch: Path) -> int:
    cfg = zoo_config("t5", "span-lm", args.size, common.CORPUS, scratch / "run", args.seq_len, args.batch_size,
                     args.vocab)
    print(f"t5 span-lm size {args.size}, T{args.seq_len} B{args.batch_size}, vocab {args.vocab}: building", flush=True)
    trainer, micro = zoo_trainer(cfg, args.batches)
    steps = Steps(trainer, micro)
    zoo_loss, hf_loss = steps.first_losses()
    enc = sum(int(b.input_ids.numel()) for b in steps.cpu) / len(steps.cpu)
    dec = sum(int(b.decoder_input_ids.numel()) for b in steps.cpu) / len(steps.cpu)
    raw = args.batch_size * trainer.parts.parts[0].objective.row_length(args.seq_len)
    params = sum(p.numel() for p in trainer.model.parameters())
    print(f"{params / 1e6:.2f}M parameters; per step {enc:.0f} encoder, {dec:.0f} decoder, {raw} corpus tokens; "
          f"first loss zoo {zoo_loss:.5f} transformers {hf_loss:.5f}", flush=True)
    variants = {"zoo-train": steps.zoo_train, "hf-train": steps.hf_train,
                "zoo-score": steps.zoo_score, "hf-score": steps.hf_score}
    times = common.interleaved(variants, args.rounds, args.steps, args.warmup, args.clock)
    summary = common.summarize(times, int(enc))
    rows = []
    for name in variants:
        kind = name.split("-")[1]
        s = summary[name]
        ratio = s["tokens_per_s"] / summary[f"hf-{kind}"]["tokens_per_s"]
        rows.append([name, s["tokens_per_s"], s["tokens_per_s"] * raw / enc, s["step_s"] * 1000, ratio])
    table = common.markdown_table(["variant", "encoder tokens/s", "corpus tokens/s", "step ms", "x transformers"],
                                  rows)
    print(table)
    payload = {"machine": common.machine(), "size": args.size, "seq_len": args.seq_len, "batch_size": args.batch_size,
               "vocab": args.vocab, "params": params, "encoder_tokens_per_step": enc, "decoder_tokens_per_step": dec,
               "corpus_tokens_per_step": raw, "first_loss": {"zoo": zoo_loss, "transformers": hf_loss},
               "clock": args.clock, "rounds": args.rounds, "steps_per_round": args.steps, "summary": summary,
               "times": times}
    common.write_results(f"t5_step-{args.size}{args.tag}", payload, table, args.out)
    return 0


def counted_forward_flops(trainer: Any, batch: Any) -> float:
    """Matmul FLOPs of one forward pass of the model on ``batch`` as torch.utils.flop_counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    trainer.model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        trainer.forward(batch)
    trainer.model.train()
    return float(counter.get_total_flops())


def flops_table(args: argparse.Namespace, scratch: Path) -> int:
    rows, out = [], []
    for size in args.sizes.split(","):
        for backbone, objective in FAMILIES:
            cfg = zoo_config(backbone, objective, size, common.CORPUS, scratch / f"{backbone}-{size}", args.seq_len,
                             args.batch_size, args.vocab, attention="eager")  # matmuls flop_counter sees
            trainer, micro = zoo_trainer(cfg, 1)
            batches = [m[1] for m in micro[0]]
            charged = trainer._step_flops(batches)  # training FLOPs of the step (3 x forward)
            b = batches[0]
            objective_ = trainer.parts.parts[0].objective
            corpus = len(batches) * args.batch_size * objective_.row_length(args.seq_len)
            enc = int(b.input_ids.numel())
            dec = int(b.decoder_input_ids.numel()) if b.decoder_input_ids is not None else 0
            item = {"size": size, "backbone": backbone, "objective": objective,
                    "params": sum(p.numel() for p in trainer.model.parameters()),
                    "train_flops_per_step": charged, "corpus_tokens_per_step": corpus, "input_tokens_per_step": enc,
                    "decoder_tokens_per_step": dec, "flops_per_corpus_token": charged / corpus,
                    "flops_per_input_token": charged / enc}
            if args.check and size == args.check:
                item["flop_counter_forward"] = counted_forward_flops(trainer, b.to("cpu"))
                item["charged_forward"] = charged / 3
            out.append(item)
            rows.append([size, f"{backbone} {objective}", f"{item['params'] / 1e6:.2f}M", enc, dec, corpus,
                         f"{charged / corpus:.4g}", f"{charged / enc:.4g}"])
            print(json.dumps(item), flush=True)
            del trainer
    table = common.markdown_table(["size", "family", "params", "encoder/input tokens", "decoder tokens",
                                   "corpus tokens", "training FLOPs / corpus token", "per input token"], rows)
    print(table)
    for item in out:
        if "flop_counter_forward" in item:
            print(f"{item['size']} {item['backbone']} {item['objective']}: forward FLOPs charged "
                  f"{item['charged_forward']:.6g}, torch.utils.flop_counter {item['flop_counter_forward']:.6g} "
                  f"(ratio {item['charged_forward'] / item['flop_counter_forward']:.4f})")
    payload = {"machine": common.machine(), "seq_len": args.seq_len, "batch_size": args.batch_size,
               "vocab": args.vocab, "families": out}
    common.write_results(f"t5_flops{args.tag}", payload, table, args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", help="model size preset of the throughput run")
    p.add_argument("--seq-len", type=int, default=128, help="encoder input length (and the row length of gpt/bert)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--vocab", type=int, default=8192, help="tokenizer size to train")
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2, help="steps per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time (default) or process CPU time (steadier on a busy machine)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--flops", action="store_true", help="print the FLOPs-per-token table instead")
    p.add_argument("--sizes", default="tiny,base", help="sizes of the FLOPs table")
    p.add_argument("--check", default="tiny", help="size whose forward FLOPs are checked against flop_counter "
                                                   "('' for none)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default perf/results)")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    if not common.CORPUS.is_dir():
        raise SystemExit(f"the corpus {common.CORPUS} is missing")
    scratch = common.Scratch()
    try:
        return flops_table(args, scratch.path) if args.flops else throughput(args, scratch.path)
    finally:
        scratch.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
