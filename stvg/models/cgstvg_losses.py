"""CG-STVG's training losses, eqs. (13)-(14) summed over the K decoding stages.

``L = sum_k (L^t_k + L^s_k)`` with

* eq. (13) ``L^t_k = l_s KL(H*_s, H^s_k) + l_e KL(H*_e, H^e_k) + l_t BCE((H*_s, H*_e), s^t_k)``;
* eq. (14) ``L^s_k = l_l L1(B*, B_k) + l_i IoU(B*, B_k) + l_b BCE(IoU(B*, B_k), s^s_k)``;

weights ``l_s, l_e, l_t, l_l, l_i, l_b = 10, 10, 1, 5, 3, 1`` (section 4). Where the paper is
silent the released code (STCAT's criterion) decides:

* ``H*_s`` / ``H*_e``: a Gaussian over the ``Ts`` frames centred on the first / last frame of
  the GT tube, ``sigma = 2`` frames, plus ``1e-6`` and normalized to sum 1. ``H^s_k`` /
  ``H^e_k``: softmax over frames of the start / end logits. The KL term is
  ``mean_{b, t} p_t log((p_t + 1e-6) / q*_t)`` (predicted ``p``, target ``q*``), STCAT's
  reduction (a mean over frames, so the weight 10 means what it means there). Samples with no
  frame in the tube are left out.
* the temporal BCE: ``s^t_k`` (per frame) against "frame in the GT tube", averaged over frames;
  frames outside the tube weigh ``negative_weight`` (1 = the paper's plain BCE; the released
  code uses 0.3 on HC-STVG and VidSTG).
* ``L1`` is the plain L1 of DETR (the text says "smooth L1"; the released code and DETR use L1)
  and ``IoU`` is ``1 - GIoU``, both on GT frames summed and divided by the number of GT boxes.
* the spatial BCE: ``s^s_k`` (a probability, the mean of two sigmoids) against the IoU of
  ``B_k`` with the GT (no gradient through the target), on GT frames, averaged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from stvg.evaluate.boxes import box_cxcywh_to_xyxy
from stvg.models.cgstvg import paired_giou
from stvg.train.losses import attention_term

CGSTVG_LOSS_WEIGHTS: dict[str, float] = {
    "start": 10.0,
    "end": 10.0,
    "temporal_conf": 1.0,
    "l1": 5.0,
    "giou": 3.0,
    "spatial_conf": 1.0,
}
SIGMA = 2.0
EPS = 1e-6


def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of matching xyxy boxes ``a``, ``b`` [..., 4] -> [...]; 0 where the union is 0."""
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(
        min=0
    )
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def tube_bounds(frame_in_tube: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """First and last in-tube frame of each sample, ``frame_in_tube`` [B, T] bool.

    Returns ``(first, last, has)``, each [B] (``first = last = 0`` where ``has`` is False).
    """
    t = frame_in_tube.shape[1]
    idx = torch.arange(t, device=frame_in_tube.device)
    inside = frame_in_tube.bool()
    first = torch.where(inside, idx, t).min(1).values
    last = torch.where(inside, idx, -1).max(1).values
    has = inside.any(1)
    return first.where(has, 0), last.where(has, 0), has


def gaussian_target(centre: Tensor, length: int, sigma: float = SIGMA) -> Tensor:
    """``H*``: ``exp(-(t - c)^2 / (2 sigma^2)) + 1e-6`` normalized over ``t < length``: [B, T]."""
    t = torch.arange(length, device=centre.device, dtype=torch.float32)[None]
    g = torch.exp(-((t - centre[:, None].float()) ** 2) / (2 * sigma**2)) + EPS
    return g / g.sum(1, keepdim=True)


def kl_term(logits: Tensor, target: Tensor, keep: Tensor) -> Tensor:
    """``mean_{b in keep, t} p_t log((p_t + 1e-6) / q*_t)`` with ``p = softmax_t(logits)``.

    ``logits`` [B, T], ``target`` [B, T] (rows sum to 1), ``keep`` [B] bool; 0 (with gradient)
    when no sample is kept.
    """
    if not bool(keep.any()):
        return logits.sum() * 0.0
    p = logits.float().softmax(1)
    per_frame = p * ((p + EPS) / target).log()
    return per_frame[keep].mean()


def temporal_conf_term(logits: Tensor, in_tube: Tensor, negative_weight: float = 1.0) -> Tensor:
    """BCE of ``sigmoid(logits)`` [B, T] against ``in_tube`` [B, T] bool, negatives weighted
    by ``negative_weight``, averaged over all frames."""
    target = in_tube.to(logits.dtype)
    weight = torch.where(in_tube.bool(), 1.0, negative_weight).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def box_terms(pred: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(l1, giou, iou)`` of ``pred`` vs ``gt`` [B, T, 4] cxcywh on ``mask`` [B, T] frames.

    ``l1 = sum |pred - gt| / n`` and ``giou = sum (1 - GIoU) / n`` over the ``n`` GT boxes (at
    least 1); ``iou`` [n] the plain IoU of each GT frame's box (detached, eq. 14's BCE target).
    """
    p, g = pred[mask], gt[mask].to(pred.dtype)
    n = max(int(mask.sum()), 1)
    l1 = (p - g).abs().sum() / n
    pa, ga = box_cxcywh_to_xyxy(p), box_cxcywh_to_xyxy(g)
    giou = (1 - paired_giou(pa, ga)).sum() / n
    return l1, giou, paired_iou(pa, ga).detach()


def spatial_conf_term(conf: Tensor, iou: Tensor) -> Tensor:
    """BCE of the probabilities ``conf`` [n] against the IoU targets ``iou`` [n]; 0 if empty."""
    if conf.numel() == 0:
        return conf.sum() * 0.0
    return F.binary_cross_entropy(conf.float().clamp(EPS, 1 - EPS), iou.float())


def cgstvg_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    *,
    sigma: float = SIGMA,
    negative_weight: float = 1.0,
    attention: bool = False,
) -> dict[str, Tensor]:
    """The unweighted terms, each summed over the stages (``L = sum_k``), plus ``att`` (CSDVL's
    spatial attention loss, not in the paper, averaged over the stages' maps:
    :func:`stvg.train.losses.attention_term`) with ``attention``.

    ``outputs``: the model's dict (``stage_*``, ``temporal_logits``, ``spatial_conf``).
    ``targets`` (a collated feature batch works): ``boxes`` [B, Ts, 4], ``box_mask`` [B, Ts],
    ``frame_in_tube`` [B, Ts]. Returns ``start``, ``end``, ``temporal_conf``, ``l1``, ``giou``,
    ``spatial_conf`` and, per stage ``k`` (1-based), the same keys suffixed ``_k`` (for logs).
    """
    boxes = outputs["stage_boxes"]  # [B,K,Ts,4]
    k_stages, ts = boxes.shape[1], boxes.shape[2]
    in_tube = targets["frame_in_tube"].bool()
    box_mask = targets["box_mask"].bool()
    first, last, has = tube_bounds(in_tube)
    start_target = gaussian_target(first, ts, sigma)
    end_target = gaussian_target(last, ts, sigma)
    terms: dict[str, Tensor] = {}
    for k in range(k_stages):
        l1, giou, iou = box_terms(boxes[:, k], targets["boxes"], box_mask)
        stage = {
            "start": kl_term(outputs["stage_start"][:, k], start_target, has),
            "end": kl_term(outputs["stage_end"][:, k], end_target, has),
            "temporal_conf": temporal_conf_term(
                outputs["temporal_logits"][:, k], in_tube, negative_weight
            ),
            "l1": l1,
            "giou": giou,
            "spatial_conf": spatial_conf_term(outputs["spatial_conf"][:, k][box_mask], iou),
        }
        for name, value in stage.items():
            terms[f"{name}_{k + 1}"] = value
            terms[name] = terms[name] + value if name in terms else value
    if attention:
        terms["att"] = attention_term(outputs, targets)
    return terms


def cgstvg_total_loss(
    terms: Mapping[str, Tensor], weights: Mapping[str, float] | None = None
) -> Tensor:
    """``sum_name weights[name] * terms[name]`` (default :data:`CGSTVG_LOSS_WEIGHTS`)."""
    weights = CGSTVG_LOSS_WEIGHTS if weights is None else weights
    return torch.stack([w * terms[name] for name, w in weights.items()]).sum()
