"""CoSTA's losses (eq. 6-8) against direct computations."""

import math

import pytest
import torch

from stvg.train.losses_costa import (
    COSTA_LOSS_WEIGHTS,
    compute_costa_losses,
    costa_total_loss,
    gaussian_targets,
    kl_term,
    tube_bounds,
)


def softmax(values: list[float]) -> list[float]:
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


def test_tube_bounds():
    fit = torch.tensor([[0, 1, 1, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    start, last, has = tube_bounds(fit)
    assert start.tolist() == [1, 0, 0]
    assert last.tolist() == [3, 0, 4]
    assert has.tolist() == [True, False, True]


def test_gaussian_targets_formula():
    out = gaussian_targets(torch.tensor([2, 0]), 5, sigma=1.5)
    for bi, c in enumerate((2, 0)):
        g = [math.exp(-((t - c) ** 2) / (2 * 1.5**2)) for t in range(5)]
        for t in range(5):
            assert float(out[bi, t]) == pytest.approx(g[t] / sum(g), rel=1e-6)


def test_eq7_kl_against_direct_sum():
    torch.manual_seed(0)
    logits = torch.randn(3, 6)
    target = gaussian_targets(torch.tensor([1, 4, 0]), 6)
    target[2, 3:] = 0.0  # zero-probability frames contribute 0 log 0 = 0
    target[2] /= target[2].sum()
    weight = torch.tensor([1.0, 0.0, 1.0])  # the middle sample has no tube
    got = float(kl_term(logits, target, weight))
    total = 0.0
    for bi in (0, 2):
        p = softmax(logits[bi].tolist())
        total += sum(
            q * (math.log(q) - math.log(p[t])) for t, q in enumerate(target[bi].tolist()) if q > 0
        )
    assert got == pytest.approx(total / 2, rel=1e-5)


def test_eq6_to_8_terms_and_total():
    b, t = 2, 4
    fit = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(b, t, 1)
    pred = boxes.clone()
    pred[0, 1] = torch.tensor([0.6, 0.5, 0.2, 0.2])  # shifted by 0.1 in x; same size
    pred[0, 0] = torch.tensor([0.1, 0.1, 0.1, 0.1])  # outside the tube: not counted
    torch.manual_seed(1)
    outputs = {
        "pred_boxes": pred,
        "start_logits": torch.randn(b, t),
        "end_logits": torch.randn(b, t),
        "enc_attendance": torch.randn(b, t),
        "dec_attendance": torch.randn(b, t),
    }
    targets = {"boxes": boxes, "box_mask": fit, "frame_in_tube": fit}
    terms = compute_costa_losses(outputs, targets)
    n_boxes = 6
    assert float(terms["l1"]) == pytest.approx(0.1 / n_boxes, rel=1e-5)
    # Shifted box: intersection 0.1 x 0.2, union 2 * 0.04 - 0.02, hull 0.3 x 0.2 = union.
    iou = 0.02 / 0.06
    assert float(terms["giou"]) == pytest.approx((1 - iou) / n_boxes, rel=1e-5)

    def kl(logits, centres):
        out = 0.0
        for bi, c in enumerate(centres):
            g = [math.exp(-((i - c) ** 2) / 2) for i in range(t)]
            g = [v / sum(g) for v in g]
            p = softmax(logits[bi].tolist())
            out += sum(g[i] * (math.log(g[i]) - math.log(p[i])) for i in range(t))
        return out / b

    assert float(terms["kl_start"]) == pytest.approx(kl(outputs["start_logits"], (1, 0)), rel=1e-5)
    assert float(terms["kl_end"]) == pytest.approx(kl(outputs["end_logits"], (2, 3)), rel=1e-5)

    def bce(logits):
        total = 0.0
        for bi in range(b):
            for i in range(t):
                y, s = float(fit[bi, i]), 1 / (1 + math.exp(-float(logits[bi, i])))
                total -= y * math.log(s) + (1 - y) * math.log(1 - s)
        return total / (b * t)

    assert float(terms["enc_att"]) == pytest.approx(bce(outputs["enc_attendance"]), rel=1e-5)
    assert float(terms["dec_att"]) == pytest.approx(bce(outputs["dec_attendance"]), rel=1e-5)
    want = sum(COSTA_LOSS_WEIGHTS[k] * float(terms[k]) for k in COSTA_LOSS_WEIGHTS)
    assert float(costa_total_loss(terms)) == pytest.approx(want, rel=1e-6)
    assert float(costa_total_loss(terms, {"l1": 2.0})) == pytest.approx(2 * float(terms["l1"]))
