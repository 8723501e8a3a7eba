"""Attention in one place: a layout that *describes* who sees whom, and three kernels behind one call.

Kernels
  eager     plain softmax(QK^T/sqrt(d))V, the reference the others are tested against
  sdpa      torch.nn.functional.scaled_dot_product_attention (flash / memory-efficient / math);
            on CPU with dropout or in bf16, materialised scores with an additive mask (faster there)
  xformers  xformers.ops.memory_efficient_attention, CUDA only, never required

Layouts (``AttentionLayout``)
  padding          doc_ids = 0 for real tokens, -1 for padding
  causal           causal=True
  prefix LM        causal=True plus ``prefix`` (bidirectional prefix, causal rest)
  packed documents doc_ids = 0, 1, 2, ... per document in a row (contiguous runs), -1 padding:
                   block-diagonal attention, causal or not, so documents never see each other

Query i may attend key j iff ``doc[i] == doc[j] and (not causal or j <= i or prefix[j])``.
Padding positions form their own block, so no query row is ever fully masked (no NaNs).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ConfigError

KERNELS = ("eager", "sdpa", "xformers")


@dataclass
class AttentionLayout:
    causal: bool = False
    doc_ids: Tensor | None = None  # (B, T) int, -1 = padding; None = one full document per row
    prefix: Tensor | None = None  # (B, T) bool, positions of the bidirectional prefix (causal only)

    def __post_init__(self) -> None:
        if self.prefix is not None and not self.causal:
            raise ValueError("a prefix layout must be causal (the prefix is the bidirectional part)")

    def dense_mask(self, seq_len: int, device: torch.device) -> Tensor | None:
        """Boolean mask (B|1, 1, T, T), True where attention is allowed; None if nothing is masked."""
        if self.doc_ids is None and self.prefix is None:
            if not self.causal:
                return None
            return _causal(seq_len, device)[None, None]
        mask = None
        if self.doc_ids is not None:
            d = self.doc_ids.to(device)
            mask = d[:, :, None] == d[:, None, :]  # (B, T, T)
        if self.causal:
            allowed = _causal(seq_len, device)[None]  # (1, T, T)
            if self.prefix is not None:
                allowed = allowed | self.prefix.to(device)[:, None, :]  # prefix keys visible
            mask = allowed if mask is None else mask & allowed
        return mask[:, None]  # (B, 1, T, T)

    def seqlens(self) -> list[int]:
        """Lengths of the contiguous runs of equal doc id, row after row (xformers block diagonal)."""
        assert self.doc_ids is not None
        d = self.doc_ids
        batch, seq_len = d.shape
        starts = torch.ones_like(d, dtype=torch.bool)
        starts[:, 1:] = d[:, 1:] != d[:, :-1]
        idx = torch.nonzero(starts.flatten()).flatten()  # flat start positions
        ends = torch.cat([idx[1:], idx.new_tensor([batch * seq_len])])
        return (ends - idx).tolist()


@functools.lru_cache(maxsize=16)
def _causal_cached(seq_len: int, device: str) -> Tensor:
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def _causal(seq_len: int, device: torch.device) -> Tensor:
    return _causal_cached(seq_len, str(device))


@functools.lru_cache(maxsize=1)
def xformers_available() -> bool:
    """True when xformers imports and its CUDA kernels can run here."""
    if not torch.cuda.is_available():
        return False
    try:
        import xformers.ops  # noqa: F401
    except Exception:
        return False
    return True


def resolve_kernel(name: str, device: torch.device | str) -> str:
    """``auto`` -> xformers on CUDA when installed, else sdpa. Explicit names are validated
    (``ConfigError`` naming ``model.attention``)."""
    if name == "auto":
        return "xformers" if torch.device(device).type == "cuda" and xformers_available() else "sdpa"
    if name not in KERNELS:
        raise ConfigError(f"model.attention = {name!r} is not an attention kernel; expected auto or one of "
                          f"{', '.join(KERNELS)}")
    if name == "xformers":
        if torch.device(device).type != "cuda":
            raise ConfigError(f"model.attention = 'xformers' runs on CUDA only, but the model is on "
                              f"{torch.device(device)}; use auto or sdpa")
        if not xformers_available():
            raise ConfigError("model.attention = 'xformers' needs xformers with CUDA kernels "
                              "(`pip install objective-zoo[xformers]`), which cannot be imported here; use auto or sdpa")
    return name


@dataclass
class PreparedMask:
    """A layout turned into what one kernel consumes; built once per forward, shared by all layers."""

    kernel: str
    dense: Tensor | None = None  # eager / sdpa, and xformers prefix LM: bool (B|1, 1, T, T)
    is_causal: bool = False  # sdpa fast path: plain causal, no mask tensor
    bias: Any = None  # xformers attn_bias (block-diagonal type or LowerTriangularMask); None = no mask
    flatten: bool = False  # xformers block-diagonal: rows are concatenated into one sequence
    additive: dict[torch.dtype, Tensor] = field(default_factory=dict)  # dense as 0 / -inf, per dtype
    num_heads: int = 0  # xformers prefix LM: heads of the dense bias tensor

    def additive_bias(self, seq_len: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """The mask as an additive (B|1, 1, T, T) bias of 0 / -inf in ``dtype``; built once, shared by all layers."""
        if dtype not in self.additive:
            allowed = _causal(seq_len, device)[None, None] if self.is_causal else self.dense
            if allowed is None:
                return None
            self.additive[dtype] = additive_mask(allowed.to(device), dtype)
        return self.additive[dtype]

    def xformers_bias(self, dtype: torch.dtype) -> Any:
        """The attn_bias for ``memory_efficient_attention`` with queries in ``dtype``.

        A prefix-LM layout has no described xformers bias, so it becomes an additive (B, H, T, T)
        tensor, which the kernel requires in the query dtype (bf16 under autocast) and with its
        last dimension stored padded to a multiple of 8; built once per dtype, shared by all layers.
        """
        if self.dense is None:
            return self.bias
        if dtype not in self.additive:
            batch, _, seq_len, _ = self.dense.shape  # (B, 1, T, T)
            padded = math.ceil(seq_len / 8) * 8
            bias = torch.zeros(batch, self.num_heads, seq_len, padded, device=self.dense.device, dtype=dtype)
            bias = bias[..., :seq_len]  # aligned storage, logical width T
            self.additive[dtype] = bias.masked_fill_(~self.dense, float("-inf"))
        return self.additive[dtype]


def prepare(layout: AttentionLayout, kernel: str, batch: int, seq_len: int, num_heads: int,
            device: torch.device, dtype: torch.dtype) -> PreparedMask:
    if kernel == "xformers":
        return _prepare_xformers(layout, batch, seq_len, num_heads, device, dtype)
    if kernel == "sdpa" and layout.causal and layout.doc_ids is None and layout.prefix is None:
        return PreparedMask(kernel, is_causal=True)
    return PreparedMask(kernel, dense=layout.dense_mask(seq_len, device))


def _prepare_xformers(layout: AttentionLayout, batch: int, seq_len: int, num_heads: int,
                      device: torch.device, dtype: torch.dtype) -> PreparedMask:
    from xformers.ops import fmha

    if layout.prefix is not None:
        # No described prefix-LM bias in xformers: the additive tensor is built in the query dtype
        # at the first attention call (``PreparedMask.xformers_bias``); ``dtype`` is the embeddings'.
        return PreparedMask("xformers", dense=layout.dense_mask(seq_len, device), num_heads=num_heads)
    if layout.doc_ids is None:
        return PreparedMask("xformers", bias=fmha.attn_bias.LowerTriangularMask() if layout.causal else None)
    cls = fmha.attn_bias.BlockDiagonalCausalMask if layout.causal else fmha.attn_bias.BlockDiagonalMask
    # The seqlens tensors live on the model's device (cuda:LOCAL_RANK), not the current CUDA device.
    return PreparedMask("xformers", bias=cls.from_seqlens(layout.seqlens(), device=torch.device(device)),
                        flatten=True)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: PreparedMask, dropout_p: float = 0.0) -> Tensor:
    """q, k, v: (B, T, H, D) -> (B, T, H, D)."""
    if mask.kernel == "xformers":
        import xformers.ops as xops

        batch, seq_len = q.shape[:2]
        if mask.flatten:  # block-diagonal masks index one long sequence: (1, B*T, H, D)
            q, k, v = (x.reshape(1, batch * seq_len, *x.shape[2:]) for x in (q, k, v))
        out = xops.memory_efficient_attention(q, k, v, attn_bias=mask.xformers_bias(q.dtype), p=dropout_p)
        return out.reshape(batch, seq_len, *out.shape[2:])
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    if mask.kernel == "sdpa" and q.device.type == "cpu" and (dropout_p > 0.0 or q.dtype != torch.float32):
        # On CPU, SDPA with dropout falls back to its unfused math path, and its fused bf16 backward
        # is slower than bf16 matmuls on the materialised scores: both cases run this instead.
        out = materialized_attention(q, k, v, mask.additive_bias(q.shape[2], q.dtype, q.device), dropout_p)
    elif mask.kernel == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.dense, dropout_p=dropout_p,
                                             is_causal=mask.is_causal)
    else:
        out = eager_attention(q, k, v, mask.dense, dropout_p)
    return out.transpose(1, 2)


def materialized_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, dropout_p: float,
                           scale: float | None = None) -> Tensor:
    """softmax(scale QK^T + bias)V with the (B, H, T, T) scores in memory (``scale`` None: 1/sqrt(d)).
    q, k, v: (B, H, T, D)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, T, T)
    if bias is not None:
        scores = scores + bias
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v


def eager_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor | None, dropout_p: float) -> Tensor:
    """Reference implementation. q, k, v: (B, H, T, D); allowed: bool (B|1, 1, T, T) or None."""
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        probs = F.dropout(probs, p=dropout_p)
    return probs @ v


# --- attention with an additive score bias (relative positions, T5) -----------------------------------
def additive_mask(allowed: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A boolean (B|1, 1, Tq, Tk) mask as 0 / -inf in ``dtype``; None stays None."""
    if allowed is None:
        return None
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


def attend_biased(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, kernel: str, dropout_p: float = 0.0,
                  scale: float | None = None) -> Tensor:
    """softmax(scale * QK^T + bias)V for backbones that fold positions into the scores.

    q: (B, Tq, H, D); k, v: (B, Tk, H, D); bias: (B|1, H, Tq, Tk) float, -inf where a key is hidden
    (every query row must keep one visible key); ``scale`` None -> 1/sqrt(D). Returns (B, Tq, H, D).
    The layout (padding, causal, packed documents) is already in ``bias``: the described xformers masks
    cannot carry a learned bias, so xformers takes it as a dense tensor.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if kernel == "xformers":
        import xformers.ops as xops

        out = xops.memory_efficient_attention(q, k, v, attn_bias=_xformers_dense(bias, q), p=dropout_p, scale=scale)
        return out
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    bias = bias.to(q.dtype)
    if kernel == "sdpa" and not (q.device.type == "cpu" and (dropout_p > 0.0 or q.dtype != torch.float32)):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    else:  # eager, and SDPA's slow CPU cases (see ``attend``)
        out = materialized_attention(q, k, v, bias, dropout_p, scale)
    return out.transpose(1, 2)


def _xformers_dense(bias: Tensor, q: Tensor) -> Tensor:
    """``bias`` as memory_efficient_attention takes a tensor bias: (B, H, Tq, Tk) in the query dtype,
    its last dimension stored padded to a multiple of 8."""
    batch, _, heads, _ = q.shape
    tq, tk = bias.shape[-2:]
    padded = torch.empty(batch, heads, tq, math.ceil(tk / 8) * 8, dtype=q.dtype, device=q.device)[..., :tk]
    return padded.copy_(bias.expand(batch, heads, tq, tk))
