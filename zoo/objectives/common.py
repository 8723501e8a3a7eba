"""Tensor and numpy helpers shared by the built-in objectives.

* ``token_cross_entropy``: cross-entropy of a vocabulary projection computed in chunks of rows,
  optionally only at labelled rows, so the (rows x vocab) logits never exist all at once.
* ``gather_positions``: hidden states at given positions (sparse prediction).
* ``special_mask_of`` / ``non_special_ids``: what may be masked, and what random replacements draw from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from zoo.batch import Batch, SpecialTokens
from zoo.errors import DataError

IGNORE = -100  # label of positions without a prediction target (as in transformers)


def require_tokens(tokens: SpecialTokens, *names: str, by: str) -> None:
    """``SpecialTokens.require`` as a user-facing error."""
    try:
        tokens.require(*names, by=by)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


def special_mask_of(batch: Batch, tokens: SpecialTokens) -> np.ndarray:
    """(B, T) bool: special tokens and padding (never masked or corrupted)."""
    pad = np.asarray(batch.doc_ids) < 0
    if batch.special_mask is not None:
        return np.asarray(batch.special_mask, dtype=bool) | pad
    ids = np.asarray(batch.input_ids)
    return np.isin(ids, np.fromiter(tokens.all_ids, dtype=np.int64)) | pad


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


def _ce_chunk(x: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor) -> tuple[Tensor, Tensor]:
    logits = F.linear(x, weight, bias).float()  # (n, V)
    loss_sum = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    correct = (logits.detach().argmax(-1) == labels).sum()
    return loss_sum, correct


def token_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor,
                        chunk_rows: int = 4096, select: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Summed cross-entropy of ``x @ weight.T + bias`` against ``labels``.

    x: (..., h); labels: (...) with ``IGNORE`` where there is no target. With ``select`` only the
    labelled rows are projected (a data-dependent number of rows); without it every row is, which
    keeps shapes static. Chunks of ``chunk_rows`` rows are recomputed in the backward pass
    (activation checkpointing), so memory stays at one chunk of logits.
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
    chunk_rows = max(1, chunk_rows)
    if x.shape[0] <= chunk_rows:
        loss_sum, correct = _ce_chunk(x, weight, bias, labels)
        return loss_sum, correct, count
    loss_sum, correct = x.new_zeros((), dtype=torch.float32), count * 0
    remat = torch.is_grad_enabled()
    for i in range(0, x.shape[0], chunk_rows):
        args = (x[i:i + chunk_rows], weight, bias, labels[i:i + chunk_rows])
        part, ok = checkpoint(_ce_chunk, *args, use_reentrant=False) if remat else _ce_chunk(*args)
        loss_sum, correct = loss_sum + part, correct + ok
    return loss_sum, correct, count


def lm_flops(rows: int, hidden: int, vocab: int) -> float:
    """Forward FLOPs of projecting ``rows`` hidden states onto the vocabulary."""
    return 2.0 * rows * hidden * vocab


def labelled_rows(labels: object) -> int:
    """Number of entries != IGNORE in a numpy array or tensor."""
    if isinstance(labels, Tensor):
        return int((labels != IGNORE).sum())
    return int((np.asarray(labels) != IGNORE).sum())
