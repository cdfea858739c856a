"""Prediction heads (CSDVL section 3.4, supplementary B.2, STVGFormer section 1.4).

* :class:`BoxHead`: 3-layer MLP on the final object query of each frame -> normalized
  ``cxcywh`` box in [0, 1] (sigmoid).
* :class:`TemporalHead`: the 2D-TAN proposal map. ``F_d`` [B, Td, d] (spatial mean of the last
  dynamic features) -> FC to ``d_m`` -> map ``M_ij = mean(F_d[i..j])`` for valid proposals
  (eq. 3) -> a stack of masked convolutions -> 1x1 conv -> logits ``S`` [B, Td, Td]. Entry
  ``(i, j)`` is the proposal from clip ``i`` to clip ``j`` *inclusive*, i.e. the half-open span
  ``[i, j + 1)`` in clip units; only entries of :func:`proposal_mask` are computed (2D-TAN's
  sparse map), the others are filled with :data:`INVALID_LOGIT`.
* auxiliary scores for L_ta: an FC on each frame's object query (frame logits [B, Ts]) and a
  3-layer MLP on each clip's ``F_d`` (clip logits [B, Td]).

Masked convolutions follow 2D-TAN's ``MapConv``: after each ``conv + ReLU`` the output is
reweighted by the number of valid inputs in the kernel window and the valid region grows to every
cell whose window saw a valid input. 2D-TAN multiplies by ``1 / count``; we multiply by
``k*k / count`` (a mean over the valid inputs rescaled to a full window), which differs from
2D-TAN by a constant per layer (absorbed by the next layer's weights through the ReLU) and keeps
activations at the default-initialization scale. 2D-TAN's Hadamard fusion with a sentence vector
is not used: ``F_d`` already went through the cross-modal layers, and the paper mentions none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INVALID_LOGIT = -1.0e4  # sigmoid -> 0; finite so that fp16 and unmasked losses stay finite


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (DETR's box MLP)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [d_in] + [d_hidden] * (num_layers - 1) + [d_out]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class BoxHead(nn.Module):
    """Object query [..., d] -> box [..., 4] as normalized ``(cx, cy, w, h)`` in [0, 1]."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = MLP(d_model, d_model, 4, 3)

    def forward(self, queries: Tensor, reference: Tensor | None = None) -> Tensor:
        """``queries`` [..., d]; ``reference`` [..., 2] optional box centres in (0, 1): the MLP's
        first two outputs are then offsets added to ``logit(reference)``."""
        out = self.mlp(queries)
        if reference is None:
            return out.sigmoid()
        ref = torch.logit(reference.clamp(1e-4, 1 - 1e-4))
        return torch.cat(((out[..., :2] + ref).sigmoid(), out[..., 2:].sigmoid()), dim=-1)


def default_pooling_counts(num_clips: int) -> list[int]:
    """2D-TAN's sparse-map schedule for ``num_clips``: ``[15, 8, 8, ...]``, all dense up to 16.

    ``num_clips <= 16`` gives ``[num_clips - 1]`` (every ``i <= j`` is a proposal, as 2D-TAN on
    Charades with 16 clips); longer maps add diagonals at stride 2, 4, ... 8 at a time
    (2D-TAN/MMN: 64 clips -> ``[15, 8, 8]``, 128 -> ``[15, 8, 8, 8]``) until the span of the
    whole video (offset ``num_clips - 1``) is reached.
    """
    if num_clips <= 16:
        return [max(num_clips - 1, 0)]
    counts, offset, stride = [15], 15, 1
    while offset < num_clips - 1:
        stride *= 2
        counts.append(8)
        offset += 8 * stride
    return counts


def proposal_mask(num_clips: int, pooling_counts: list[int] | None = None) -> Tensor:
    """Valid proposals of the 2D map: [T, T] bool, True where ``(i, j)`` is computed.

    The diagonal (single clips) is always valid. Then, walking the schedule, diagonal offset
    ``o`` grows by the current stride; on that diagonal, starts ``i = 0, stride, 2*stride, ...``
    with ``i + o < T`` are valid. The stride doubles after each entry of ``pooling_counts``.
    """
    counts = default_pooling_counts(num_clips) if pooling_counts is None else pooling_counts
    mask = torch.eye(num_clips, dtype=torch.bool)
    offset, stride = 0, 1
    for count in counts:
        for _ in range(count):
            offset += stride
            starts = torch.arange(0, max(num_clips - offset, 0), stride)
            mask[starts, starts + offset] = True
        stride *= 2
    return mask


def proposal_map(feats: Tensor, mask: Tensor) -> Tensor:
    """Eq. (3): ``M[:, :, i, j] = mean(feats[:, i..j])`` where ``mask``, else 0.

    ``feats`` [B, T, C], ``mask`` [T, T] bool. Returns [B, C, T, T] (channels first, for conv).
    Uses prefix sums: ``(cs[j + 1] - cs[i]) / (j - i + 1)``.
    """
    b, t, c = feats.shape
    cs = torch.cat((feats.new_zeros(b, 1, c), feats.cumsum(1)), dim=1)  # [B,T+1,C]
    i, j = mask.nonzero(as_tuple=True)
    mean = (cs[:, j + 1] - cs[:, i]) / (j - i + 1).to(feats.dtype)[None, :, None]  # [B,P,C]
    out = feats.new_zeros(b, t, t, c)
    out[:, i, j] = mean
    return out.permute(0, 3, 1, 2)


class TemporalHead(nn.Module):
    """2D-TAN temporal head: ``F_d`` [B, T, d] -> score-map logits [B, T, T].

    With ``text_fusion`` (2D-TAN's sentence fusion; not in CSDVL) the proposal map is multiplied
    channel-wise by ``W_s s`` for a sentence vector ``s`` [B, d] and L2-normalized over channels
    before the convolutions.
    """

    def __init__(
        self,
        d_model: int,
        d_map: int,
        num_layers: int,
        kernel_size: int,
        text_fusion: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"map kernel size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        self.proj = nn.Linear(d_model, d_map)
        self.text_proj = nn.Linear(d_model, d_map) if text_fusion else None
        self.convs = nn.ModuleList(
            nn.Conv2d(d_map, d_map, kernel_size, padding=kernel_size // 2)
            for _ in range(num_layers)
        )
        self.pred = nn.Conv2d(d_map, 1, 1)

    def forward(self, fd: Tensor, mask: Tensor, sentence: Tensor | None = None) -> Tensor:
        """``fd`` [B, T, d]; ``mask`` [T, T] bool (valid proposals); ``sentence`` [B, d] (only
        with ``text_fusion``). Returns logits [B, T, T]."""
        x = proposal_map(self.proj(fd), mask)  # [B,dm,T,T]
        if self.text_proj is not None:
            if sentence is None:
                raise ValueError("this temporal head fuses a sentence vector: pass sentence")
            x = F.normalize(x * self.text_proj(sentence)[:, :, None, None], dim=1)
        valid = mask[None, None].to(x.dtype)  # [1,1,T,T]
        k = self.kernel_size
        ones = x.new_ones(1, 1, k, k)
        for conv in self.convs:
            x = F.relu(conv(x))
            count = torch.round(F.conv2d(valid, ones, padding=k // 2))  # valid inputs per window
            valid = (count > 0).to(x.dtype)
            x = x * torch.where(count > 0, k * k / count.clamp(min=1), torch.zeros_like(count))
        logits = self.pred(x)[:, 0]  # [B,T,T]
        return logits.masked_fill(~mask, INVALID_LOGIT)


class ClipScoreHead(nn.Module):
    """Auxiliary clip scores: 3-layer MLP on ``F_d`` [B, Td, d] -> logits [B, Td]."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = MLP(d_model, d_model, 1, 3)

    def forward(self, fd: Tensor) -> Tensor:
        return self.mlp(fd)[..., 0]


class FrameScoreHead(nn.Module):
    """Auxiliary frame scores: one FC on the final object queries [B, Ts, d] -> logits [B, Ts]."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 1)

    def forward(self, queries: Tensor) -> Tensor:
        return self.fc(queries)[..., 0]


class PresenceHead(nn.Module):
    """Per-frame presence, "the described event is here" (not in the paper): an MLP on each frame's final
    object query [B, Ts, d] joined with its clip's ``F_d`` [B, Ts, d] (appearance and motion)
    -> logits [B, Ts], trained with binary cross-entropy (``stvg.train.losses.presence_loss``)
    so that, unlike the softmax-trained frame scores, they compare across segments."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1))

    def forward(self, queries: Tensor, clip_features: Tensor) -> Tensor:
        return self.mlp(torch.cat([queries, clip_features], dim=-1))[..., 0]


def best_span(score_map: Tensor, map_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Argmax of the score map over valid proposals.

    ``score_map`` [B, T, T] logits (or probabilities), ``map_mask`` [T, T] bool. Returns
    ``(start, end, score)``, each [B]: the half-open span ``[start, end)`` in clip units
    (``end = j + 1``) and its score. Ties go to the first proposal in row-major order.
    Clip ``c`` covers the fraction ``[c/T, (c+1)/T)`` of the segment.
    """
    b, t, _ = score_map.shape
    flat = score_map.masked_fill(~map_mask, float("-inf")).reshape(b, t * t)
    score, idx = flat.max(dim=1)
    return idx // t, idx % t + 1, score
