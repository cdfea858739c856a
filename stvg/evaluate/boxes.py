"""Pure box and span operations; the box format is in every function's name.

Conventions (docs/design.md section 3):

* ``xyxy`` boxes are ``[x1, y1, x2, y2]`` with ``x1 <= x2`` and ``y1 <= y2``, in pixels of the
  original frame (or normalized to [0, 1] inside models); no ``+1`` anywhere: the area of
  ``[0, 0, 10, 10]`` is 100.
* ``cxcywh`` boxes are ``[cx, cy, w, h]`` (what the models predict, normalized).
* ``xywh`` boxes are ``[x, y, w, h]`` with ``(x, y)`` the top-left corner (HC-STVG, VidOR-derived
  TubeDETR files).
* Spans are half-open ``[start, end)`` of frame ids.

IoU is ``inter / union`` with ``union = area1 + area2 - inter`` computed in that order, as the
published evaluators do (TubeDETR's ``np_box_iou``, the HC-STVG script's ``iou2d``), so the
scorer reproduces their float64 results. A zero union (two zero-area boxes) gives IoU 0, never NaN.

Array functions accept numpy arrays or torch tensors of shape ``[..., 4]`` and return the same
kind; :func:`generalized_box_iou` is torch only (the training losses use it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported lazily so that scoring (pure Python and numpy) starts fast.
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def box_iou_xyxy(box1: Sequence[float], box2: Sequence[float]) -> float:
    """IoU of two single ``xyxy`` boxes as a Python float (float64); 0.0 when the union is 0.

    The arithmetic follows TubeDETR's ``np_box_iou`` step by step: areas, clipped overlap,
    ``union = area1 + area2 - inter``, ``inter / union``.
    """
    area1 = (box1[2] - box1[0]) * (box1[3] - box1[1])
    area2 = (box2[2] - box2[0]) * (box2[3] - box2[1])
    w = max(min(box1[2], box2[2]) - max(box1[0], box2[0]), 0)
    h = max(min(box1[3], box2[3]) - max(box1[1], box2[1]), 0)
    inter = w * h
    union = area1 + area2 - inter
    if union <= 0:
        return 0.0
    return float(inter / union)


def box_area_xyxy(boxes: ArrayT) -> ArrayT:
    """Areas ``(x2 - x1) * (y2 - y1)`` of ``[..., 4]`` xyxy boxes -> ``[...]``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _stack(parts: list, like: ArrayT) -> ArrayT:
    if _is_torch(like):
        import torch

        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def box_cxcywh_to_xyxy(boxes: ArrayT) -> ArrayT:
    """``[..., 4]`` ``(cx, cy, w, h)`` -> ``(cx - w/2, cy - h/2, cx + w/2, cy + h/2)``."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return _stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], boxes)


def box_xyxy_to_cxcywh(boxes: ArrayT) -> ArrayT:
    """``[..., 4]`` ``(x1, y1, x2, y2)`` -> ``((x1 + x2)/2, (y1 + y2)/2, x2 - x1, y2 - y1)``."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def box_xywh_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    """One ``[x, y, w, h]`` box -> ``(x, y, x + w, y + h)`` (the sums the evaluators compute)."""
    x, y, w, h = box
    return (x, y, x + w, y + h)


def box_xyxy_to_xywh(box: Sequence[float]) -> tuple[float, float, float, float]:
    """One ``[x1, y1, x2, y2]`` box -> ``(x1, y1, x2 - x1, y2 - y1)``."""
    x1, y1, x2, y2 = box
    return (x1, y1, x2 - x1, y2 - y1)


def _inter_union(boxes1: ArrayT, boxes2: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Pairwise intersection and union areas of ``[N, 4]`` x ``[M, 4]`` xyxy boxes -> ``[N, M]``."""
    area1 = box_area_xyxy(boxes1)  # [N]
    area2 = box_area_xyxy(boxes2)  # [M]
    if _is_torch(boxes1):
        import torch

        lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N,M,2]
        rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N,M,2]
    else:
        lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N,M,2]
        rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N,M,2]
    wh = (rb - lt).clip(min=0)  # [N,M,2]
    inter = wh[..., 0] * wh[..., 1]  # [N,M]
    union = area1[:, None] + area2[None, :] - inter  # [N,M]
    return inter, union


def _safe_div(num: ArrayT, den: ArrayT) -> ArrayT:
    """``num / den`` where ``den > 0``, else 0; no NaN in values or (torch) gradients."""
    if _is_torch(num):
        import torch

        ok = den > 0
        return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), 0.0)
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def box_iou_matrix_xyxy(boxes1: ArrayT, boxes2: ArrayT) -> ArrayT:
    """Pairwise IoU of ``[N, 4]`` and ``[M, 4]`` xyxy boxes -> ``[N, M]``; 0 where the union is 0."""
    inter, union = _inter_union(boxes1, boxes2)
    return _safe_div(inter, union)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalized IoU (Rezatofighi et al. 2019) of ``[N, 4]`` x ``[M, 4]`` xyxy boxes -> ``[N, M]``.

    ``GIoU = IoU - (C - U) / C`` with ``C`` the area of the smallest enclosing box, as in DETR's
    ``box_ops``. Unlike DETR it accepts zero-area boxes: a zero union gives IoU 0 and a zero
    enclosing area drops the penalty term (both boxes are then the same point), so values and
    gradients stay finite. Values lie in ``[-1, 1]``.
    """
    import torch

    inter, union = _inter_union(boxes1, boxes2)
    iou = _safe_div(inter, union)  # [N,M]
    lt = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N,M,2]
    rb = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N,M,2]
    wh = (rb - lt).clamp(min=0)  # [N,M,2]
    enclosing = wh[..., 0] * wh[..., 1]  # [N,M]
    return iou - _safe_div(enclosing - union, enclosing)


def span_length(span: Sequence[int]) -> int:
    """Number of frames in a half-open span (0 when ``end <= start``)."""
    return max(int(span[1]) - int(span[0]), 0)


def span_intersection(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of frames two half-open spans share."""
    return max(min(a[1], b[1]) - max(a[0], b[0]), 0)


def span_iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Temporal IoU of two half-open spans ``[start, end)`` of frame ids.

    ``inter = min(ends) - max(starts)``; 0.0 when ``inter <= 0`` (disjoint or touching spans, or
    an empty span), else ``inter / (len(a) + len(b) - inter)``: TubeDETR's tIoU formula.
    """
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union
