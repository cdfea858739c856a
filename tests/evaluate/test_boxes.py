"""Box and span ops against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stvg.evaluate.boxes import (
    box_area_xyxy,
    box_cxcywh_to_xyxy,
    box_iou_matrix_xyxy,
    box_iou_xyxy,
    box_xywh_to_xyxy,
    box_xyxy_to_cxcywh,
    box_xyxy_to_xywh,
    generalized_box_iou,
    span_intersection,
    span_iou,
    span_length,
)


def test_box_iou_xyxy_by_hand():
    # identical: inter 100 / union 100
    assert box_iou_xyxy([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    # shifted by 5 in x: inter 5*10 = 50, union 100 + 100 - 50 = 150
    assert box_iou_xyxy([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3, abs=1e-15)
    # nested: [2,2,6,6] area 16 inside area 100 -> 16 / 100
    assert box_iou_xyxy([0, 0, 10, 10], [2, 2, 6, 6]) == pytest.approx(0.16, abs=1e-15)
    # disjoint and touching edges: inter 0
    assert box_iou_xyxy([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou_xyxy([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    # float boxes: [0.5,0,2.5,1] vs [1.5,0,3.5,1]: inter 1*1 = 1, union 2 + 2 - 1 = 3
    assert box_iou_xyxy([0.5, 0, 2.5, 1], [1.5, 0, 3.5, 1]) == pytest.approx(1 / 3, abs=1e-15)


def test_zero_area_boxes_give_zero_not_nan():
    point = [5.0, 5.0, 5.0, 5.0]
    line = [5.0, 0.0, 5.0, 10.0]  # width 0
    assert box_iou_xyxy(point, point) == 0.0  # union 0
    assert box_iou_xyxy(line, line) == 0.0
    assert box_iou_xyxy(line, [0, 0, 10, 10]) == 0.0  # inter 0, union 100
    boxes = np.array([point, line, [0, 0, 10, 10]], dtype=float)
    iou = box_iou_matrix_xyxy(boxes, boxes)
    assert not np.isnan(iou).any()
    assert iou.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    giou = generalized_box_iou(torch.tensor(boxes), torch.tensor(boxes))
    assert torch.isfinite(giou).all()


def test_box_iou_matrix_numpy_and_torch():
    a = [[0, 0, 10, 10], [0, 0, 20, 20]]
    b = [[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 110, 110]]
    # row 0: 50/150, 100/100, 0 ; row 1: [5,0,15,10] inside -> 100/400, 100/400, 0
    expected = [[1 / 3, 1.0, 0.0], [0.25, 0.25, 0.0]]
    out_np = box_iou_matrix_xyxy(np.array(a, float), np.array(b, float))
    assert out_np.shape == (2, 3)
    np.testing.assert_allclose(out_np, expected, atol=1e-15)
    out_t = box_iou_matrix_xyxy(
        torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    )
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), expected, atol=1e-15)


def test_area_and_format_conversions():
    assert box_area_xyxy(np.array([[1.0, 2.0, 4.0, 6.0]])).tolist() == [12.0]  # 3 * 4
    # cxcywh (5, 5, 4, 2) -> (3, 4, 7, 6)
    xyxy = box_cxcywh_to_xyxy(torch.tensor([[5.0, 5.0, 4.0, 2.0]]))
    assert xyxy.tolist() == [[3.0, 4.0, 7.0, 6.0]]
    assert box_xyxy_to_cxcywh(np.array([3.0, 4.0, 7.0, 6.0])).tolist() == [5.0, 5.0, 4.0, 2.0]
    assert box_xywh_to_xyxy([10, 20, 30, 40]) == (10, 20, 40, 60)
    assert box_xyxy_to_xywh([10, 20, 40, 60]) == (10, 20, 30, 40)


def test_generalized_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0], [0.5, 0.0, 1.5, 1.0]])
    giou = generalized_box_iou(a, b)
    assert giou.shape == (1, 3)
    # identical: 1; disjoint: IoU 0, hull [0,0,3,1] area 3, union 2 -> 0 - (3 - 2) / 3 = -1/3
    # half overlap: inter 0.5, union 1.5 -> IoU 1/3, hull area 1.5 = union -> 1/3
    np.testing.assert_allclose(giou.numpy()[0], [1.0, -1 / 3, 1 / 3], atol=1e-6)


def test_generalized_box_iou_gradients_finite_for_degenerate_boxes():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.4, 0.4]], requires_grad=True)
    b = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.2, 0.6]])
    (1 - generalized_box_iou(a, b)).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_spans():
    assert span_length((3, 8)) == 5 and span_length((8, 3)) == 0
    assert span_intersection((0, 10), (5, 20)) == 5
    assert span_iou((2, 6), (2, 6)) == 1.0  # identical
    assert span_iou((0, 5), (5, 9)) == 0.0  # touching half-open spans share no frame
    assert span_iou((0, 5), (7, 9)) == 0.0  # disjoint
    assert span_iou((0, 10), (2, 8)) == pytest.approx(0.6, abs=1e-15)  # nested: 6 / 10
    assert span_iou((0, 10), (5, 20)) == pytest.approx(0.25, abs=1e-15)  # 5 / (10 + 15 - 5)
    assert span_iou((4, 4), (0, 10)) == 0.0  # empty span
    assert not math.isnan(span_iou((3, 3), (3, 3)))
