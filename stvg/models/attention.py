"""Attention and dropout for the heads: the same modules and results as torch's, cheaper on a CPU.

Training the heads from cached features on a CPU spends a large share of its time outside the
matrix products that make up its arithmetic (``stvg bench e2e``, BENCHMARKS.md "Cost of the
heads"): drawing dropout masks, the attention's own mask and softmax passes, layout copies. Two
drop-in replacements cut that share without changing what the model computes:

* :func:`dropout` / :class:`Dropout`: inverted dropout. On a CUDA tensor it is
  :func:`torch.nn.functional.dropout`. On a CPU tensor the mask compares 16 random bits per
  element with a threshold, four elements to a 64-bit word of a PCG64 generator seeded, once per
  call, by a draw from torch's default generator (so ``torch.manual_seed`` still fixes every
  mask); that is several times cheaper than ``bernoulli_``. The drop probability is ``p`` rounded
  to a multiple of ``1 / 65536`` (0.1 becomes 0.1000061); kept values are scaled by
  ``1 / (1 - p_rounded)``, so the expectation is unchanged.
* :class:`MultiheadAttention`: a subclass of :class:`torch.nn.MultiheadAttention`, always
  batch-first, with the same parameters and state-dict keys (MDETR checkpoints load as before)
  and the same results. With ``need_weights=False`` it projects the inputs once in batch-first
  layout (query and key with one product when they are the same tensor), then runs
  :func:`torch.nn.functional.scaled_dot_product_attention` when no dropout is in effect or the
  tensors are on CUDA; on a CPU in training with attention dropout, where PyTorch's CPU kernels
  fall back to an unfused path drawing a Bernoulli mask, it computes
  ``softmax(q k^T / sqrt(d_head) + mask)`` with :func:`dropout` on the weights. Rows whose keys
  are all masked give zeros, as PyTorch's own attention does. With ``need_weights=True`` it is
  the parent's forward.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 1 << 16  # a CPU dropout mask draws 16 random bits per element


def drop_threshold(p: float) -> int:
    """How many of the ``2**16`` values of an element's random bits drop it: ``round(p * 2**16)``."""
    return round(p * _LEVELS)


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> Tensor:
    """Bool mask of ``shape``, each element True (kept) with probability
    ``1 - drop_threshold(p) / 2**16`` (see the module docstring for the generator)."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))  # torch's seed decides the mask
    words = np.random.Generator(np.random.PCG64(seed)).bit_generator.random_raw((n + 3) // 4)
    bits = torch.from_numpy(words.view(np.int16)[:n]).view(shape)  # uniform in [-2**15, 2**15)
    return bits >= drop_threshold(p) - _LEVELS // 2


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout of ``x``: :func:`torch.nn.functional.dropout` off the CPU; on the CPU the
    cheaper mask of :func:`keep_mask` (see the module docstring)."""
    if not training or p == 0.0:
        return x
    if not x.is_cpu or not x.is_floating_point():
        return F.dropout(x, p, True)
    kept = 1.0 - drop_threshold(p) / _LEVELS
    if kept == 1.0:
        return x
    scale = torch.where(keep_mask(x.shape, p), 1.0 / kept, 0.0)  # one pass to the float mask
    return x * scale.to(x.dtype)


class Dropout(nn.Dropout):
    """:class:`torch.nn.Dropout` through :func:`dropout` (same ``p``, same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


def additive_mask(
    b: int,
    h: int,
    lq: int,
    lk: int,
    key_padding_mask: Tensor | None,
    attn_mask: Tensor | None,
    dtype: torch.dtype,
) -> Tensor | None:
    """The two masks of :class:`torch.nn.MultiheadAttention` as one float mask broadcastable to
    ``[b, h, lq, lk]`` (``-inf`` where a bool mask is True), or None when they mask nothing
    (a bool padding mask with no True is left out). ``attn_mask``: ``[lq, lk]`` or
    ``[b * h, lq, lk]``; ``key_padding_mask``: ``[b, lk]``."""

    def as_float(mask: Tensor) -> Tensor:
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
                mask, float("-inf")
            )
        return mask.to(dtype)

    mask = None
    if key_padding_mask is not None and key_padding_mask.dtype == torch.bool:
        if not bool(key_padding_mask.any()):  # masks nothing: skip a pass over the scores
            key_padding_mask = None
    if attn_mask is not None:
        mask = as_float(attn_mask)
        mask = mask.view(b, h, *mask.shape[1:]) if mask.dim() == 3 else mask[None, None]
    if key_padding_mask is not None:
        pad = as_float(key_padding_mask)[:, None, None, :]
        mask = pad if mask is None else mask + pad
    return mask


def attention_with_dropout(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float
) -> Tensor:
    """``dropout(softmax(q k^T / sqrt(d) + mask), p) v`` over ``[B, h, L, d]`` tensors; a row
    whose every key is masked gives zeros (as :func:`torch.nn.functional.scaled_dot_product_attention`
    does)."""
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(-1)
    if mask is not None:
        empty = torch.isneginf(mask).all(-1, keepdim=True)  # on the mask: small
        if bool(empty.any()):
            weights = weights.masked_fill(empty, 0.0)
    return dropout(weights, p, True) @ v


class MultiheadAttention(nn.MultiheadAttention):
    """Batch-first :class:`torch.nn.MultiheadAttention` with a cheaper ``need_weights=False``
    path (see the module docstring); parameters and results are the parent's."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__(embed_dim, num_heads, dropout=dropout, batch_first=True)

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if need_weights or is_causal or query.dim() != 3:
            return super().forward(
                query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                attn_mask=attn_mask, average_attn_weights=average_attn_weights, is_causal=is_causal,
            )  # fmt: skip
        b, lq, e = query.shape
        lk, h = key.shape[1], self.num_heads
        w, bias = self.in_proj_weight, self.in_proj_bias
        if query is key:
            q, k = F.linear(query, w[: 2 * e], bias[: 2 * e]).split(e, dim=-1)
            v = F.linear(value, w[2 * e :], bias[2 * e :])
        elif key is value:
            q = F.linear(query, w[:e], bias[:e])
            k, v = F.linear(key, w[e:], bias[e:]).split(e, dim=-1)
        else:
            q = F.linear(query, w[:e], bias[:e])
            k = F.linear(key, w[e : 2 * e], bias[e : 2 * e])
            v = F.linear(value, w[2 * e :], bias[2 * e :])
        q = q.view(b, lq, h, e // h).transpose(1, 2)  # [B,h,Lq,dh]
        k = k.view(b, lk, h, e // h).transpose(1, 2)
        v = v.view(b, lk, h, e // h).transpose(1, 2)
        mask = additive_mask(b, h, lq, lk, key_padding_mask, attn_mask, q.dtype)
        p = self.dropout if self.training else 0.0
        if p > 0.0 and q.is_cpu:
            out = attention_with_dropout(q, k, v, mask, p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, e)), None
