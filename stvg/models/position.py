"""Fixed sine position encodings (DETR / "Attention is all you need" style).

Both functions return encodings that the transformer layers *add to queries and keys* at every
layer (DETR practice); values are never offset by them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_position_1d(
    length: int,
    dim: int,
    *,
    temperature: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Sine encoding of positions ``0..length-1``: ``[length, dim]``.

    Channel ``2k`` holds ``sin(p / temperature**(2k/dim))`` and channel ``2k+1`` the matching
    cosine (the transformer paper's layout). ``dim`` must be even. Used over frames (static
    decoder, query mixing) and over clips (dynamic stream's temporal attention).
    """
    if dim % 2:
        raise ValueError(f"sine_position_1d needs an even dim, got {dim}")
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # [T,1]
    freq = temperature ** (torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    enc = torch.zeros(length, dim, device=device, dtype=torch.float32)
    enc[:, 0::2] = torch.sin(pos / freq)
    enc[:, 1::2] = torch.cos(pos / freq)
    return enc.to(dtype)


def sine_position_2d(
    valid: Tensor,
    dim: int,
    *,
    temperature: float = 10000.0,
    normalize: bool = True,
    scale: float = 2 * math.pi,
) -> Tensor:
    """DETR's 2-D sine encoding of a (possibly padded) feature grid: ``[B, h, w, dim]``.

    ``valid`` is ``[B, h, w]`` bool, True on real (non-padded) cells. Rows and columns are counted
    over valid cells only (cumulative sum, 1-based), and with ``normalize`` rescaled so the last
    valid row/column sits at ``scale`` (2*pi). The first ``dim/2`` channels encode y, the last
    ``dim/2`` encode x, each as interleaved sin/cos over ``dim/4`` frequencies
    ``temperature**(2*(k//2)/(dim/2))``. ``dim`` must be a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"sine_position_2d needs dim divisible by 4, got {dim}")
    v = valid.to(torch.float32)
    y = v.cumsum(1)  # [B,h,w], 1-based row index among valid cells
    x = v.cumsum(2)
    if normalize:
        eps = 1e-6
        y = y / (y[:, -1:, :] + eps) * scale
        x = x / (x[:, :, -1:] + eps) * scale
    half = dim // 2
    k = torch.arange(half, device=valid.device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)  # [half]
    py = y[..., None] / freq  # [B,h,w,half]
    px = x[..., None] / freq
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3)  # [B,h,w,dim]
