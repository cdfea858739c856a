"""Sine position encodings against their formulas written out element by element."""

import math

import torch

from stvg.models.position import sine_position_1d, sine_position_2d


def test_sine_1d_matches_formula():
    enc = sine_position_1d(5, 8)
    assert enc.shape == (5, 8)
    for p in range(5):
        for k in range(4):
            freq = 10000 ** (2 * k / 8)
            assert math.isclose(enc[p, 2 * k].item(), math.sin(p / freq), abs_tol=1e-6)
            assert math.isclose(enc[p, 2 * k + 1].item(), math.cos(p / freq), abs_tol=1e-6)


def test_sine_2d_matches_detr_formula_with_padding():
    valid = torch.zeros(1, 3, 4, dtype=torch.bool)
    valid[0, :2, :3] = True  # a 2 x 3 image padded to 3 x 4
    dim = 8
    enc = sine_position_2d(valid, dim)
    assert enc.shape == (1, 3, 4, dim)
    scale = 2 * math.pi
    for r in range(2):
        for c in range(3):
            y = (r + 1) / 2 * scale  # valid rows counted 1..2, normalized by the last
            x = (c + 1) / 3 * scale
            want = []
            for v in (y, x):
                for k in range(dim // 2):
                    freq = 10000 ** (2 * (k // 2) / (dim // 2))
                    want.append(math.sin(v / freq) if k % 2 == 0 else math.cos(v / freq))
            assert torch.allclose(enc[0, r, c], torch.tensor(want), atol=1e-4)
