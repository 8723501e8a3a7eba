"""The t5 backbone against transformers, as measured figures (the tests only assert a bound, 1e-5).

    python perf/t5_parity.py              # prints the tables, writes perf/results/t5_parity.{json,md}
    python perf/t5_parity.py --out docs/results/t5

fp32 on CPU, the model of tests/unit/test_t5.py (vocabulary 97, hidden 64, 4 heads of 8, 2 encoder and
3 decoder layers, 8 relative buckets up to distance 16, dropout 0) holding transformers' random weights;
padded encoder (3 x 20) and decoder (3 x 9) inputs. Max |difference| over the real (non-padding) positions:

* forward: encoder and decoder states vs ``T5Model``, per attention kernel and feed-forward;
* gradients: of the same scalar (decoder states times fixed random weights), every parameter under
  transformers' name: the largest absolute difference, and the largest one relative to that
  parameter's largest gradient;
* logits vs ``T5ForConditionalGeneration`` (tied: d_model**-0.5 scale, shared embedding; untied: lm_head);
* the export: a span-lm model written as ``zoo export`` writes it (``zoo.interop.build_hf_model``),
  the export's self-check (``compare_outputs``), then ``save_pretrained`` and
  ``T5ForConditionalGeneration.from_pretrained`` of that directory against the run's logits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

VOCAB = 97


def tiny(**kw: Any) -> Any:
    from zoo.models.t5 import T5Backbone, T5Config

    values = dict(vocab_size=VOCAB, hidden_size=64, num_layers=2, num_decoder_layers=3, num_heads=4, head_dim=8,
                  dropout=0.0, attention_dropout=0.0, relative_attention_num_buckets=8,
                  relative_attention_max_distance=16)
    values.update(kw)
    torch.manual_seed(0)
    return T5Backbone(T5Config(**values)).eval()


def hf_with_weights_of(ours: Any, cls: Any) -> Any:
    torch.manual_seed(1)
    hf = cls(ours.hf_config()).eval()
    ours.load_hf_state_dict(hf.state_dict())  # transformers' random weights in both
    return hf


def inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    enc, dec = torch.randint(2, VOCAB, (3, 20), generator=g), torch.randint(2, VOCAB, (3, 9), generator=g)
    enc_mask, dec_mask = torch.ones(3, 20, dtype=torch.long), torch.ones(3, 9, dtype=torch.long)
    enc_mask[1, 13:], enc_mask[2, 5:], dec_mask[2, 6:] = 0, 0, 0
    return enc, enc_mask, dec, dec_mask


def layouts(enc_mask: torch.Tensor, dec_mask: torch.Tensor) -> tuple[Any, Any]:
    from zoo.models.attention import AttentionLayout

    return (AttentionLayout(doc_ids=torch.where(enc_mask.bool(), 0, -1)),
            AttentionLayout(causal=True, doc_ids=torch.where(dec_mask.bool(), 0, -1)))


def forward_and_gradients(kernel: str, feed_forward: str) -> dict[str, float]:
    import transformers

    ours = tiny(attention=kernel, feed_forward=feed_forward)
    hf = hf_with_weights_of(ours, transformers.T5Model)
    enc, enc_mask, dec, dec_mask = inputs()
    layout, dec_layout = layouts(enc_mask, dec_mask)
    ref = hf(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
    out = ours(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
    real = dec_mask.bool()
    with torch.no_grad():
        memory = ours.encode(enc, layout)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(5)) * real[..., None]
    (ref.last_hidden_state * w).sum().backward()
    (out * w).sum().backward()
    hf_params = dict(hf.named_parameters())
    worst_abs = worst_rel = 0.0
    for mine, theirs in ours._hf_names().items():
        g_ref, g = hf_params[theirs].grad, ours.get_parameter(mine).grad
        d = float((g_ref - g).abs().max())
        worst_abs, worst_rel = max(worst_abs, d), max(worst_rel, d / max(float(g_ref.abs().max()), 1e-30))
    return {"encoder": float((ref.encoder_last_hidden_state.detach() - memory)[enc_mask.bool()].abs().max()),
            "decoder": float((ref.last_hidden_state - out)[real].abs().max().detach()),
            "grad_abs": worst_abs, "grad_rel": worst_rel,
            "grad_shared": float((hf.shared.weight.grad - ours.tok_emb.weight.grad).abs().max())}


def logits(tied: bool) -> float:
    import transformers

    ours = tiny(tie_word_embeddings=tied)
    hf = hf_with_weights_of(ours, transformers.T5ForConditionalGeneration)
    if not tied:  # transformers ties lm_head whatever the config says: an own head, as T5 v1.1's
        ours.lm_head.weight.data.normal_(generator=torch.Generator().manual_seed(3))
        hf.lm_head = torch.nn.Linear(64, VOCAB, bias=False)
        hf.lm_head.weight.data.copy_(ours.lm_head.weight.data)
    enc, enc_mask, dec, dec_mask = inputs()
    layout, dec_layout = layouts(enc_mask, dec_mask)
    with torch.no_grad():
        ref = hf(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask).logits
        hidden = ours(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout)
        got = torch.nn.functional.linear(hidden * ours.output_scale, ours.output_projection().weight)
    return float((ref - got)[dec_mask.bool()].abs().max())


def export(directory: Path) -> dict[str, float]:
    """A span-lm model through the export path, then read back by transformers from the written directory."""
    import transformers

    from zoo.interop import build_hf_model, compare_outputs, plan_heads
    from zoo.objectives.compose import build_objective
    from zoo.objectives.spec import parse_spec
    from zoo.testing import special_tokens_for_tests
    from zoo.zoo_model import ZooModel

    tokens = special_tokens_for_tests(vocab_size=VOCAB, num_sentinels=8)
    backbone = tiny()
    model = ZooModel(backbone, build_objective(parse_spec("span-lm"), None, tokens, backbone.spec)).eval()
    plan = plan_heads(model)
    hf = build_hf_model(model, plan, tokens)
    enc, enc_mask, dec, dec_mask = inputs()
    self_check = compare_outputs(model, hf, plan, enc[:1, :12])  # as zoo export: unpadded probe rows
    hf.save_pretrained(str(directory))
    loaded = transformers.T5ForConditionalGeneration.from_pretrained(str(directory)).eval()
    layout, dec_layout = layouts(enc_mask, dec_mask)
    with torch.no_grad():
        ref = loaded(input_ids=enc, attention_mask=enc_mask, decoder_input_ids=dec,
                     decoder_attention_mask=dec_mask).logits
        got = model.heads["span-lm"](backbone(enc, layout, decoder_input_ids=dec, decoder_layout=dec_layout))
    return {"self_check": max(self_check.values()), "reloaded": float((ref - got)[dec_mask.bool()].abs().max())}


def main(argv: list[str] | None = None) -> int:
    import transformers

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help="results directory (default perf/results)")
    args = p.parse_args(argv)
    rows, payload = [], {"torch": torch.__version__, "transformers": transformers.__version__, "dtype": "float32",
                         "forward_and_gradients": {}, "logits": {}, "export": {}}
    for kernel in ("eager", "sdpa"):
        for ffn in ("relu", "gated-gelu"):
            d = forward_and_gradients(kernel, ffn)
            payload["forward_and_gradients"][f"{kernel} {ffn}"] = d
            rows.append([f"T5Model, {kernel}, {ffn}", f"{d['encoder']:.2e}", f"{d['decoder']:.2e}",
                         f"{d['grad_abs']:.2e} ({d['grad_rel']:.2e} relative)", f"{d['grad_shared']:.2e}"])
    for tied in (True, False):
        d = logits(tied)
        payload["logits"]["tied" if tied else "untied"] = d
        rows.append([f"T5ForConditionalGeneration logits, {'tied' if tied else 'untied'}", "-", f"{d:.2e}", "-", "-"])
    with tempfile.TemporaryDirectory() as tmp:
        d = export(Path(tmp))
    payload["export"] = d
    rows.append(["export: zoo export's self-check (unpadded)", "-", f"{d['self_check']:.2e}", "-", "-"])
    rows.append(["export: from_pretrained of the directory, padded", "-", f"{d['reloaded']:.2e}", "-", "-"])
    table = common.markdown_table(["comparison (fp32, CPU)", "encoder states", "decoder states / logits",
                                   "parameter gradients", "shared-embedding gradient"], rows)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(table)
    common.write_results("t5_parity", payload, table, args.out)
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
