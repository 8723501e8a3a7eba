"""Tensor and numpy helpers shared by the built-in objectives.

* ``token_cross_entropy``: cross-entropy of a vocabulary projection computed in chunks of rows,
  optionally only at labelled rows, so the (rows x vocab) logits never exist all at once; each
  chunk's gradients are computed with its logits (a fused linear + cross-entropy).
* ``gather_positions``: hidden states at given positions (sparse prediction).
* ``special_mask_of`` / ``non_special_ids``: what may be masked, and what random replacements draw from.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.batch import Batch, SpecialTokens
from zoo.errors import ConfigError, DataError
from zoo.models.base import BackboneSpec

IGNORE = -100  # label of positions without a prediction target (as in transformers)


def require_tokens(tokens: SpecialTokens, *names: str, by: str) -> None:
    """``SpecialTokens.require`` as a user-facing error."""
    try:
        tokens.require(*names, by=by)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def unmaskable_ids(tokens: SpecialTokens) -> np.ndarray:
    """Ids never masked or corrupted: every special token except [UNK], which stands for text and is
    masked like any other token, as Google's BERT does (it spares only [CLS] and [SEP])."""
    ids = {tokens.pad, tokens.cls, tokens.sep, tokens.mask, tokens.bos, tokens.eos, *tokens.sentinels}
    return np.array(sorted(i for i in ids if i is not None), dtype=np.int64)


def special_mask_of(batch: Batch, tokens: SpecialTokens) -> np.ndarray:
    """(B, T) bool: special tokens and padding (never masked or corrupted); [UNK] is maskable."""
    pad = np.asarray(batch.doc_ids) < 0
    if batch.special_mask is not None:
        return np.asarray(batch.special_mask, dtype=bool) | pad
    return np.isin(np.asarray(batch.input_ids), unmaskable_ids(tokens)) | pad


def non_special_ids(tokens: SpecialTokens) -> np.ndarray:
    """Vocabulary ids that are not special tokens (the pool random replacements draw from)."""
    ids = np.setdiff1d(np.arange(tokens.vocab_size, dtype=np.int64),
                       np.fromiter(tokens.all_ids, dtype=np.int64))
    if len(ids) == 0:
        raise DataError("the vocabulary has no ordinary (non-special) tokens")
    return ids


def gather_positions(hidden: Tensor, positions: Tensor) -> Tensor:
    """hidden (B, T, h), positions (B, P) -> (B, P, h)."""
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


# Logits of one chunk (fp32) stay below this many bytes; smaller chunks cost matmul efficiency.
CHUNK_BYTES = 256 * 2**20
# A low-precision logit gradient up to this size is kept for all rows (two matmuls in all).
GRAD_BYTES = 1024 * 2**20


def _softmax_(x: Tensor) -> Tensor:
    """Row softmax of a (n, V) fp32 tensor; in place on CPU, where fresh buffers cost page faults
    (the CPU kernel reads each element before writing it), a new tensor elsewhere."""
    if x.device.type == "cpu":
        return torch.ops.aten._softmax.out(x, -1, False, out=x)
    return torch.softmax(x, -1)


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``x @ weight.T + bias``, chunk by chunk, gradients computed in the forward.

    The loss is a sum of per-row terms, so d(loss)/d(logits) = softmax - onehot is known as soon as a
    chunk's logits are: each chunk's contribution to the gradients of x, weight and bias is computed
    right away (in low precision, while the whole (rows x vocab) gradient fits in ``GRAD_BYTES``,
    it is kept and the two gradient matmuls run once over all rows). Nothing is recomputed, no
    fp32 (rows x vocab) tensor outlives its chunk, the chunks share their buffers (fresh
    multi-megabyte allocations cost page faults on CPU), and the backward pass only scales the
    saved gradients by the incoming one. Matmuls run in ``dtype`` (the autocast dtype), softmax and
    loss in fp32.

    Per row: top = max logit; after the softmax, max p = exp(0) / sum = 1 / sum, so
    logsumexp = top - log(max p) exactly and without underflow. A row counts as correct when its
    label's logit is the row maximum (as argmax, except that a tie for the maximum counts).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor, chunk_rows: int,
                dtype: torch.dtype, grad: bool, has_ignore: bool) -> tuple[Tensor, Tensor]:
        n_rows, vocab = x.shape[0], weight.shape[0]
        dev = x.device
        xd, wd = x.to(dtype), weight.to(dtype)  # (N, h), (V, h)
        bd = bias.to(dtype) if bias is not None else None
        rows = min(chunk_rows, n_rows)
        low = dtype != torch.float32
        # In low precision the (N, V) logit gradient is kept whole when it is small enough, so the
        # gradients of x and weight are one matmul each instead of one per chunk.
        whole = grad and low and n_rows * vocab * wd.element_size() <= GRAD_BYTES
        # logits in ``dtype``, then the gradient (one chunk, or all rows when ``whole``)
        lp = torch.empty(n_rows if whole else rows, vocab, dtype=dtype, device=dev) if low else None
        buf = torch.empty(rows, vocab, dtype=torch.float32, device=dev)  # fp32 logits, then softmax
        loss = torch.zeros((), dtype=torch.float32, device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        if grad:
            gx = torch.empty(x.shape, dtype=dtype, device=dev)
            gwt = None if whole else torch.zeros(weight.shape[1], vocab, dtype=torch.float32, device=dev)  # (h, V)
            gb = torch.zeros(vocab, dtype=torch.float32, device=dev) if bias is not None else None
        for i in range(0, n_rows, chunk_rows):
            xc, lab = xd[i:i + chunk_rows], labels[i:i + chunk_rows]  # (n, h), (n,)
            n = xc.shape[0]
            out = (lp[i:i + n] if whole else lp[:n]) if low else buf[:n]
            if bd is None:
                torch.mm(xc, wd.t(), out=out)
            else:
                torch.addmm(bd, xc, wd.t(), out=out)
            logits = buf[:n]  # (n, V) fp32
            if low:
                logits.copy_(out)
            top = logits.amax(-1)  # (n,)
            valid = lab != IGNORE
            safe = torch.where(valid, lab, 0)[:, None]  # (n, 1)
            target = logits.gather(1, safe).squeeze(1)  # (n,)
            correct += (valid & (target >= top)).sum()
            p = _softmax_(logits)
            lse = top - p.amax(-1).log()
            loss += torch.where(valid, lse - target, 0.0).sum()
            if not grad:
                continue
            p.scatter_add_(1, safe, -valid[:, None].to(p.dtype))  # softmax - onehot
            if has_ignore:
                p.mul_(valid[:, None])
            if gb is not None:
                gb += p.sum(0)
            g = out.copy_(p) if low else p  # (n, V) in the matmul dtype
            if whole:
                continue
            torch.mm(g, wd, out=gx[i:i + n])
            if low:
                gwt += xc.t() @ g
            else:
                gwt.addmm_(xc.t(), g)
        if grad and whole:
            torch.mm(lp, wd, out=gx)  # (N, h)
            gwt = (xd.t() @ lp).float()  # (h, V)
        if grad:
            ctx.save_for_backward(gx, gwt, gb if gb is not None else gwt.new_zeros(0))
            ctx.dtypes = (x.dtype, weight.dtype, bias is not None)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor, _: Any) -> tuple[Tensor | None, ...]:
        gx, gwt, gb = ctx.saved_tensors
        x_dtype, w_dtype, has_bias = ctx.dtypes
        return ((gx * grad_loss.to(gx.dtype)).to(x_dtype), (gwt.t() * grad_loss).to(w_dtype),
                (gb * grad_loss).to(w_dtype) if has_bias else None, None, None, None, None, None)


def token_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor,
                        chunk_rows: int = 4096, select: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Summed cross-entropy of ``x @ weight.T + bias`` against ``labels``.

    x: (..., h); labels: (...) with ``IGNORE`` where there is no target. With ``select`` only the
    labelled rows are projected (a data-dependent number of rows); without it every row is, which
    keeps shapes static. Logits are computed ``chunk_rows`` rows at a time (fewer when one chunk's
    fp32 logits would exceed ``CHUNK_BYTES``) and each chunk's gradients are computed as soon as
    its logits exist (``_LinearCrossEntropy``), so fp32 logits exist for one chunk at a time.
    Returns (loss_sum, correct, count), all scalar tensors.
    """
    x = x.reshape(-1, x.shape[-1])  # (N, h)
    labels = labels.reshape(-1)
    if select:
        keep = labels != IGNORE
        x, labels = x[keep], labels[keep]
    count = (labels != IGNORE).sum()
    if x.shape[0] == 0:
        zero = x.sum() * 0.0 + weight.sum() * 0.0  # keeps the graph connected
        return zero, count * 0, count
    rows = max(1, min(chunk_rows, CHUNK_BYTES // (4 * weight.shape[0])))
    chunk_rows = -(-x.shape[0] // -(-x.shape[0] // rows))  # as many chunks as needed, of equal size
    device = x.device.type
    autocast = torch.is_autocast_enabled(device)
    dtype = torch.get_autocast_dtype(device) if autocast else x.dtype
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    has_ignore = not select and (torch.compiler.is_compiling() or bool((labels == IGNORE).any()))
    with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
        loss_sum, correct = _LinearCrossEntropy.apply(x, weight, bias, labels, chunk_rows, dtype, grad, has_ignore)
    return loss_sum, correct, count


def lm_flops(rows: int, hidden: int, vocab: int) -> float:
    """Forward FLOPs of projecting ``rows`` hidden states onto the vocabulary."""
    return 2.0 * rows * hidden * vocab


def labelled_rows(labels: object) -> int:
    """Number of entries != IGNORE in a numpy array or tensor."""
    if isinstance(labels, Tensor):
        return int((labels != IGNORE).sum())
    return int((np.asarray(labels) != IGNORE).sum())


def document_runs(doc_ids: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of one document id >= 0 in a row."""
    change = np.flatnonzero(np.diff(doc_ids)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(doc_ids)]])
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if doc_ids[s] >= 0]


def check_vocab(tokens: SpecialTokens, spec: BackboneSpec, by: str) -> None:
    if tokens.vocab_size > spec.vocab_size:
        raise ConfigError(f"{by}: the tokenizer has {tokens.vocab_size} tokens but the backbone's "
                          f"vocab_size is {spec.vocab_size}; set backbone.vocab_size >= {tokens.vocab_size}")
