"""CSDVL training losses (paper eq. 4-5, supplementary B.2): a dict of named terms + weights.

``L = 5 * l1 + 2 * giou + 5 * tg + 1 * ta`` by default (:data:`DEFAULT_LOSS_WEIGHTS`, the one
place these numbers live: :class:`stvg.train.config.TrainConfig` takes its defaults from it;
:func:`total_loss` weighs the terms for training, the benchmarks and the tests).

* ``l1`` / ``giou`` (DETR / TubeDETR): on GT frames only (``box_mask``), boxes in normalized
  ``cxcywh``; ``l1 = sum |b^ - b| / n_boxes`` (summed over the 4 coordinates) and
  ``giou = sum (1 - GIoU(b^, b)) / n_boxes`` with ``n_boxes`` the GT boxes of the whole batch.
* ``tg``: binary cross-entropy between ``sigmoid(S)`` and the 2D-TAN *scaled* IoU targets
  ``clip((IoU - min_iou) / (max_iou - min_iou), 0, 1)``, averaged over the valid proposals of
  every sample (2D-TAN's ``bce_rescale_loss`` with bias 0). 2D-TAN uses ``min_iou = 0.5``,
  ``max_iou = 1.0`` on Charades and ActivityNet (0.3 / 0.7 on TACoS); CSDVL does not say, we take
  0.5 / 1.0. IoU is between the proposal ``(i, j)`` = ``[i, j + 1)`` and the GT span, both in
  continuous clip units (clip ``c`` covers ``[c, c + 1)``).
* ``ta``, the temporal attentive loss of ABLR (CSDVL ref. [34]) as written in STVGFormer eq. (6):
  ``lambda_f * (-sum_t m^f_t log p^f_t / sum_t m^f_t) + lambda_c * (-sum_t m^c_t log p^c_t /
  sum_t m^c_t)`` with ``lambda_f = 0.5``, ``lambda_c = 1.0``. ``p`` is the *softmax over time*
  of the frame (resp. clip) logits, as ABLR's temporal attention: with per-position sigmoids
  this formula only sees positives and is minimized by predicting 1 everywhere. Averaged over
  the samples that have at least one positive.
* ``aux_l1`` / ``aux_giou`` (not stated by the paper; ``aux_loss`` setting): DETR's auxiliary
  decoder losses, :func:`aux_box_losses`, weighted as ``l1`` / ``giou``.
* ``att`` (not in the paper; weight 0 in the paper presets): a spatial attention loss for training
  from scratch. On each GT frame, the static decoder's cross-attention over the visual cells
  (every layer, heads averaged, renormalized over the valid cells) is scored by cross-entropy
  against the share of the GT box that falls in each cell: ``-sum_ij q_ij log p_ij`` with
  ``q_ij = area(cell_ij & box) / area(box)``. It hands the decoder the per-cell signal "this is
  the described object" that MDETR pre-training gives the paper's static stream.
* ``d2s_att`` (not in the paper; ``loss_d2s_att``): the same cross-entropy on the
  dynamic-to-static cross-attention over the dynamic grid (:func:`d2s_attention_loss`), so that
  the block reads the described actor's motion, the one cue that tells a look-alike apart.
* ``presence`` (not in the paper; ``loss_presence``, needs ``model.presence_head``): binary
  cross-entropy between the per-frame ``presence_logits`` and ``frame_in_tube``, averaged over
  every frame of the batch (:func:`presence_loss`). A negative query (a sentence paired with a
  segment it does not occur in, :mod:`stvg.train.negatives`) has no frame in the tube: all its
  targets are 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from stvg.errors import InputError
from stvg.evaluate.boxes import box_cxcywh_to_xyxy, generalized_box_iou
from stvg.models.collaboration import valid_extent

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {"l1": 5.0, "giou": 2.0, "tg": 5.0, "ta": 1.0}
MIN_IOU = 0.5
MAX_IOU = 1.0
FRAME_WEIGHT = 0.5
CLIP_WEIGHT = 1.0


# ----------------------------------------------------------------------------- targets
def span_iou_map(start: float, end: float, num_clips: int) -> Tensor:
    """IoU of every proposal ``[i, j + 1)`` with the span ``[start, end)``: [T, T] float.

    ``start``/``end`` are in clip units (fractions of the segment times ``T``). Entries with
    ``i > j`` are 0.
    """
    i = torch.arange(num_clips, dtype=torch.float64)[:, None]  # proposal start
    j = torch.arange(num_clips, dtype=torch.float64)[None, :] + 1  # proposal end (exclusive)
    inter = (torch.minimum(j, torch.tensor(end)) - torch.maximum(i, torch.tensor(start))).clamp(
        min=0
    )
    union = (j - i) + (end - start) - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
    return torch.where(j > i, iou, torch.zeros_like(iou)).float()


def scaled_iou_targets(iou: Tensor, min_iou: float = MIN_IOU, max_iou: float = MAX_IOU) -> Tensor:
    """2D-TAN's target rescaling: ``clip((iou - min_iou) / (max_iou - min_iou), 0, 1)``."""
    return ((iou - min_iou) / (max_iou - min_iou)).clamp(0.0, 1.0)


def clips_in_span(start: float, end: float, num_clips: int) -> Tensor:
    """[T] bool: clip ``c`` (covering ``[c, c + 1)``) overlaps ``[start, end)``.

    The overlap rule matches ``stvg.features.dataset`` (``clip_in_tube``).
    """
    c = torch.arange(num_clips, dtype=torch.float64)
    return (c + 1 > start) & (c < end)


def build_targets(
    span: tuple[float, float] | Tensor,
    frame_in_tube: Tensor,
    boxes: Tensor,
    num_clips: int,
    *,
    box_mask: Tensor | None = None,
    min_iou: float = MIN_IOU,
    max_iou: float = MAX_IOU,
) -> dict[str, Tensor]:
    """One sample's targets.

    ``span`` = GT ``(start, end)`` in clip units (``[0, num_clips]``, half-open, floats allowed);
    ``frame_in_tube`` [Ts] bool (static frame inside the GT tube); ``boxes`` [Ts, 4] normalized
    cxcywh GT boxes (ignored where ``box_mask`` is False; ``box_mask`` defaults to
    ``frame_in_tube``). Returns ``boxes`` [Ts, 4], ``box_mask`` [Ts] bool, ``frame_in_tube``
    [Ts] bool, ``clip_in_tube`` [Td] bool, ``iou_map`` [Td, Td] and ``map_target`` [Td, Td]
    (scaled IoU). Stack a list of them with :func:`stack_targets`.
    """
    start, end = (float(v) for v in span)
    iou = span_iou_map(start, end, num_clips)
    frame_in_tube = frame_in_tube.bool()
    return {
        "boxes": boxes.float(),
        "box_mask": (frame_in_tube if box_mask is None else box_mask).bool(),
        "frame_in_tube": frame_in_tube,
        "clip_in_tube": clips_in_span(start, end, num_clips),
        "iou_map": iou,
        "map_target": scaled_iou_targets(iou, min_iou, max_iou),
    }


def stack_targets(targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Stack per-sample targets of :func:`build_targets` along a new batch dimension."""
    return {k: torch.stack([t[k] for t in targets]) for k in targets[0]}


def temporal_targets(
    targets: Mapping[str, Tensor],
    num_clips: int,
    device: torch.device,
    min_iou: float = MIN_IOU,
    max_iou: float = MAX_IOU,
) -> tuple[Tensor, Tensor]:
    """A batch's ``(map_target [B, Td, Td], clip_in_tube [B, Td] bool)`` on ``device``.

    Each is taken from ``targets`` when present (:func:`build_targets`), else derived from
    ``span`` [B, 2] (the GT tube as fractions of the segment, times ``num_clips`` in clip units):
    the scaled IoU map of :func:`span_iou_map` and :func:`clips_in_span`.
    """
    map_target = targets.get("map_target")
    clip_in_tube = targets.get("clip_in_tube")
    if map_target is None or clip_in_tube is None:
        spans = (targets["span"].detach().double().cpu() * num_clips).tolist()
        if map_target is None:
            map_target = torch.stack(
                [
                    scaled_iou_targets(span_iou_map(s, e, num_clips), min_iou, max_iou)
                    for s, e in spans
                ]
            )
        if clip_in_tube is None:
            clip_in_tube = torch.stack([clips_in_span(s, e, num_clips) for s, e in spans])
    return map_target.to(device), clip_in_tube.to(device).bool()


# ----------------------------------------------------------------------------- loss terms
def box_losses(pred: Tensor, gt: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(l1, giou)`` on the frames where ``mask`` is True.

    ``pred``, ``gt`` [B, Ts, 4] normalized cxcywh; ``mask`` [B, Ts] bool. Both are sums over the
    GT boxes divided by their number (at least 1); 0 (with gradient) when there is no GT box.
    """
    p, g = pred[mask], gt[mask].to(pred.dtype)  # [n,4]
    n = max(int(mask.sum()), 1)
    l1 = (p - g).abs().sum() / n
    giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(p), box_cxcywh_to_xyxy(g)))
    return l1, (1 - giou).sum() / n


def aux_box_losses(aux_boxes: Tensor, targets: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """DETR's auxiliary decoder losses: ``{"aux_l1", "aux_giou"}``, each the sum over the
    earlier layers of :func:`box_losses` on that layer's boxes.

    ``aux_boxes`` [B, N - 1, Ts, 4] (the model's ``aux_boxes``); ``targets`` needs ``boxes``
    and ``box_mask`` as :func:`compute_losses`. Zero (with gradient) for a one-layer model.
    """
    mask = targets["box_mask"].bool()
    l1 = giou = aux_boxes.sum() * 0.0
    for layer in range(aux_boxes.shape[1]):
        a, b = box_losses(aux_boxes[:, layer], targets["boxes"], mask)
        l1, giou = l1 + a, giou + b
    return {"aux_l1": l1, "aux_giou": giou}


def box_cell_shares(
    boxes: Tensor, h: int, w: int, rows: Tensor | None = None, cols: Tensor | None = None
) -> Tensor:
    """The share of each box in each cell of an ``h x w`` grid over the unit square.

    ``boxes`` [..., 4] normalized cxcywh. Cell ``(i, j)`` covers ``[j / w, (j + 1) / w) x
    [i / h, (i + 1) / h)``. Returns [..., h, w]: ``area(cell & box) / area(box)`` (sums to 1 for
    a box inside the image; all zeros for an empty box). With ``rows`` and ``cols`` (tensors
    broadcastable to ``boxes[..., 0]``) the unit square is only the top-left ``rows x cols``
    cells of each box's grid (a grid padded in a batch): cell ``(i, j)`` covers
    ``[j / cols, (j + 1) / cols) x [i / rows, (i + 1) / rows)``, and the cells past them start
    at or beyond 1, so they get nothing.
    """
    x1, y1, x2, y2 = box_cxcywh_to_xyxy(boxes.float()).clamp(0.0, 1.0).unbind(-1)
    device = boxes.device
    rows = torch.tensor(h, device=device) if rows is None else rows.to(device)
    cols = torch.tensor(w, device=device) if cols is None else cols.to(device)
    edges_x = torch.arange(w + 1, device=device, dtype=torch.float32) / cols[..., None]
    edges_y = torch.arange(h + 1, device=device, dtype=torch.float32) / rows[..., None]
    over_x = (
        torch.minimum(edges_x[..., 1:], x2[..., None])
        - torch.maximum(edges_x[..., :-1], x1[..., None])
    ).clamp(min=0)  # [..., w]
    over_y = (
        torch.minimum(edges_y[..., 1:], y2[..., None])
        - torch.maximum(edges_y[..., :-1], y1[..., None])
    ).clamp(min=0)  # [..., h]
    area = over_y[..., :, None] * over_x[..., None, :]  # [..., h, w]
    return area / area.sum((-2, -1), keepdim=True).clamp(min=1e-12)


def attention_box_loss(
    attention: Tensor, boxes: Tensor, mask: Tensor, valid: Tensor | None = None
) -> Tensor:
    """``att``: cross-entropy of the decoder attention against the GT box's cell shares.

    ``attention`` [B, N, Ts, h, w] (the model's ``s2d_attention``: N decoder layers), ``boxes``
    [B, Ts, 4] normalized cxcywh over the valid part of the grid, ``mask`` [B, Ts] GT frames,
    ``valid`` [B, h, w] bool valid cells (default all; a grid padded in a batch keeps its
    valid cells in the top-left corner). Averaged over layers and GT frames; 0 (with gradient)
    when there is no GT frame.
    """
    b, n, ts, h, w = attention.shape
    if not bool(mask.any()):
        return attention.sum() * 0.0
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=attention.device)
    valid = valid.bool()
    rows, cols = valid_extent(valid)  # [B] each sample's valid grid
    shares = box_cell_shares(boxes, h, w, rows[:, None], cols[:, None])  # [B, Ts, h, w]
    mass = attention.float() * valid[:, None, None]
    log_p = (mass.clamp(min=1e-12) / mass.sum((-2, -1), keepdim=True).clamp(min=1e-12)).log()
    per_frame = -(shares[:, None] * log_p).sum((-2, -1))  # [B, N, Ts]
    return per_frame.mean(1)[mask.bool()].mean()


def attention_term(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
    """``att`` of any model of the zoo: :func:`attention_box_loss` on the model's
    ``s2d_attention`` [B, N, Ts, h, w] (``targets`` as :func:`compute_losses`'). A model that
    returns no such map (CG-STVG without ``cell_attention``) is an :class:`InputError` naming
    ``loss_att``."""
    if "s2d_attention" not in outputs:
        raise InputError(
            "the attention loss needs the model's s2d_attention maps, which it did not return",
            field="loss_att",
            hint="set loss_att=0, or model.cell_attention=true (cgstvg)",
        )
    return attention_box_loss(
        outputs["s2d_attention"],
        targets["boxes"],
        targets["box_mask"].bool(),
        targets.get("image_mask"),
    )


def square_box_shares(boxes: Tensor, frame_size: Tensor, grid: tuple[int, int]) -> Tensor:
    """The share of each box in each cell of a ``grid`` laid over the frame padded at the right
    and bottom to a square (stage one's clip layout, hence the dynamic stream's grid).

    ``boxes`` [B, Ts, 4] normalized cxcywh (by the frame's width and height), ``frame_size``
    [B, 2] the frames' ``(width, height)``. Returns [B, Ts, g_h, g_w]
    (:func:`box_cell_shares` of the boxes normalized by ``max(width, height)``)."""
    size = frame_size.to(boxes.device, torch.float32)
    scale = size / size.max(1, keepdim=True).values  # [B,2]: (W, H) / side
    scaled = boxes.float() * scale.repeat(1, 2)[:, None]
    return box_cell_shares(scaled, *grid)


def d2s_attention_loss(
    attention: Tensor,
    boxes: Tensor,
    mask: Tensor,
    frame_size: Tensor,
    grid: tuple[int, int],
) -> Tensor:
    """``d2s_att``: cross-entropy of the dynamic-to-static attention against the GT box's shares
    of the dynamic grid's cells, ``-sum_s q_s log p_s``.

    ``attention`` [B, N, Ts, S] (the model's ``d2s_attention``, ``S = g_h * g_w``), ``boxes``
    [B, Ts, 4] normalized cxcywh, ``mask`` [B, Ts] GT frames, ``frame_size`` [B, 2] (width,
    height) in pixels, ``grid`` the dynamic grid ``(g_h, g_w)``: the cells of
    :func:`square_box_shares`. Averaged over blocks and GT frames; 0 (with gradient) when there
    is no GT frame."""
    if not bool(mask.any()):
        return attention.sum() * 0.0
    shares = square_box_shares(boxes, frame_size, grid).flatten(2)  # [B,Ts,S]
    log_p = attention.float().clamp(min=1e-12).log()
    per_frame = -(shares[:, None] * log_p).sum(-1)  # [B,N,Ts]
    return per_frame.mean(1)[mask.bool()].mean()


def presence_loss(presence_logits: Tensor, frame_in_tube: Tensor) -> Tensor:
    """``presence``: ``mean_{b,t} BCE(sigmoid(logit_bt), m_bt)`` over every frame of the batch,
    ``presence_logits`` [B, Ts], ``frame_in_tube`` [B, Ts] bool (the targets)."""
    return F.binary_cross_entropy_with_logits(
        presence_logits, frame_in_tube.to(presence_logits.dtype), reduction="mean"
    )


def temporal_grounding_loss(score_map: Tensor, map_target: Tensor, map_mask: Tensor) -> Tensor:
    """BCE-with-logits between ``score_map`` [B, T, T] and ``map_target`` [B, T, T] (in [0, 1]),
    averaged over the valid proposals ``map_mask`` [T, T] of all samples."""
    mask = map_mask.expand_as(score_map)
    return F.binary_cross_entropy_with_logits(
        score_map[mask], map_target.to(score_map.dtype)[mask], reduction="mean"
    )


def attentive_term(logits: Tensor, positive: Tensor) -> Tensor:
    """``mean_b [-sum_t m_t log softmax_t(logits_b) / sum_t m_t]`` over samples with a positive.

    ``logits`` [B, T], ``positive`` [B, T] bool. 0 (with gradient) if no sample has a positive.
    """
    m = positive.to(logits.dtype)
    count = m.sum(1)  # [B]
    per_sample = -(m * logits.log_softmax(1)).sum(1) / count.clamp(min=1)
    keep = count > 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return per_sample[keep].mean()


def temporal_attentive_loss(
    frame_logits: Tensor,
    frame_in_tube: Tensor,
    clip_logits: Tensor,
    clip_in_tube: Tensor,
    frame_weight: float = FRAME_WEIGHT,
    clip_weight: float = CLIP_WEIGHT,
) -> Tensor:
    """``L_ta = frame_weight * term(frames) + clip_weight * term(clips)`` (supplementary B.2)."""
    return frame_weight * attentive_term(frame_logits, frame_in_tube.bool()) + (
        clip_weight * attentive_term(clip_logits, clip_in_tube.bool())
    )


def compute_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    *,
    min_iou: float = MIN_IOU,
    max_iou: float = MAX_IOU,
    frame_weight: float = FRAME_WEIGHT,
    clip_weight: float = CLIP_WEIGHT,
    attention: bool = False,
    d2s_attention: bool = False,
    presence: bool = False,
) -> dict[str, Tensor]:
    """The unweighted terms ``{"l1", "giou", "tg", "ta"}`` for a batch, plus ``att`` with
    ``attention`` (the spatial attention loss, not in the paper), ``d2s_att`` with
    ``d2s_attention`` (:func:`d2s_attention_loss`; needs the model's ``d2s_attention`` output
    and ``frame_size`` [B, 2] and ``motion`` in ``targets``, as a collated feature batch has)
    and ``presence`` with ``presence`` (:func:`presence_loss`; needs ``presence_logits``).

    ``outputs`` is the model's dict. ``targets`` (a collated feature batch works as is) needs
    ``boxes`` [B, Ts, 4], ``box_mask`` [B, Ts], ``frame_in_tube`` [B, Ts], and either
    ``map_target`` [B, Td, Td] or ``span`` [B, 2] (GT tube as fractions of the segment, turned
    into clip units by ``* Td``); ``clip_in_tube`` [B, Td] is taken from the batch when present,
    else derived from ``span``/``iou_map`` with :func:`clips_in_span`.
    """
    score_map = outputs["score_map"]
    l1, giou = box_losses(outputs["pred_boxes"], targets["boxes"], targets["box_mask"].bool())
    map_target, clip_in_tube = temporal_targets(
        targets, score_map.shape[-1], score_map.device, min_iou, max_iou
    )
    tg = temporal_grounding_loss(score_map, map_target, outputs["map_mask"])
    ta = temporal_attentive_loss(
        outputs["frame_logits"],
        targets["frame_in_tube"],
        outputs["clip_logits"],
        clip_in_tube,
        frame_weight,
        clip_weight,
    )
    terms = {"l1": l1, "giou": giou, "tg": tg, "ta": ta}
    if attention:
        terms["att"] = attention_term(outputs, targets)
    if d2s_attention:
        if "d2s_attention" not in outputs:
            raise InputError(
                "the d2s attention loss needs the model's d2s_attention maps",
                field="loss_d2s_att",
                hint="set model.d2s_attention=output (or prior) with collab d2s or full",
            )
        terms["d2s_att"] = d2s_attention_loss(
            outputs["d2s_attention"],
            targets["boxes"],
            targets["box_mask"].bool(),
            targets["frame_size"],
            tuple(targets["motion"].shape[-2:]),
        )
    if presence:
        if "presence_logits" not in outputs:
            raise InputError(
                "the presence loss needs the model's presence_logits",
                field="loss_presence",
                hint="set model.presence_head=true",
            )
        terms["presence"] = presence_loss(outputs["presence_logits"], targets["frame_in_tube"])
    return terms


def total_loss(terms: Mapping[str, Tensor], weights: Mapping[str, float] | None = None) -> Tensor:
    """The weighted loss ``sum_k weights[k] * terms[k]`` (default :data:`DEFAULT_LOSS_WEIGHTS`).

    Training, the benchmarks and the tests all weigh the terms here. Summed in the order of
    ``weights``, left to right; a key with weight 0 or without a term in ``terms`` (``att``
    without ``attention``) adds nothing. A 0-dim tensor.
    """
    weights = DEFAULT_LOSS_WEIGHTS if weights is None else weights
    return sum(w * terms[k] for k, w in weights.items() if w and k in terms)
