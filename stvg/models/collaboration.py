"""Cross-stream collaboration after each layer pair (CSDVL section 3.3, supplementary B.1).

Shapes: object queries ``O`` [B, Ts, d] (one per static frame), dynamic visual features ``F``
[B, Td, S, d] with ``S = h2*w2`` cells, static attention maps ``A`` [B, Ts, h, w].

Time alignment, by time. A static frame is an instant, a clip a half-open span of time. With the
batch's native frame ids ``frame_ids`` [B, Ts] and clip spans ``clip_spans`` [B, Td, 2], frame
``t`` sits at ``frame_ids[t]`` and clip ``c`` covers ``[clip_spans[c, 0], clip_spans[c, 1])``;
without them (a bare model call), by relative position: frame ``t`` at ``(t + 0.5) / Ts`` of the
segment, clip ``c`` over ``[c / Td, (c + 1) / Td)``.

* static -> dynamic (``Ts`` -> ``Td``): temporal mean pooling by time (:func:`clip_pool_weights`):
  clip ``c`` averages the frames whose instant falls in its span; a clip that holds no frame
  (fewer frames than clips, or sparse frames) takes the frame nearest to its centre
  ``(start + end) / 2``, the earlier one on a tie. A frame repeated in a pass counts once per
  repeat.
* dynamic -> static (``Td`` -> ``Ts``): temporal replication; frame ``t`` uses clip
  :func:`frame_to_clip_index` ``= floor((t + 0.5) * Td / Ts)`` (the clip holding the frame's
  instant), unless the batch supplies its own ``frame_clip_index`` [B, Ts] (the feature dataset
  gives the clip whose native span holds the frame).

Space alignment (static -> dynamic): bilinear interpolation of ``A`` from ``(h, w)`` to
``(h2, w2)`` (``align_corners=False``); for a ``1 x 1`` dynamic grid (the "w/o spatial"
ablation) the spatial mean is used instead, since bilinear sampling would read the single centre
value. Values are not renormalized: the map keeps the static stream's attention magnitudes.

Modes (paper tables 3 and 5):

* ``none``: no exchange; ``s2d``: eq. (2) only; ``d2s``: cross-attention + query mixing only;
  ``full``: both (the paper's model).
* symmetric baselines, our reading of "sum", "FC + sum" and "concat + FC" (the paper gives no
  formula): each stream receives the other's features aligned to its own layout -- the dynamic
  stream gets ``O`` mean-pooled to clips and broadcast over cells, the static stream gets ``F``
  mean-pooled over cells and replicated to frames -- and merges them:
  ``sum``: ``LN(x + y)``; ``fc_sum``: ``LN(x + FC(y))``; ``concat_fc``: ``LN(FC([x; y]))``,
  with separate FC/LN per direction. The LayerNorm mirrors eq. (2) so every mode keeps the
  features on the same scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stvg.models.attention import Dropout, MultiheadAttention
from stvg.models.static_stream import scaled_attention_weights

COLLAB_MODES = ("none", "s2d", "d2s", "full", "sum", "fc_sum", "concat_fc")


def frame_to_clip_index(frames: int, clips: int, device: torch.device | None = None) -> Tensor:
    """For each of ``frames`` static frames, the clip holding its centre: [Ts] long."""
    t = torch.arange(frames, device=device, dtype=torch.float64)
    return torch.floor((t + 0.5) * clips / frames).long().clamp_(0, clips - 1)


def clip_pool_weights(frame_times: Tensor, clip_spans: Tensor) -> Tensor:
    """Weights of the temporal mean pooling of frames into clips, by time: [B, Td, Ts] float.

    ``frame_times`` [B, Ts] (an instant per frame, e.g. native frame ids) and ``clip_spans``
    [B, Td, 2] (half-open ``[start, end)`` per clip) in one unit, integers or floats. Row ``c``
    holds ``1 / n_c`` on the ``n_c`` frames with ``start <= time < end``; a clip with no such frame
    holds 1 on the frame nearest to its centre (smallest ``|2 * time - start - end|``, the first
    such frame on a tie). Every row sums to 1.
    """
    times = frame_times[:, None, :]  # [B,1,Ts]
    start, end = clip_spans[..., 0:1], clip_spans[..., 1:2]  # [B,Td,1]
    inside = (times >= start) & (times < end)  # [B,Td,Ts]
    nearest = (2 * times - start - end).abs().argmin(dim=2)  # [B,Td], first minimum
    fallback = F.one_hot(nearest, frame_times.shape[1]).bool()
    member = torch.where(inside.any(2, keepdim=True), inside, fallback).float()
    return member / member.sum(2, keepdim=True)


def relative_pool_weights(frames: int, clips: int, device: torch.device | None = None) -> Tensor:
    """:func:`clip_pool_weights` of the relative layout: [1, Td, Ts].

    Frame ``t`` at ``(t + 0.5) / Ts`` and clip ``c`` over ``[c / Td, (c + 1) / Td)``, computed in
    integers (everything times ``2 * Ts * Td``) so that boundaries are exact.
    """
    t = torch.arange(frames, device=device)
    c = torch.arange(clips + 1, device=device)
    times = ((2 * t + 1) * clips)[None]  # [1,Ts]
    bounds = 2 * c * frames
    spans = torch.stack((bounds[:-1], bounds[1:]), dim=1)[None]  # [1,Td,2]
    return clip_pool_weights(times, spans)


def frames_to_clips(x: Tensor, pool: Tensor | int) -> Tensor:
    """Temporal mean pooling of ``x`` [B, Ts, ...] to [B, Td, ...].

    ``pool`` is the [B or 1, Td, Ts] weights of :func:`clip_pool_weights`, or a clip count
    ``Td`` for the relative layout (:func:`relative_pool_weights`).
    """
    b, ts = x.shape[:2]
    rest = x.shape[2:]
    if isinstance(pool, int):
        pool = relative_pool_weights(ts, pool, x.device)
    y = torch.matmul(pool.to(x.dtype), x.reshape(b, ts, -1))  # [B,Td,*]
    return y.reshape(b, pool.shape[1], *rest)


def valid_extent(valid: Tensor) -> tuple[Tensor, Tensor]:
    """Rows and columns [B] long (at least 1) of each sample's valid part of ``valid`` [B, h, w]
    bool, which sits in the top-left corner of the batch-padded grid."""
    return valid[:, :, 0].sum(1).clamp(min=1), valid[:, 0, :].sum(1).clamp(min=1)


class GridSizes:
    """The unpadded ``h_b x w_b`` part of each sample's static grid, grouped by size.

    ``groups``: ``(rows, h_b, w_b)`` per distinct size, ``rows`` [B] bool the samples with it.
    Reading the sizes takes a host sync, so the model builds this once per forward and every
    layer's alignment reuses it.
    """

    def __init__(self, groups: list[tuple[Tensor, int, int]]) -> None:
        self.groups = groups

    @classmethod
    def of(cls, valid: Tensor) -> GridSizes:
        """From ``valid`` [B, h, w] bool, valid cells in the top-left corner of each grid."""
        sizes = torch.stack(valid_extent(valid), dim=1)
        return cls(
            [
                ((sizes == torch.tensor([hb, wb], device=sizes.device)).all(1), hb, wb)
                for hb, wb in torch.unique(sizes, dim=0).tolist()
            ]
        )


def align_attention(
    attn: Tensor,
    clips: int,
    grid: tuple[int, int],
    valid: Tensor | GridSizes | None = None,
    pool: Tensor | None = None,
) -> Tensor:
    """Align static maps ``A`` [B, Ts, h, w] to the dynamic layout: [B, Td, h2*w2].

    Space: a clip is its frames padded at the right and bottom to a square (docs/design.md
    section 6), so the valid ``h_b x w_b`` part of sample ``b``'s map (``valid`` [B, h, w]
    bool, or its :class:`GridSizes`; all of it when ``None``) is padded the same way with zeros to
    ``max(h_b, w_b)`` square, then resized bilinearly (antialiased when shrinking) to ``grid``;
    ``grid == (1, 1)`` is the spatial mean over the ``h_b x w_b`` cells (the "w/o spatial"
    ablation). Time: the mean over the frames of each clip, by time: ``pool`` [B, Td, Ts] from
    :func:`clip_pool_weights` (the relative layout of ``Ts`` frames and ``clips`` clips when
    ``None``).
    """
    pool = clips if pool is None else pool
    b, ts, h, w = attn.shape
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=attn.device)
    sizes = valid if isinstance(valid, GridSizes) else GridSizes.of(valid)
    out = attn.new_empty(b, ts, grid[0] * grid[1])
    for rows, hb, wb in sizes.groups:
        if grid == (1, 1):  # the mean over the sample's own cells
            out[rows] = attn[rows, :, :hb, :wb].mean(dim=(2, 3)).unsqueeze(-1)
            continue
        side = max(hb, wb)
        square = F.pad(attn[rows, :, :hb, :wb], (0, side - wb, 0, side - hb))
        if (side, side) != grid:
            square = F.interpolate(  # in float32: no antialiased bf16 kernel (autocast)
                square.float(), size=grid, mode="bilinear", align_corners=False, antialias=True
            ).to(out.dtype)
        out[rows] = square.flatten(2)
    return frames_to_clips(out, pool)


class StaticToDynamic(nn.Module):
    """Eq. (2): ``F~ = LayerNorm(F + A (.) FC(F))``, ``A`` broadcast over the ``d`` channels."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, fv: Tensor, attn: Tensor) -> Tensor:
        """``fv`` [B, Td, S, d]; ``attn`` [B, Td, S] (already aligned). Returns [B, Td, S, d]."""
        return self.norm(fv + attn[..., None] * self.fc(fv))


class DynamicToStatic(nn.Module):
    """``O_t`` cross-attends to the cells of ``F[c(t)]``, then query mixing over frames.

    Both steps are residual + post-norm. Keys carry the dynamic grid's 2-D sine encoding; the
    query mixing (temporal self-attention) adds the frame-index encoding to queries and keys.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.cross_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.mix_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.norm_cross = nn.LayerNorm(d_model)
        self.norm_mix = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        queries: Tensor,
        fv: Tensor,
        clip_index: Tensor,
        space_pos: Tensor,
        frame_pos: Tensor,
    ) -> Tensor:
        """``queries`` [B, Ts, d]; ``fv`` [B, Td, S, d]; ``clip_index`` [B, Ts] long;
        ``space_pos`` [S, d]; ``frame_pos`` [Ts, d]. Returns [B, Ts, d]."""
        b, ts, d = queries.shape
        per_frame = frame_features(fv, clip_index)  # F_v[t] after temporal replication
        q = queries.reshape(b * ts, 1, d)
        out = self.cross_attn(q, per_frame + space_pos, per_frame, need_weights=False)[0]
        queries = self.norm_cross(queries + self.dropout(out.view(b, ts, d)))
        q = queries + frame_pos
        out = self.mix_attn(q, q, queries, need_weights=False)[0]
        return self.norm_mix(queries + self.dropout(out))

    def attention(
        self, queries: Tensor, fv: Tensor, clip_index: Tensor, space_pos: Tensor
    ) -> Tensor:
        """The cross-attention's weights (heads averaged) of each frame's query over the cells
        of ``F[c(t)]``: [B, Ts, S] (the arguments as :meth:`forward`'s; no dropout)."""
        b, ts, d = queries.shape
        keys = frame_features(fv, clip_index) + space_pos
        weights = scaled_attention_weights(self.cross_attn, queries.reshape(b * ts, 1, d), keys)
        return weights.view(b, ts, -1)


def frame_features(fv: Tensor, clip_index: Tensor) -> Tensor:
    """Temporal replication: ``fv`` [B, Td, S, d] -> the clip of each frame, [B * Ts, S, d]
    (``clip_index`` [B, Ts] long)."""
    b, ts = clip_index.shape
    s, d = fv.shape[2:]
    per_frame = torch.gather(fv, 1, clip_index[:, :, None, None].expand(b, ts, s, d))
    return per_frame.reshape(b * ts, s, d)


def spread_attention(
    maps: Tensor, grid: tuple[int, int], valid: Tensor, sizes: GridSizes | None = None
) -> Tensor:
    """Dynamic-grid maps back onto the static grid: the reverse of :func:`align_attention`'s
    space alignment. ``maps`` [B, Ts, h2*w2] (one per frame), ``valid`` [B, h, w] bool (each
    sample's unpadded cells, top-left). The ``grid`` map is resized bilinearly
    (``align_corners=False``) to the ``max(h_b, w_b)`` square the static map is padded to, then
    cropped to its ``h_b x w_b`` cells; each frame's map is renormalized to sum to 1 over them.
    Returns [B, Ts, h, w], zero on padded cells."""
    b, ts, _ = maps.shape
    h, w = valid.shape[1:]
    sizes = GridSizes.of(valid) if sizes is None else sizes
    out = maps.new_zeros(b, ts, h, w)
    for rows, hb, wb in sizes.groups:
        side = max(hb, wb)
        square = maps[rows].view(-1, ts, *grid)
        if (side, side) != grid:
            square = F.interpolate(square, size=(side, side), mode="bilinear", align_corners=False)
        out[rows, :, :hb, :wb] = square[:, :, :hb, :wb]
    return out / out.sum((2, 3), keepdim=True).clamp(min=1e-12)


class SymmetricFusion(nn.Module):
    """The symmetric baselines ``sum | fc_sum | concat_fc`` (see the module docstring)."""

    def __init__(self, mode: str, d_model: int) -> None:
        super().__init__()
        if mode not in ("sum", "fc_sum", "concat_fc"):
            raise ValueError(f"not a symmetric fusion mode: {mode!r}")
        self.mode = mode
        width = 2 * d_model if mode == "concat_fc" else d_model
        if mode != "sum":
            self.fc_static = nn.Linear(width, d_model)
            self.fc_dynamic = nn.Linear(width, d_model)
        self.norm_static = nn.LayerNorm(d_model)
        self.norm_dynamic = nn.LayerNorm(d_model)

    def _merge(self, x: Tensor, y: Tensor, fc: nn.Module | None, norm: nn.Module) -> Tensor:
        if self.mode == "sum":
            return norm(x + y)
        if self.mode == "fc_sum":
            return norm(x + fc(y))
        return norm(fc(torch.cat((x, y), dim=-1)))

    def forward(
        self, queries: Tensor, fv: Tensor, clip_index: Tensor, pool: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``queries`` [B, Ts, d], ``fv`` [B, Td, S, d], ``clip_index`` [B, Ts] long, ``pool``
        [B, Td, Ts] frame-to-clip weights (:func:`clip_pool_weights`; relative layout if None)."""
        b, ts, d = queries.shape
        td, s = fv.shape[1], fv.shape[2]
        to_static = torch.gather(fv.mean(2), 1, clip_index[:, :, None].expand(b, ts, d))
        pooled = frames_to_clips(queries, td if pool is None else pool)
        to_dynamic = pooled[:, :, None].expand(b, td, s, d)
        fc_s = getattr(self, "fc_static", None)
        fc_d = getattr(self, "fc_dynamic", None)
        new_q = self._merge(queries, to_static, fc_s, self.norm_static)
        new_f = self._merge(fv, to_dynamic, fc_d, self.norm_dynamic)
        return new_q, new_f


class CollaborationBlock(nn.Module):
    """The block after layer ``i``: returns the enhanced ``(O~, F~)`` for layer ``i + 1``.

    Both directions read the *un-enhanced* outputs of layer ``i`` (``O^i`` and ``F_v^i``), as in
    Figure 4 where the two transmissions run side by side.
    """

    def __init__(self, mode: str, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if mode not in COLLAB_MODES:
            raise ValueError(f"collab must be one of {COLLAB_MODES}, got {mode!r}")
        self.mode = mode
        self.s2d = StaticToDynamic(d_model) if mode in ("s2d", "full") else None
        self.d2s = DynamicToStatic(d_model, n_heads, dropout) if mode in ("d2s", "full") else None
        self.fusion = (
            SymmetricFusion(mode, d_model) if mode in ("sum", "fc_sum", "concat_fc") else None
        )

    def forward(
        self,
        queries: Tensor,
        fv: Tensor,
        attn: Tensor,
        grid: tuple[int, int],
        clip_index: Tensor,
        space_pos: Tensor,
        frame_pos: Tensor,
        valid: Tensor | GridSizes | None = None,
        pool: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``queries`` [B, Ts, d]; ``fv`` [B, Td, S, d]; ``attn`` [B, Ts, h, w] (A^i);
        ``grid`` = (h2, w2); ``clip_index`` [B, Ts]; ``space_pos`` [S, d]; ``frame_pos`` [Ts, d];
        ``valid``: the unpadded cells of the static maps (see :func:`align_attention`);
        ``pool`` [B, Td, Ts]: frame-to-clip weights by time (:func:`clip_pool_weights`)."""
        if self.fusion is not None:
            return self.fusion(queries, fv, clip_index, pool)
        new_q, new_f = queries, fv
        if self.d2s is not None:
            new_q = self.d2s(queries, fv, clip_index, space_pos, frame_pos)
        if self.s2d is not None:
            new_f = self.s2d(fv, align_attention(attn, fv.shape[1], grid, valid, pool))
        return new_q, new_f
