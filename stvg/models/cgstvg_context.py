"""CG-STVG's instance context: generation (ICG, paper section 3.3) and refinement (ICR, 3.4).

Equation numbers count the display equations of the paper's section 3 in order (see
:mod:`stvg.models.cgstvg` for the table). Shapes: ``B`` videos, ``Ts`` frames, ``d`` channels.

* eq. (7) ``R_k = MLP(Q_k)``: the foreground region of every frame. It is the stage's box
  prediction (the 3-layer box MLP, shared by the stages, as the released code does), used
  *detached* here: the regions pick features, the box losses train them.
* eq. (8) ``C^a_k = RoIAlign(X~^2d_a, R_k)``, ``C^m_k = RoIAlign(X~^2d_m, R_k)``:
  :func:`roi_context`, RoIAlign (``aligned=True``, a fixed sampling ratio) on each frame's
  encoded appearance map and on its encoded motion map, the ``p x p`` bins then averaged into
  one vector per frame. A box is normalized over the frame; the appearance map's valid part
  (``h_b x w_b`` cells, top-left of a batch-padded grid) is the frame, and the motion map is
  the frame padded at the right and bottom to a square (how stage one feeds a clip), so the
  box is shrunk by ``w_b / max(h_b, w_b)`` and ``h_b / max(h_b, w_b)`` before scaling to the
  motion grid. Padded appearance cells are replaced by the nearest valid cell (edge
  replication) so that a padded grid samples exactly what the unpadded one does.
* eq. (9) ``s^t_k = Sigmoid(MLP(P_k))``: temporal confidence of each frame (returned as logits).
* eq. (10) ``C^{a,t}_k = HF_t(C^a_k, s^t_k, theta_t)`` and eq. (12) ``HF_s(., s^s_k,
  theta_s)``: hard filters; a frame's context passes when its score is *greater* than the
  threshold (:func:`hard_filter` gives the mask of frames that pass both).
* eq. (11) ``s^s_k = (Sigmoid(MLP(C^a_k)) + Sigmoid(MLP(C^m_k))) / 2``: spatial confidence,
  trained to predict the IoU of the stage's box with the GT (eq. 14's BCE term).
* final instance context ``C_k = MLP([C^{a,ts}_k ; C^{m,ts}_k])``: one token per frame that
  passed, the two vectors concatenated along channels; frames that did not pass are masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from stvg.evaluate.boxes import box_cxcywh_to_xyxy
from stvg.models.collaboration import valid_extent
from stvg.models.heads import MLP


def replicate_padding(maps: Tensor, valid: Tensor) -> Tensor:
    """Fill the padded cells of ``maps`` [B, T, C, h, w] with the nearest valid cell.

    ``valid`` [B, h, w] bool, valid cells in the top-left ``h_b x w_b`` corner. Row ``i`` reads
    row ``min(i, h_b - 1)`` and column ``j`` column ``min(j, w_b - 1)``.
    """
    b, t, c, h, w = maps.shape
    rows, cols = valid_extent(valid)  # [B]
    ri = torch.minimum(torch.arange(h, device=maps.device)[None], rows[:, None] - 1)  # [B,h]
    ci = torch.minimum(torch.arange(w, device=maps.device)[None], cols[:, None] - 1)  # [B,w]
    out = maps.gather(3, ri[:, None, None, :, None].expand(b, t, c, h, w))
    return out.gather(4, ci[:, None, None, None, :].expand(b, t, c, h, w))


def roi_context(
    maps: Tensor,
    boxes: Tensor,
    scale_x: Tensor,
    scale_y: Tensor,
    output_size: int,
    sampling_ratio: int,
) -> Tensor:
    """Eq. (8): RoIAlign of one box per frame on that frame's map, bins averaged.

    ``maps`` [B, T, C, h, w]; ``boxes`` [B, T, 4] normalized cxcywh (clamped to [0, 1]);
    ``scale_x``/``scale_y`` [B] float: how many cells of the map one unit of normalized box
    coordinate spans (``w_b`` and ``h_b`` for the appearance map). Returns [B, T, C].
    """
    b, t, c, h, w = maps.shape
    xyxy = box_cxcywh_to_xyxy(boxes).clamp(0.0, 1.0)  # [B,T,4]
    scale = torch.stack((scale_x, scale_y, scale_x, scale_y), dim=-1).to(xyxy.dtype)  # [B,4]
    xyxy = xyxy * scale[:, None]
    index = torch.arange(b * t, device=maps.device, dtype=xyxy.dtype)[:, None]
    rois = torch.cat((index, xyxy.reshape(b * t, 4)), dim=1)  # [B*T, 5]: (map, x1, y1, x2, y2)
    pooled = roi_align(
        maps.reshape(b * t, c, h, w),
        rois,
        output_size=output_size,
        spatial_scale=1.0,
        sampling_ratio=sampling_ratio,
        aligned=True,
    )  # [B*T, C, p, p]
    return pooled.mean(dim=(2, 3)).view(b, t, c)


def motion_scales(valid: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Cells of the ``grid`` (h2, w2) motion map per unit of normalized frame coordinate.

    The clip is the frame padded to a square of side ``max(h_b, w_b)`` (in appearance cells):
    ``(w2 * w_b / side, h2 * h_b / side)``, each [B] float.
    """
    rows, cols = (n.to(torch.float32) for n in valid_extent(valid))
    side = torch.maximum(rows, cols)
    return grid[1] * cols / side, grid[0] * rows / side


REFINEMENTS = ("st", "t", "s", "none")


def hard_filter(
    temporal_prob: Tensor,
    spatial_prob: Tensor,
    theta_t: float,
    theta_s: float,
    refinement: str = "st",
) -> Tensor:
    """Eqs. (10) and (12): frames whose context passes the filters, [B, T] bool.

    ``HF_t`` passes frames with ``s^t > theta_t``, then ``HF_s`` those of them with
    ``s^s > theta_s`` (the two levels commute as masks; the paper applies ``HF_t`` first).
    ``refinement`` selects the levels, as the rows of the paper's table 4: ``"st"`` both (the
    paper's model), ``"t"`` or ``"s"`` one, ``"none"`` every frame passes (ICG without ICR).
    """
    if refinement not in REFINEMENTS:
        raise ValueError(f"refinement must be one of {REFINEMENTS}, got {refinement!r}")
    keep = torch.ones_like(temporal_prob, dtype=torch.bool)
    if "t" in refinement:
        keep = keep & (temporal_prob > theta_t)
    if "s" in refinement:
        keep = keep & (spatial_prob > theta_s)
    return keep


@dataclass
class StageContext:
    """What one decoding stage's ICG + ICR produce (all [B, Ts, ...])."""

    temporal_logits: Tensor  # [B,Ts] logits of s^t_k (eq. 9)
    spatial_conf: Tensor  # [B,Ts] s^s_k in (0, 1) (eq. 11)
    keep: Tensor  # [B,Ts] bool, frames that passed HF_t and HF_s
    tokens: Tensor | None  # [B,Ts,d] C_k (rows where keep is False are unused), None if not built


class InstanceContext(nn.Module):
    """ICG + ICR of one decoding stage (the modules are shared by all stages)."""

    def __init__(
        self,
        d_model: int,
        roi_size: int = 2,
        sampling_ratio: int = 2,
        refinement: str = "st",
        with_tokens: bool = True,
    ) -> None:
        super().__init__()
        if refinement not in REFINEMENTS:
            raise ValueError(f"refinement must be one of {REFINEMENTS}, got {refinement!r}")
        self.roi_size = roi_size
        self.sampling_ratio = sampling_ratio
        self.refinement = refinement
        self.temporal_mlp = MLP(d_model, d_model, 1, 2)  # eq. (9)
        self.appearance_mlp = MLP(d_model, d_model, 1, 2)  # eq. (11), appearance branch
        self.motion_mlp = MLP(d_model, d_model, 1, 2)  # eq. (11), motion branch
        # C_k = MLP([C^a ; C^m]); not built when no stage reads context (the baseline)
        self.fuse = MLP(2 * d_model, d_model, d_model, 2) if with_tokens else None

    def generate(
        self,
        appearance: Tensor,
        motion: Tensor,
        regions: Tensor,
        valid: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """ICG, eq. (8). ``appearance`` [B, Ts, d, h, w] and ``motion`` [B, Ts, d, h2, w2] are
        the encoded maps of each frame; ``regions`` [B, Ts, 4] normalized cxcywh (eq. 7);
        ``valid`` [B, h, w] bool. Returns ``(C^a_k, C^m_k)``, each [B, Ts, d]."""
        rows, cols = (n.to(regions.dtype) for n in valid_extent(valid))
        c_a = roi_context(
            replicate_padding(appearance, valid),
            regions,
            cols,
            rows,
            self.roi_size,
            self.sampling_ratio,
        )
        sx, sy = motion_scales(valid, (motion.shape[3], motion.shape[4]))
        c_m = roi_context(motion, regions, sx, sy, self.roi_size, self.sampling_ratio)
        return c_a, c_m

    def spatial_confidence(self, c_a: Tensor, c_m: Tensor) -> Tensor:
        """Eq. (11): ``(sigmoid(MLP_a(C^a)) + sigmoid(MLP_m(C^m))) / 2``, [B, Ts]."""
        return (self.appearance_mlp(c_a).sigmoid() + self.motion_mlp(c_m).sigmoid())[..., 0] / 2

    def forward(
        self,
        queries_t: Tensor,
        appearance: Tensor,
        motion: Tensor,
        regions: Tensor,
        valid: Tensor,
        theta_t: float,
        theta_s: float,
        *,
        keep: Tensor | None = None,
        build_tokens: bool = True,
    ) -> StageContext:
        """ICG then ICR for stage ``k``: ``queries_t`` is ``P_k`` [B, Ts, d], ``regions`` is
        ``R_k`` [B, Ts, 4]. ``keep`` [B, Ts] bool replaces the filters' choice (the released
        code's training-time selection by the GT, see ``CGSTVGConfig.context_selection``).
        ``build_tokens=False`` (the last stage, whose context nothing reads) skips ``C_k``."""
        temporal_logits = self.temporal_mlp(queries_t)[..., 0]  # eq. (9), before the sigmoid
        c_a, c_m = self.generate(appearance, motion, regions.detach(), valid)
        spatial = self.spatial_confidence(c_a, c_m)
        if keep is None:
            keep = hard_filter(
                temporal_logits.sigmoid(), spatial, theta_t, theta_s, self.refinement
            )
        tokens = None
        if build_tokens and self.fuse is not None:
            tokens = self.fuse(torch.cat((c_a, c_m), dim=-1))
        return StageContext(temporal_logits, spatial, keep, tokens)
