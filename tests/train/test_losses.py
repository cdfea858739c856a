"""CSDVL losses on tiny tensors, against numbers worked out by hand."""

import math

import pytest
import torch

from stvg.train.losses import (
    DEFAULT_LOSS_WEIGHTS,
    attention_box_loss,
    box_cell_shares,
    box_losses,
    build_targets,
    clips_in_span,
    compute_losses,
    scaled_iou_targets,
    span_iou_map,
    stack_targets,
    temporal_attentive_loss,
    temporal_grounding_loss,
    total_loss,
)


def test_iou_map_by_hand():
    iou = span_iou_map(1, 3, 4)  # GT covers clips 1 and 2
    third = 1 / 3
    want = [
        [0, third, 2 / 3, 0.5],  # [0,1) [0,2) [0,3) [0,4)
        [0, 0.5, 1.0, 2 / 3],  # [1,2) [1,3) [1,4)
        [0, 0, 0.5, third],  # [2,3) [2,4)
        [0, 0, 0, 0],  # [3,4)
    ]
    assert torch.allclose(iou, torch.tensor(want), atol=1e-6)
    scaled = scaled_iou_targets(iou)  # 2D-TAN: (iou - .5) / .5 clipped
    assert torch.allclose(scaled[0], torch.tensor([0, 0, third, 0]), atol=1e-6)
    assert scaled[1, 2] == 1 and scaled[1, 1] == 0 and scaled[1, 3] == pytest.approx(third)


def test_fractional_span():
    iou = span_iou_map(0.5, 2.0, 2)
    assert iou[0, 0].item() == pytest.approx(0.5 / 2)  # [0,1) vs [.5,2): inter .5, union 2
    assert iou[0, 1].item() == pytest.approx(1.5 / 2)
    assert iou[1, 1].item() == pytest.approx(1 / 1.5)
    assert clips_in_span(0.5, 2.0, 4).tolist() == [True, True, False, False]
    assert clips_in_span(1.0, 1.2, 4).tolist() == [False, True, False, False]


def test_box_losses_by_hand():
    pred = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1]]])
    gt = torch.tensor([[[0.5, 0.5, 0.4, 0.4], [0.7, 0.7, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    l1, giou = box_losses(pred, gt, mask)
    # box 1: |.2-.4| * 2 = .4; nested boxes, IoU = .04/.16 = .25, enclosing = GT -> GIoU .25
    # box 2: |.5| * 2 = 1.0; disjoint, union .08, enclosing [.1,.8]^2 = .49 -> GIoU -(.41/.49)
    assert l1.item() == pytest.approx((0.4 + 1.0) / 2, abs=1e-6)
    assert giou.item() == pytest.approx((0.75 + 1 + 0.41 / 0.49) / 2, abs=1e-5)


def test_temporal_grounding_bce_by_hand():
    logits = torch.tensor([[[0.0, 2.0], [5.0, -1.0]]])
    target = torch.tensor([[[0.5, 1.0], [0.3, 0.0]]])
    mask = torch.tensor([[True, True], [False, True]])  # (1, 0) is not a proposal

    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    want = (bce(0.0, 0.5) + bce(2.0, 1.0) + bce(-1.0, 0.0)) / 3
    assert temporal_grounding_loss(logits, target, mask).item() == pytest.approx(want, abs=1e-6)


def test_temporal_attentive_loss_by_hand():
    frames = torch.tensor([[0.0, math.log(2), math.log(3)]])  # softmax = 1/6, 2/6, 3/6
    in_tube = torch.tensor([[False, True, True]])
    clips = torch.tensor([[0.0, 0.0]])  # softmax = 1/2, 1/2
    clip_in = torch.tensor([[True, False]])
    frame_term = -(math.log(2 / 6) + math.log(3 / 6)) / 2
    clip_term = -math.log(0.5)
    got = temporal_attentive_loss(frames, in_tube, clips, clip_in)
    assert got.item() == pytest.approx(0.5 * frame_term + 1.0 * clip_term, abs=1e-6)
    # a sample without positives is left out of the average
    frames2 = torch.cat([frames, torch.zeros(1, 3)])
    in_tube2 = torch.cat([in_tube, torch.zeros(1, 3, dtype=torch.bool)])
    clips2, clip_in2 = torch.cat([clips, clips]), torch.cat([clip_in, clip_in])
    got2 = temporal_attentive_loss(frames2, in_tube2, clips2, clip_in2)
    assert got2.item() == pytest.approx(0.5 * frame_term + 1.0 * clip_term, abs=1e-6)


def outputs_and_targets():
    torch.manual_seed(0)
    b, ts, td = 2, 4, 4
    outputs = {
        "pred_boxes": torch.rand(b, ts, 4) * 0.5 + 0.25,
        "score_map": torch.randn(b, td, td),
        "map_mask": torch.triu(torch.ones(td, td, dtype=torch.bool)),
        "frame_logits": torch.randn(b, ts),
        "clip_logits": torch.randn(b, td),
    }
    in_tube = torch.tensor([[False, True, True, False], [True, True, False, False]])
    boxes = torch.rand(b, ts, 4) * 0.5 + 0.25
    targets = stack_targets(
        [
            build_targets((1.0, 3.0), in_tube[0], boxes[0], td),
            build_targets((0.0, 2.0), in_tube[1], boxes[1], td),
        ]
    )
    return outputs, targets


def test_build_targets_fields():
    _, targets = outputs_and_targets()
    assert targets["map_target"].shape == (2, 4, 4)
    assert targets["map_target"][0, 1, 2] == 1 and targets["map_target"][1, 0, 1] == 1
    assert targets["clip_in_tube"].tolist() == [
        [False, True, True, False],
        [True, True, False, False],
    ]
    assert torch.equal(targets["box_mask"], targets["frame_in_tube"])


def test_compute_losses_from_a_feature_batch_equals_prebuilt_targets():
    outputs, targets = outputs_and_targets()
    terms = compute_losses(outputs, targets)
    assert set(terms) == {"l1", "giou", "tg", "ta"}  # no "att" without s2d_attention
    batch = {k: targets[k] for k in ("boxes", "box_mask", "frame_in_tube")}
    batch["span"] = torch.tensor([[0.25, 0.75], [0.0, 0.5]])  # fractions of the segment
    terms2 = compute_losses(outputs, batch)
    for k in terms:
        assert terms2[k].item() == pytest.approx(terms[k].item(), abs=1e-6), k
    l1, giou = box_losses(outputs["pred_boxes"], targets["boxes"], targets["box_mask"])
    assert terms["l1"] == l1 and terms["giou"] == giou
    want = 5 * terms["l1"] + 2 * terms["giou"] + 5 * terms["tg"] + 1 * terms["ta"]
    assert DEFAULT_LOSS_WEIGHTS == {"l1": 5.0, "giou": 2.0, "tg": 5.0, "ta": 1.0}
    assert total_loss(terms).item() == pytest.approx(want.item(), abs=1e-6)


def test_box_cell_shares_by_hand():
    # 2 x 2 grid over the unit square; boxes in cxcywh
    centred = box_cell_shares(torch.tensor([0.5, 0.5, 0.5, 0.5]), 2, 2)
    assert torch.allclose(centred, torch.full((2, 2), 0.25))
    corner = box_cell_shares(torch.tensor([0.25, 0.125, 0.5, 0.25]), 2, 2)
    assert torch.allclose(corner, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    top = box_cell_shares(torch.tensor([0.5, 0.25, 0.5, 0.5]), 2, 2)
    assert torch.allclose(top, torch.tensor([[0.5, 0.5], [0.0, 0.0]]))
    # 1 x 4 grid, box x in [0.1, 0.6]: 0.15 of 0.5 in cell 0, 0.25 in cell 1, 0.1 in cell 2
    strip = box_cell_shares(torch.tensor([0.35, 0.5, 0.5, 1.0]), 1, 4)
    assert torch.allclose(strip, torch.tensor([[0.3, 0.5, 0.2, 0.0]]))
    assert torch.equal(box_cell_shares(torch.zeros(4), 2, 2), torch.zeros(2, 2))


def test_box_cell_shares_on_padded_grids_equal_each_grid_alone():
    # a batch of three grids padded to 3 x 4: each sample's shares are those of its own grid
    # (computed alone, as before batching) in the top-left corner, zeros elsewhere
    boxes = torch.tensor([[0.3, 0.6, 0.4, 0.5], [0.7, 0.2, 0.2, 0.3], [0.5, 0.5, 1.0, 1.0]])
    sizes = [(3, 4), (2, 3), (1, 2)]
    rows = torch.tensor([[r] for r, _ in sizes])
    cols = torch.tensor([[c] for _, c in sizes])
    got = box_cell_shares(boxes[:, None], 3, 4, rows, cols)[:, 0]  # [3, 3, 4]
    for k, (r, c) in enumerate(sizes):
        want = torch.zeros(3, 4)
        want[:r, :c] = box_cell_shares(boxes[k], r, c)
        assert torch.equal(got[k], want), k
    # the last box covers its whole 1 x 2 grid: half in each cell
    assert got[2, 0, :2].tolist() == [0.5, 0.5]


def test_attention_box_loss_by_hand():
    box_in_first_cell = torch.tensor([0.25, 0.25, 0.5, 0.5])
    boxes = box_in_first_cell.expand(1, 2, 4)  # [B=1, Ts=2, 4]
    uniform = torch.full((1, 1, 2, 2, 2), 0.25)  # [B, N=1, Ts, h, w]
    mask = torch.tensor([[True, False]])
    assert attention_box_loss(uniform, boxes, mask).item() == pytest.approx(math.log(4))
    # mass 0.35 / 0.05 / 0.05 / 0.05 on the cells (the rest went to text tokens): renormalized
    peaked = torch.tensor([[0.35, 0.05], [0.05, 0.05]]).expand(1, 2, 2, 2, 2).clone()
    peaked[0, 1] = 0.25  # second layer uniform: the loss is the mean over layers
    want = (-math.log(0.7) + math.log(4)) / 2
    assert attention_box_loss(peaked, boxes, mask).item() == pytest.approx(want, rel=1e-6)
    # a frame outside the mask does not count, whatever its attention
    peaked[0, :, 1] = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    assert attention_box_loss(peaked, boxes, mask).item() == pytest.approx(want, rel=1e-6)
    # valid cells: a 2 x 2 sample padded to 2 x 3; the box's shares live on the valid part
    padded = torch.zeros(1, 1, 2, 2, 3)
    padded[..., :2] = 0.2
    padded[..., 2] = 0.1  # padding cells carry no mass in the loss
    valid = torch.tensor([[[True, True, False], [True, True, False]]])
    got = attention_box_loss(padded, boxes, mask, valid)
    assert got.item() == pytest.approx(-math.log(0.25), rel=1e-6)
    none = torch.zeros(1, 2, dtype=torch.bool)
    assert attention_box_loss(uniform.requires_grad_(), boxes, none).item() == 0.0
