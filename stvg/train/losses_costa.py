"""CoSTA's training losses (AAAI 2024, eq. 6-8): a dict of named terms + weights.

``L = L_s + lambda_2 L_t + lambda_3 L_e + lambda_4 L_d`` (eq. 8) with
``L_s = lambda_0 L_giou + lambda_1 L_1`` (eq. 6), spelled out as the terms of
:data:`COSTA_LOSS_WEIGHTS`:

* ``l1`` / ``giou`` (eq. 6): on the frames with a GT box (``box_mask``), as CSDVL's
  (:func:`stvg.train.losses.box_losses`: sums over the GT boxes of the batch divided by their
  number). The boxes are the spatial decoder's last anchors on every GT frame.
* ``kl_start`` / ``kl_end`` (eq. 7): ``KL(pi || softmax(logits))`` over the frames, with ``pi``
  a 1-D Gaussian of standard deviation ``sigma`` frames centred on the GT start (the first frame
  of the tube) or end (its last frame), normalized over the ``Ts`` frames (TubeDETR's soft
  start/end targets). Summed over the frames, averaged over the samples that have a tube.
* ``enc_att`` / ``dec_att``: the "attendance" of the target in each frame, binary cross-entropy
  between the attendance logits (from the encoder's [CLS] tokens, ``L_e``, and from the temporal
  decoder's last queries, ``L_d``) and ``frame_in_tube``, averaged over frames and samples.

The paper gives no weights; the defaults are TubeDETR's (L1 5, GIoU 2, start/end KL 10, the
attendance terms 1): ``lambda_0 = 2``, ``lambda_1 = 5``, ``lambda_2 = 10``, ``lambda_3 =
lambda_4 = 1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from stvg.train.losses import attention_term, box_losses, total_loss

COSTA_LOSS_WEIGHTS: dict[str, float] = {
    "l1": 5.0,
    "giou": 2.0,
    "kl_start": 10.0,
    "kl_end": 10.0,
    "enc_att": 1.0,
    "dec_att": 1.0,
}
SIGMA = 1.0  # frames, TubeDETR's


def tube_bounds(frame_in_tube: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """First and last in-tube frame of each sample: ``(start, last, has_tube)`` [B] each
    (``start``/``last`` are 0 where there is no tube). ``frame_in_tube`` [B, T] bool."""
    t = frame_in_tube.shape[1]
    idx = torch.arange(t, device=frame_in_tube.device)[None].expand_as(frame_in_tube)
    inside = frame_in_tube.bool()
    has = inside.any(1)
    start = torch.where(inside, idx, t).min(1).values
    last = torch.where(inside, idx, -1).max(1).values
    return torch.where(has, start, 0), torch.where(has, last, 0), has


def gaussian_targets(centre: Tensor, frames: int, sigma: float = SIGMA) -> Tensor:
    """``pi(t) = exp(-(t - centre)^2 / (2 sigma^2))`` normalized over ``t < frames``: [B, T]."""
    t = torch.arange(frames, device=centre.device, dtype=torch.float32)[None]
    g = torch.exp(-((t - centre[:, None].float()) ** 2) / (2 * sigma**2))
    return g / g.sum(1, keepdim=True)


def kl_term(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``sum_t pi_t (log pi_t - log softmax(logits)_t)`` per sample, averaged with ``weight`` [B]
    (1 for samples with a tube, 0 otherwise; at least one sample counted)."""
    log_p = logits.float().log_softmax(-1)
    kl = (torch.xlogy(target, target) - target * log_p).sum(-1)  # [B]
    return (kl * weight).sum() / weight.sum().clamp(min=1)


def compute_costa_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    sigma: float = SIGMA,
    *,
    attention: bool = False,
) -> dict[str, Tensor]:
    """The terms of eq. (6)-(8) from the model's outputs and the dataset's targets, plus ``att``
    (CSDVL's spatial attention loss, not in the paper: :func:`stvg.train.losses.attention_term`)
    with ``attention``.

    ``targets``: ``boxes`` [B, Ts, 4] normalized cxcywh, ``box_mask`` [B, Ts] bool,
    ``frame_in_tube`` [B, Ts] bool (e.g. a collated batch of :mod:`stvg.features.dataset`).
    """
    in_tube = targets["frame_in_tube"].bool()
    b, t = in_tube.shape
    l1, giou = box_losses(outputs["pred_boxes"], targets["boxes"], targets["box_mask"].bool())
    start, last, has = tube_bounds(in_tube)
    weight = has.float()
    kl_start = kl_term(outputs["start_logits"], gaussian_targets(start, t, sigma), weight)
    kl_end = kl_term(outputs["end_logits"], gaussian_targets(last, t, sigma), weight)
    truth = in_tube.float()
    enc_att = F.binary_cross_entropy_with_logits(outputs["enc_attendance"].float(), truth)
    dec_att = F.binary_cross_entropy_with_logits(outputs["dec_attendance"].float(), truth)
    terms = {
        "l1": l1,
        "giou": giou,
        "kl_start": kl_start,
        "kl_end": kl_end,
        "enc_att": enc_att,
        "dec_att": dec_att,
    }
    if attention:
        terms["att"] = attention_term(outputs, targets)
    return terms


def costa_total_loss(
    terms: Mapping[str, Tensor], weights: Mapping[str, float] | None = None
) -> Tensor:
    """Eq. (8): ``sum_k weights[k] * terms[k]`` (default :data:`COSTA_LOSS_WEIGHTS`)."""
    return total_loss(terms, COSTA_LOSS_WEIGHTS if weights is None else weights)
