"""T5's text-to-text fine-tuning of an encoder-decoder (Raffel et al. 2020, section 2.4, appendix D).

The encoder reads ``prefix field: text ...`` (``verbalizers``) ended by the end-of-text token; the
decoder, from its start token (the pad id), is trained with the pretraining LM loss (the backbone's own
output projection, no new parameters) to write the label word and the end-of-text token. Predictions:

  greedy  (default, what T5 did) decode until end-of-text; an output that is not a label word scores as
          wrong (binary tasks: the other class; otherwise no class), an STS-B output that is not a
          number as -1 (T5's ``string_to_float`` default)
  rank    the candidate (label word, or an STS-B value 0.0, 0.2, ..., 5.0) with the highest summed
          log-likelihood, end-of-text included
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from zoo.batch import SpecialTokens
from zoo.benchmarks.data import Example, TaskData
from zoo.benchmarks.encoding import plain_tokenizer, truncate_pair
from zoo.benchmarks.recipe import (
    FinetuneResult,
    Progress,
    Recipe,
    autocast,
    make_optimizer,
)
from zoo.benchmarks.scoring import compute_metrics
from zoo.benchmarks.verbalizers import STSB_CANDIDATES, Template, stsb_string, template_for
from zoo.errors import ConfigError, DataError, NonFiniteLossError
from zoo.family import Family
from zoo.models.attention import AttentionLayout
from zoo.models.base import Backbone
from zoo.objectives.common import IGNORE

log = logging.getLogger(__name__)

INVALID_VALUE = -1.0  # an STS-B output that is not a number (T5's string_to_float default)


def resolve_method(method: str, backbone: Backbone) -> str:
    """``head`` or ``text-to-text``; ``auto`` is text-to-text for an encoder-decoder (as T5 fine-tuned),
    a task head on the backbone's states otherwise."""
    enc_dec = backbone.family == Family.ENCODER_DECODER
    if method == "auto":
        return "text-to-text" if enc_dec else "head"
    if method == "text-to-text" and not enc_dec:
        raise ConfigError(f"method=text-to-text needs an encoder-decoder backbone (t5); {backbone.name!r} is "
                          f"{backbone.family}: use method=head")
    return method


def method_of(recipe: dict[str, Any]) -> str:
    """The fine-tuning method a recorded recipe used: results without one (older, or ``auto`` on an
    encoder or decoder) used a task head."""
    m = recipe.get("method", "auto")
    return "head" if m == "auto" else m


# --- encoding ----------------------------------------------------------------------------------------

@dataclass
class TextToText:
    """One split: encoder inputs (each ended by end-of-text), decoder targets (label word + end-of-text)
    and the reference labels (class ids or floats)."""

    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    labels: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class Verbalized:
    """A task's splits encoded for text-to-text, with the candidates' token ids and decoded strings."""

    train: TextToText
    evals: dict[str, TextToText]
    candidates: list[np.ndarray]  # label words (class order) or STS-B values, each + end-of-text
    candidate_texts: list[str]  # as the tokenizer decodes them
    max_length: int
    regression: bool


def end_token(special: SpecialTokens) -> int:
    end = special.eos if special.eos is not None else special.sep
    if end is None:
        raise DataError("text-to-text fine-tuning needs an end-of-text (or separator) token in the tokenizer")
    return end


def _ids(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def verbalize(data: TaskData, tokenizer: Tokenizer, special: SpecialTokens, max_length: int) -> Verbalized:
    """Encode every split of ``data`` with its task's template (``verbalizers.TEMPLATES``)."""
    template = template_for(data.spec.name, data.labels)
    tok = plain_tokenizer(tokenizer)
    end = end_token(special)
    regression = template.words is None
    words = list(STSB_CANDIDATES) if regression else [template.words[lab] for lab in data.labels]  # type: ignore[index]
    cand = _ids(tok, words)
    for w, ids in zip(words, cand, strict=True):
        if not ids:
            raise DataError(f"{data.spec.name}: the tokenizer encodes the label word {w!r} as no tokens")
    seen: dict[tuple[int, ...], str] = {}
    for w, ids in zip(words, cand, strict=True):
        if tuple(ids) in seen:
            raise DataError(f"{data.spec.name}: the tokenizer cannot tell the label words {seen[tuple(ids)]!r} and "
                            f"{w!r} apart (both are tokens {ids}); its vocabulary lacks this language: "
                            f"use method=head")
        seen[tuple(ids)] = w
    candidates = [np.asarray([*ids, end], dtype=np.int64) for ids in cand]

    def enc(examples: list[Example]) -> TextToText:
        inputs, truncated = _encode_inputs(examples, tok, template, end, max_length)
        labels = [ex.label for ex in examples]
        if any(lab is None for lab in labels):
            raise DataError(f"{data.spec.name}: text-to-text fine-tuning needs labelled examples")
        if regression:
            tg = [np.asarray([*_ids(tok, [stsb_string(y)])[0], end], dtype=np.int64) for y in labels]  # type: ignore[arg-type]
            y = np.asarray(labels, dtype=np.float64)
        else:
            tg = [candidates[int(y)] for y in labels]  # type: ignore[arg-type]
            y = np.asarray(labels, dtype=np.int64)
        return TextToText(inputs, tg, y, truncated)

    train = enc(data.train.examples)
    evals = {k: enc(v.examples) for k, v in data.evals.items()}
    for name, split in [("train", train), *evals.items()]:
        if split.truncated:
            log.info("%s %s: truncated %d of %d inputs to %d tokens", data.spec.name, name, split.truncated,
                     len(split), max_length)
    texts = [tok.decode(ids.tolist(), skip_special_tokens=True).strip() for ids in candidates]
    return Verbalized(train, evals, candidates, texts, max_length, regression)


def _encode_inputs(examples: list[Example], tok: Tokenizer, t: Template, end: int,
                   max_length: int) -> tuple[list[np.ndarray], int]:
    names = _ids(tok, [f"{t.prefix} {t.fields[0][0]}:", *(f"{name}:" for name, _ in t.fields[1:])])
    fixed = sum(len(x) for x in names) + 1  # + end-of-text
    budget = max_length - fixed
    if budget < 2:
        raise DataError(f"max_length {max_length} leaves no room for text after the {fixed}-token template")
    a = _ids(tok, [ex.text_a for ex in examples])
    b = _ids(tok, [ex.text_b or "" for ex in examples]) if len(t.fields) > 1 else None
    out, truncated = [], 0
    for i, ids_a in enumerate(a):
        ids_b = b[i] if b is not None else []
        la, lb = truncate_pair(len(ids_a), len(ids_b), budget) if b is not None else (min(len(ids_a), budget), 0)
        truncated += la < len(ids_a) or lb < len(ids_b)
        text = {"a": ids_a[:la], "b": ids_b[:lb]}
        row: list[int] = []
        for name_ids, (_, which) in zip(names, t.fields, strict=True):
            row += name_ids + text[which]
        out.append(np.asarray([*row, end], dtype=np.int64))
    return out, truncated


# --- the model -------------------------------------------------------------------------------------------

class TextToTextModel(nn.Module):
    """An encoder-decoder backbone read through its own output projection (scaled as it scales it)."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.scale = float(getattr(backbone, "output_scale", 1.0))

    def logits(self, hidden: Tensor) -> Tensor:  # (..., h) -> (..., vocab)
        return F.linear(hidden * self.scale, self.backbone.output_projection().weight)

    def forward(self, input_ids: Tensor, doc_ids: Tensor, decoder_input_ids: Tensor,
                decoder_doc_ids: Tensor | None = None) -> Tensor:
        """Decoder logits (B, Td, vocab)."""
        hidden = self.backbone(input_ids, AttentionLayout(doc_ids=doc_ids), decoder_input_ids=decoder_input_ids,
                               decoder_layout=AttentionLayout(causal=True, doc_ids=decoder_doc_ids))
        return self.logits(hidden)


def pad_rows(rows: list[np.ndarray], pad: int) -> tuple[Tensor, Tensor]:
    """(ids (B, T) padded with ``pad``, doc ids (B, T): 0 real, -1 padding)."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    docs = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)], docs[i, :len(r)] = r, 0
    return torch.from_numpy(ids), torch.from_numpy(docs)


def seq2seq_batch(inputs: list[np.ndarray], targets: list[np.ndarray], pad: int,
                  device: torch.device | str = "cpu") -> tuple[Tensor, ...]:
    """(input ids, doc ids, decoder input ids, decoder doc ids, labels): the decoder reads the target
    shifted right behind the start token (the pad id), as transformers' T5 does; labels are the target,
    ``IGNORE`` on padding."""
    ids, docs = pad_rows(inputs, pad)
    dec_ids, dec_docs = pad_rows([np.concatenate([[pad], t[:-1]]) for t in targets], pad)
    labels, _ = pad_rows(targets, IGNORE)
    return tuple(x.to(device) for x in (ids, docs, dec_ids, dec_docs, labels))


def text_to_text_loss(model: TextToTextModel, batch: tuple[Tensor, ...]) -> Tensor:
    """Mean cross-entropy over the target tokens (transformers' T5ForConditionalGeneration loss)."""
    ids, docs, dec_ids, dec_docs, labels = batch
    logits = model(ids, docs, dec_ids, dec_docs).float()  # (B, Td, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def greedy_decode(model: TextToTextModel, inputs: list[np.ndarray], pad: int, end: int, max_new_tokens: int,
                  device: torch.device | str = "cpu") -> list[list[int]]:
    """Greedy decoding from the start token (the pad id) until end-of-text or ``max_new_tokens``; each
    row's tokens without the end-of-text token."""
    ids, docs = (x.to(device) for x in pad_rows(inputs, pad))
    layout = AttentionLayout(doc_ids=docs)
    bb = model.backbone
    memory = bb.encode(ids, layout)  # (B, Te, h)
    dec = torch.full((len(inputs), 1), pad, dtype=torch.long, device=ids.device)
    done = torch.zeros(len(inputs), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        hidden = bb.decode(dec, memory, None, layout)  # (B, t, h)
        nxt = model.logits(hidden[:, -1]).argmax(-1)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        dec = torch.cat([dec, nxt[:, None]], 1)
        done |= nxt == end
        if bool(done.all()):
            break
    out = []
    for row in dec[:, 1:].tolist():
        out.append(row[:row.index(end)] if end in row else row)
    return out


@torch.no_grad()
def rank_scores(model: TextToTextModel, inputs: list[np.ndarray], candidates: list[np.ndarray], pad: int,
                device: torch.device | str = "cpu") -> np.ndarray:
    """(B, K) summed log-likelihood of each candidate (end-of-text included) given each input."""
    ids, docs = (x.to(device) for x in pad_rows(inputs, pad))
    layout = AttentionLayout(doc_ids=docs)
    bb = model.backbone
    memory = bb.encode(ids, layout)
    out = np.zeros((len(inputs), len(candidates)))
    for k, cand in enumerate(candidates):
        target = torch.from_numpy(cand).to(ids.device)
        dec = torch.cat([torch.tensor([pad], device=ids.device), target[:-1]])[None].expand(len(inputs), -1)
        logp = model.logits(bb.decode(dec, memory, None, layout)).float().log_softmax(-1)  # (B, n, V)
        out[:, k] = logp.gather(-1, target[None, :, None].expand(len(inputs), -1, 1)).sum((1, 2)).double().cpu().numpy()
    return out


# --- scoring decoded strings -------------------------------------------------------------------------------

def parse_prediction(text: str, candidate_texts: list[str], regression: bool) -> float | int | None:
    """A decoded output -> class id (the candidate it spells), a float (STS-B), or None when it is neither."""
    text = text.strip()
    if regression:
        try:
            value = float(text.replace(" ", ""))
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    for i, c in enumerate(candidate_texts):
        if text == c or text.replace(" ", "") == c.replace(" ", ""):
            return i
    return None


def score_outputs(spec: Any, texts: list[str], candidate_texts: list[str], labels: np.ndarray) -> tuple[
        dict[str, float], list[float], int]:
    """The task's metrics of decoded outputs: (scores, per-example predictions, invalid outputs). An
    invalid output scores as wrong: -1 for STS-B, the other class of a binary task, no class otherwise."""
    regression = spec.is_regression
    preds: list[float] = []
    invalid = 0
    for text, ref in zip(texts, labels, strict=True):
        p = parse_prediction(text, candidate_texts, regression)
        if p is None:
            invalid += 1
            p = INVALID_VALUE if regression else (1 - int(ref) if len(candidate_texts) == 2 else -1)
        preds.append(float(p) if regression else int(p))
    arr = np.asarray(preds, dtype=np.float64 if regression else np.int64)
    return compute_metrics(spec, arr, labels), preds, invalid


# --- fine-tuning ---------------------------------------------------------------------------------------------

def finetune_text_to_text(backbone: Backbone, tokenizer: Tokenizer, special: SpecialTokens, data: TaskData,
                          recipe: Recipe, seed: int, dev: torch.device, progress: Progress | None,
                          prepared: Verbalized | None, label: str) -> FinetuneResult:
    """Fine-tune a copy of ``backbone`` text-to-text on ``data.train``; score it on ``data.evals``."""
    prepared = prepared or verbalize(data, tokenizer, special, recipe.max_length)
    start = time.perf_counter()
    pad, end = special.pad, end_token(special)
    plain = plain_tokenizer(tokenizer)
    train = prepared.train
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = TextToTextModel(copy.deepcopy(backbone)).to(dev)
        n = len(train)
        total = math.ceil(n / recipe.batch_size) * recipe.epochs
        opt, sched = make_optimizer(model, recipe, total)
        shuffle = torch.Generator().manual_seed(seed)
        if progress is not None:
            progress.start(label, total)
        model.train()
        step, losses = 0, []
        try:
            for _ in range(recipe.epochs):
                order = torch.randperm(n, generator=shuffle).numpy()
                losses = []
                for i in range(0, n, recipe.batch_size):
                    idx = order[i:i + recipe.batch_size]
                    batch = seq2seq_batch([train.inputs[j] for j in idx], [train.targets[j] for j in idx], pad, dev)
                    with autocast(dev):
                        loss = text_to_text_loss(model, batch)
                    if not torch.isfinite(loss):
                        raise NonFiniteLossError(f"{label}: non-finite fine-tuning loss at step {step}; "
                                                 f"lower the learning rate (--lr, now {recipe.lr})")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if recipe.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                    opt.step()
                    sched.step()
                    step += 1
                    losses.append(loss.item())
                    if progress is not None:
                        progress.advance()
        finally:
            if progress is not None:
                progress.finish()
        model.eval()
        scores: dict[str, float] = {}
        predictions: dict[str, list[float]] = {}
        max_new = max(len(c) for c in prepared.candidates) + 1
        for split, enc in prepared.evals.items():
            texts: list[str] = []
            for i in range(0, len(enc), recipe.eval_batch_size):
                rows = enc.inputs[i:i + recipe.eval_batch_size]
                with autocast(dev):
                    if recipe.decoding == "rank":
                        best = rank_scores(model, rows, prepared.candidates, pad, dev).argmax(1)
                        texts += [prepared.candidate_texts[k] for k in best]
                    else:
                        texts += [plain.decode(ids, skip_special_tokens=True)
                                  for ids in greedy_decode(model, rows, pad, end, max_new, dev)]
            metrics, preds, invalid = score_outputs(data.spec, texts, prepared.candidate_texts, enc.labels)
            if invalid:
                log.info("%s %s: %d of %d outputs are not a label (scored as wrong)", label, split, invalid, len(enc))
            predictions[split] = preds
            prefix = f"{split}/" if len(data.spec.eval_splits) > 1 else ""
            scores.update({prefix + k: v for k, v in metrics.items()})
    return FinetuneResult(scores, n, {k: len(v) for k, v in prepared.evals.items()}, step,
                          float(np.mean(losses)), time.perf_counter() - start, predictions)

