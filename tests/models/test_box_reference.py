"""The attention reference point of the box head (``box_reference="attention"``)."""

from __future__ import annotations

import torch

from stvg.models.box_reference import attention_centre
from stvg.models.heads import BoxHead


def test_attention_centre_by_hand():
    # A 2x4 grid; all mass on cell (row 1, col 2): centre ((2 + .5) / 4, (1 + .5) / 2).
    attn = torch.zeros(1, 1, 2, 4)
    attn[0, 0, 1, 2] = 0.7  # maps need not sum to 1 (text columns take the rest)
    valid = torch.ones(1, 2, 4, dtype=torch.bool)
    assert torch.allclose(attention_centre(attn, valid), torch.tensor([[[0.625, 0.75]]]))
    # Half on (0, 0), half on (1, 3): x = (.125 + .875) / 2, y = (.25 + .75) / 2.
    attn = torch.zeros(1, 1, 2, 4)
    attn[0, 0, 0, 0] = attn[0, 0, 1, 3] = 0.2
    assert torch.allclose(attention_centre(attn, valid), torch.tensor([[[0.5, 0.5]]]))


def test_attention_centre_ignores_padding_and_uses_the_valid_grid():
    # Valid part 2x2 of a 2x4 grid: cell (0, 1) is at ((1 + .5) / 2, (0 + .5) / 2).
    attn = torch.zeros(1, 1, 2, 4)
    attn[0, 0, 0, 1] = 1.0
    attn[0, 0, 1, 3] = 5.0  # padded cell: no mass
    valid = torch.zeros(1, 2, 4, dtype=torch.bool)
    valid[:, :, :2] = True
    assert torch.allclose(attention_centre(attn, valid), torch.tensor([[[0.75, 0.25]]]))


def test_box_head_offsets_are_added_in_logit_space():
    head = BoxHead(8)
    q = torch.randn(3, 8)
    raw = head.mlp(q)
    ref = torch.tensor([[0.2, 0.9]] * 3)
    out = head(q, ref)
    expect_c = torch.sigmoid(raw[:, :2] + torch.log(ref / (1 - ref)))
    assert torch.allclose(out[:, :2], expect_c, atol=1e-6)
    assert torch.allclose(out[:, 2:], torch.sigmoid(raw[:, 2:]))
    assert torch.allclose(head(q), torch.sigmoid(raw))  # no reference: the paper's MLP
