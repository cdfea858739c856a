"""CG-STVG's losses, eqs. (13)-(14), against computations written out with Python floats."""

import math

import torch

from stvg.models.cgstvg_losses import (
    CGSTVG_LOSS_WEIGHTS,
    cgstvg_losses,
    cgstvg_total_loss,
    gaussian_target,
    tube_bounds,
)

B, K, T = 2, 2, 6


def fake_outputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, K, T, 2, generator=g) * 0.6 + 0.2
    wh = torch.rand(B, K, T, 2, generator=g) * 0.3 + 0.1
    return {
        "stage_boxes": torch.cat((xy, wh), dim=-1),
        "stage_start": torch.randn(B, K, T, generator=g) * 2,
        "stage_end": torch.randn(B, K, T, generator=g) * 2,
        "temporal_logits": torch.randn(B, K, T, generator=g),
        "spatial_conf": torch.rand(B, K, T, generator=g) * 0.9 + 0.05,
    }


def fake_targets() -> dict[str, torch.Tensor]:
    in_tube = torch.zeros(B, T, dtype=torch.bool)
    in_tube[0, 1:4] = True
    in_tube[1, 3:6] = True
    box_mask = in_tube.clone()
    box_mask[1, 4] = False  # an in-tube frame without a box
    boxes = torch.zeros(B, T, 4)
    boxes[..., :2], boxes[..., 2:] = 0.5, 0.3
    boxes[1, :, 0] = 0.4
    return {"boxes": boxes, "box_mask": box_mask, "frame_in_tube": in_tube}


def xyxy(b):
    cx, cy, w, h = b
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def iou_giou(p, g):
    px1, py1, px2, py2 = xyxy(p)
    gx1, gy1, gx2, gy2 = xyxy(g)
    iw, ih = max(0.0, min(px2, gx2) - max(px1, gx1)), max(0.0, min(py2, gy2) - max(py1, gy1))
    inter = iw * ih
    union = (px2 - px1) * (py2 - py1) + (gx2 - gx1) * (gy2 - gy1) - inter
    hull = (max(px2, gx2) - min(px1, gx1)) * (max(py2, gy2) - min(py1, gy1))
    iou = inter / union
    return iou, iou - (hull - union) / hull


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def gauss(centre, sigma=2.0):
    g = [math.exp(-((t - centre) ** 2) / (2 * sigma**2)) + 1e-6 for t in range(T)]
    return [v / sum(g) for v in g]


def direct(outputs, targets, negative_weight=1.0):
    """Eqs. (13)-(14) term by term with loops over stages, samples and frames."""
    total = dict.fromkeys(CGSTVG_LOSS_WEIGHTS, 0.0)
    for k in range(K):
        kl_s = kl_e = 0.0
        bce_t = 0.0
        l1 = giou = 0.0
        bce_s, n_box = 0.0, 0
        for b in range(B):
            inside = [bool(v) for v in targets["frame_in_tube"][b]]
            first, last = inside.index(True), T - 1 - inside[::-1].index(True)
            for logits, centre, key in (
                (outputs["stage_start"], first, "s"),
                (outputs["stage_end"], last, "e"),
            ):
                p = softmax(logits[b, k].tolist())
                q = gauss(centre)
                value = sum(pi * math.log((pi + 1e-6) / qi) for pi, qi in zip(p, q, strict=True))
                if key == "s":
                    kl_s += value / (B * T)
                else:
                    kl_e += value / (B * T)
            for t in range(T):
                x = outputs["temporal_logits"][b, k, t].item()
                s = 1 / (1 + math.exp(-x))
                y = 1.0 if inside[t] else 0.0
                w = 1.0 if inside[t] else negative_weight
                bce_t += -w * (y * math.log(s) + (1 - y) * math.log(1 - s)) / (B * T)
                if targets["box_mask"][b, t]:
                    pred = outputs["stage_boxes"][b, k, t].tolist()
                    gt = targets["boxes"][b, t].tolist()
                    iou, gi = iou_giou(pred, gt)
                    l1 += sum(abs(a - c) for a, c in zip(pred, gt, strict=True))
                    giou += 1 - gi
                    c = outputs["spatial_conf"][b, k, t].item()
                    bce_s += -(iou * math.log(c) + (1 - iou) * math.log(1 - c))
                    n_box += 1
        total["start"] += kl_s
        total["end"] += kl_e
        total["temporal_conf"] += bce_t
        total["l1"] += l1 / n_box
        total["giou"] += giou / n_box
        total["spatial_conf"] += bce_s / n_box
    return total


def test_terms_match_eq13_and_eq14_written_out():
    outputs, targets = fake_outputs(), fake_targets()
    for negative_weight in (1.0, 0.3):
        terms = cgstvg_losses(outputs, targets, negative_weight=negative_weight)
        want = direct(outputs, targets, negative_weight)
        for name, value in want.items():
            assert math.isclose(terms[name].item(), value, rel_tol=1e-4, abs_tol=1e-6), name
        stage_sum = terms["l1_1"] + terms["l1_2"]
        assert torch.isclose(stage_sum, terms["l1"])
    total = cgstvg_total_loss(terms)
    weighted = sum(CGSTVG_LOSS_WEIGHTS[n] * v for n, v in direct(outputs, targets, 0.3).items())
    assert math.isclose(total.item(), weighted, rel_tol=1e-4)
    assert CGSTVG_LOSS_WEIGHTS == {
        "start": 10.0,
        "end": 10.0,
        "temporal_conf": 1.0,
        "l1": 5.0,
        "giou": 3.0,
        "spatial_conf": 1.0,
    }


def test_tube_bounds_and_gaussian_targets():
    inside = torch.tensor([[0, 1, 1, 0, 1, 0], [0] * 6, [1] * 6], dtype=torch.bool)
    first, last, has = tube_bounds(inside)
    assert first.tolist() == [1, 0, 0] and last.tolist() == [4, 0, 5]
    assert has.tolist() == [True, False, True]
    q = gaussian_target(torch.tensor([2, 5]), T)
    for row, centre in zip(q.tolist(), (2, 5), strict=True):
        assert all(
            math.isclose(a, b, rel_tol=1e-5) for a, b in zip(row, gauss(centre), strict=True)
        )


def test_a_sample_without_tube_frames_is_left_out_of_the_kl_terms():
    outputs, targets = fake_outputs(), fake_targets()
    targets["frame_in_tube"][1] = False
    targets["box_mask"][1] = False
    terms = cgstvg_losses(outputs, targets)
    one = {k: v[:1] for k, v in outputs.items()}
    alone = cgstvg_losses(one, {k: v[:1] for k, v in targets.items()})
    assert torch.isclose(terms["start"], alone["start"]) and torch.isclose(
        terms["end"], alone["end"]
    )
    empty = {k: v.clone() for k, v in targets.items()}
    empty["frame_in_tube"][:] = False
    empty["box_mask"][:] = False
    terms = cgstvg_losses(outputs, empty)
    assert terms["start"].item() == 0.0 and terms["l1"].item() == 0.0
    assert terms["spatial_conf"].item() == 0.0 and terms["temporal_conf"].item() > 0


def test_a_perfect_prediction_costs_only_the_floors():
    targets = fake_targets()
    outputs = fake_outputs()
    outputs["stage_boxes"] = targets["boxes"][:, None].expand(B, K, T, 4).clone()
    terms = cgstvg_losses(outputs, targets)
    assert terms["l1"].item() == 0.0 and abs(terms["giou"].item()) < 1e-6
    # the IoU target of a perfect box is 1: the spatial BCE is -log(s^s) on GT frames
    conf = outputs["spatial_conf"][targets["box_mask"][:, None].expand(B, K, T)]
    want = -conf.log().sum().item() / targets["box_mask"].sum().item()
    assert math.isclose(terms["spatial_conf"].item(), want, rel_tol=1e-5)
