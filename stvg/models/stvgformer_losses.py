"""STVGFormer's training loss, report eqs. (4)-(6): ``L = L_s + L_d`` with

* eq. (4) ``L_s = 5 L_l1 + 2 L_gIoU + 0.5 L^s_aux`` (the static branch),
* eq. (5) ``L_d = 5 L_tg + 1 L^d_aux`` (the dynamic branch),

the weights ``lambda_1..5 = 5, 2, 0.5, 5, 1`` of section 2.1 (:data:`STVGFORMER_LOSS_WEIGHTS`;
``stvg train``'s ``loss_*`` settings do not change them). The terms, unweighted:

* ``l1`` / ``giou``: CSDVL's box terms (:func:`stvg.train.losses.box_losses`) on the frames with a
  GT box, each summed over the boxes of the batch and divided by their number;
* ``tg``: binary cross-entropy between the sigmoid of the score map and the GT map "as done in"
  2D-TAN, i.e. on 2D-TAN's rescaled IoU (``(IoU - 0.5) / 0.5`` clipped to [0, 1]; the report
  says "the IoU" and cites 2D-TAN for the loss; :func:`stvg.train.losses.temporal_grounding_loss`),
  averaged over the valid proposals;
* ``aux_static`` / ``aux_dynamic``, eq. (6): ``-sum_t m_t log p_t / sum_t m_t`` over the static
  frames (``p^s_t`` from the frame head) and over the clips (``S^t_aux`` from the clip head),
  ``m_t`` = 1 inside the GT span. The report implements them "following" ABLR's temporal
  attention loss, whose ``p`` is a softmax over time: so is ours (with a per-position sigmoid the
  formula sees only positives and is minimized by 1 everywhere, whatever the input). Averaged
  over the samples with at least one positive (:func:`stvg.train.losses.attentive_term`).

With unit weights these are CSDVL's terms: ``0.5 aux_static + 1 aux_dynamic`` is CSDVL's ``ta``
(whose inner weights came from this report), so the two models train on the same total loss;
STVGFormer logs the two auxiliary terms apart.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from stvg.train.losses import (
    MAX_IOU,
    MIN_IOU,
    attention_term,
    attentive_term,
    box_losses,
    temporal_grounding_loss,
    temporal_targets,
)

STVGFORMER_LOSS_WEIGHTS: dict[str, float] = {
    "l1": 5.0,  # lambda_1
    "giou": 2.0,  # lambda_2
    "aux_static": 0.5,  # lambda_3
    "tg": 5.0,  # lambda_4
    "aux_dynamic": 1.0,  # lambda_5
}


def stvgformer_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    *,
    min_iou: float = MIN_IOU,
    max_iou: float = MAX_IOU,
    attention: bool = False,
) -> dict[str, Tensor]:
    """The unweighted terms of :data:`STVGFORMER_LOSS_WEIGHTS`, plus ``att`` (CSDVL's spatial
    attention loss, not in the report) with ``attention``.

    ``outputs``: the model's dict (``pred_boxes``, ``score_map``, ``map_mask``,
    ``frame_logits``, ``clip_logits``, and ``s2d_attention`` for ``att``). ``targets``: as
    :func:`stvg.train.losses.compute_losses` (a collated feature batch works as is).
    """
    score_map = outputs["score_map"]
    l1, giou = box_losses(outputs["pred_boxes"], targets["boxes"], targets["box_mask"].bool())
    map_target, clip_in_tube = temporal_targets(
        targets, score_map.shape[-1], score_map.device, min_iou, max_iou
    )
    terms = {
        "l1": l1,
        "giou": giou,
        "aux_static": attentive_term(outputs["frame_logits"], targets["frame_in_tube"].bool()),
        "tg": temporal_grounding_loss(score_map, map_target, outputs["map_mask"]),
        "aux_dynamic": attentive_term(outputs["clip_logits"], clip_in_tube),
    }
    if attention:
        terms["att"] = attention_term(outputs, targets)
    return terms
