"""Box reference points from a decoder's attention over the visual cells.

Not in the papers: one of the two aids that let a model trained from scratch (the CPU demo's
``synthetic`` preset) learn its boxes, the other being the attention loss ``loss_att``
(:func:`stvg.train.losses.attention_box_loss`). CSDVL, CG-STVG and CoSTA share them:

* :func:`cell_attention`: a query's cross-attention weights over memory whose first ``h * w``
  tokens are the frame's visual cells -> a map over the cells that sums to 1 (what ``loss_att``
  is scored on and the reference is read from);
* :func:`reference_point` (the ``box_reference`` setting): ``"none"`` (the papers: the box head
  reads the position from the query alone), ``"attention"`` (the centre of mass of the map,
  :func:`attention_centre`), ``"attention_peak"`` (the centre of mass within the 3 x 3 cells
  around the map's peak, :func:`peak_window`). The box head then predicts the box centre as an
  offset in logit space from that point (:class:`stvg.models.heads.BoxHead`).

Cell ``(i, j)`` of sample ``b`` sits at ``((j + 0.5) / w_b, (i + 0.5) / h_b)`` in normalized
image coordinates, ``h_b x w_b`` being the valid (unpadded) top-left part of its grid.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stvg.models.collaboration import valid_extent

BOX_REFERENCES = ("none", "attention", "attention_peak")


def cell_attention(weights: Tensor, valid: Tensor) -> Tensor:
    """The attention on the visual cells, renormalized over the valid ones.

    ``weights`` [B, Ts, M]: each frame's query over a memory whose first ``h * w`` tokens are
    the frame's cells, row-major (heads averaged; the other tokens, text or motion, are
    dropped); ``valid`` [B, h, w] bool. Returns [B, Ts, h, w] that sums to 1 over each frame's
    valid cells (padded cells hold 0).
    """
    b, ts, _ = weights.shape
    h, w = valid.shape[1:]
    cells = weights[..., : h * w].reshape(b, ts, h, w) * valid[:, None].to(weights.dtype)
    return cells / cells.sum((2, 3), keepdim=True).clamp(min=1e-12)


def reference_point(attn: Tensor, valid: Tensor, mode: str) -> Tensor | None:
    """The box head's reference centre ``(x, y)`` [B, Ts, 2] in [0, 1] from the maps ``attn``
    [B, Ts, h, w] over the cells ``valid`` [B, h, w] bool, by ``mode`` (one of
    :data:`BOX_REFERENCES`); ``None`` for ``"none"``."""
    if mode == "none":
        return None
    if mode == "attention_peak":
        attn = attn * peak_window(attn, valid)
    elif mode != "attention":
        raise ValueError(f"box_reference must be one of {BOX_REFERENCES}, got {mode!r}")
    return attention_centre(attn, valid)


def attention_centre(attn: Tensor, valid: Tensor) -> Tensor:
    """Centre of mass ``(x, y)`` in [0, 1] of attention maps ``attn`` [B, Ts, h, w].

    Cell ``(i, j)`` sits at ``((j + 0.5) / w_b, (i + 0.5) / h_b)`` where ``h_b x w_b`` is the valid
    (unpadded) part of sample ``b``'s grid (``valid`` [B, h, w] bool); padded cells carry no mass.
    Returns [B, Ts, 2].
    """
    b, ts, h, w = attn.shape
    rows, cols = (n.to(attn.dtype) for n in valid_extent(valid))  # [B] each
    valid = valid.to(attn.dtype)
    ys = (torch.arange(h, device=attn.device, dtype=attn.dtype) + 0.5)[None] / rows[:, None]
    xs = (torch.arange(w, device=attn.device, dtype=attn.dtype) + 0.5)[None] / cols[:, None]
    mass = attn * valid[:, None]
    total = mass.sum((2, 3)).clamp(min=1e-9)  # [B,Ts]
    cx = (mass.sum(2) * xs[:, None]).sum(-1) / total
    cy = (mass.sum(3) * ys[:, None]).sum(-1) / total
    return torch.stack((cx, cy), dim=-1)


def peak_window(attn: Tensor, valid: Tensor, radius: int = 1) -> Tensor:
    """1.0 on the cells within ``radius`` rows and columns of each map's peak, else 0.0.

    ``attn`` [B, Ts, h, w], ``valid`` [B, h, w] bool (padded cells are never the peak; the first
    maximum in row-major order on a tie). Returns [B, Ts, h, w] of ``attn``'s dtype."""
    b, ts, h, w = attn.shape
    flat = attn.masked_fill(~valid[:, None], float("-inf")).flatten(2).argmax(2)  # [B,Ts]
    rows = torch.arange(h, device=attn.device)[:, None]
    cols = torch.arange(w, device=attn.device)[None, :]
    near_r = (rows - (flat // w)[..., None, None]).abs() <= radius
    near_c = (cols - (flat % w)[..., None, None]).abs() <= radius
    return (near_r & near_c).to(attn.dtype)
